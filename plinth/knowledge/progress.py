"""What a knowledge base's sync looks like to a reader: its state, and a running sync's rate and ETA.

States (``sync_state``): ``not_synced`` (no sync yet), ``building`` (a first build is running:
retrieval answers from what has landed so far), ``syncing`` (a re-sync is running: retrieval answers
from the previous version until it commits), ``ready`` (the last sync succeeded), ``failed`` (the last
sync failed: a KB that had a good version still answers from it; a first build kept what it
committed). Rate and ETA come from the job row's ``done``/``total`` and its start time::

    sync_state(job, has_succeeded_job(cp, kb.id))    # "building"
    rate_and_eta(job, datetime.now(UTC))              # (41.2, 712.0): documents/s, seconds left
"""

from __future__ import annotations

from datetime import UTC, datetime

from plinth.control.knowledge import ACTIVE_STATUSES, JobRow

__all__ = ["SYNC_STATES", "rate_and_eta", "sync_state"]

SYNC_STATES = ("not_synced", "building", "syncing", "ready", "failed")


def sync_state(latest: JobRow | None, ever_succeeded: bool) -> str:
    """The KB's state from its latest job and whether any of its syncs ever succeeded."""
    if latest is None:
        return "not_synced"
    if latest.status in ACTIVE_STATUSES:
        return "syncing" if ever_succeeded else "building"
    return "ready" if latest.status == "succeeded" else "failed"


def rate_and_eta(job: JobRow, now: datetime) -> tuple[float | None, float | None]:
    """Documents per second since the job started and seconds left at that rate; None while unknown
    (not running, nothing done yet)."""
    if job.status != "running" or job.started_at is None or job.done <= 0:
        return None, None
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
    elapsed = (now - started).total_seconds()
    if elapsed <= 0:
        return None, None
    rate = job.done / elapsed
    return round(rate, 2), round(max(0, job.total - job.done) / rate, 1)
