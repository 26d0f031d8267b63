"""Job rows: one table for every long-running job kind (fine-tuning now), with events and checkpoints.

A job moves ``validating_files -> queued -> running -> succeeded | failed | cancelled``. Every move is a
compare-and-set (:func:`transition`) so the API, the supervisor and a worker process never overwrite
each other: a job cancelled while its worker finishes stays cancelled. Restarting the server finds
``running`` jobs no live server holds (their claim, m010) and re-queues them (:func:`requeue_running`);
the worker resumes from the newest checkpoint::

    job = create_job(cp, job_id="ftjob-1", tenant_id=1, kind="fine_tune", request={...})
    transition(cp, job.id, ("validating_files",), "queued")
    add_event(cp, job.id, "Job started")
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, job_checkpoints, job_events, jobs, utcnow

__all__ = [
    "ACTIVE",
    "FINISHED",
    "CheckpointRow",
    "EventRow",
    "JobRow",
    "add_checkpoint",
    "add_event",
    "cancel_requested",
    "claim",
    "claim_owner",
    "create_job",
    "get_job",
    "jobs_with_status",
    "list_checkpoints",
    "list_events",
    "list_jobs",
    "release_claim",
    "request_cancel",
    "requeue_running",
    "transition",
    "update_job",
]

ACTIVE = ("validating_files", "queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    tenant_id: int
    kind: str
    status: str
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None = None
    claim_expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    job_id: str
    level: str
    type: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    job_id: str
    step: int
    path: str
    metrics: dict[str, Any]
    created_at: datetime


def create_job(
    cp: ControlPlane,
    *,
    job_id: str,
    tenant_id: int,
    kind: str,
    request: dict[str, Any],
    status: str = "validating_files",
) -> JobRow:
    """Record a new job (audited) in its first status."""
    values: dict[str, Any] = {
        "id": job_id, "tenant_id": tenant_id, "kind": kind, "status": status, "request": request,
        "result": None, "error": None, "cancel_requested": False, "attempts": 0, "created_at": utcnow(),
        "started_at": None, "finished_at": None, "claimed_by": None, "claim_expires_at": None,
    }  # fmt: skip
    with cp.engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(**values))
        record(conn, f"job.{kind}.create", tenant_id=tenant_id, id=job_id)
    return JobRow(**values)


def get_job(cp: ControlPlane, job_id: str, tenant_id: int | None = None) -> JobRow | None:
    """The job ``job_id``; with ``tenant_id``, None also for another tenant's (callers answer 404)."""
    query = sa.select(jobs).where(jobs.c.id == job_id)
    if tenant_id is not None:
        query = query.where(jobs.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return JobRow(**row._mapping) if row else None


def list_jobs(
    cp: ControlPlane, tenant_id: int, kind: str, *, after: str | None = None, limit: int = 20
) -> tuple[list[JobRow], bool]:
    """A page of the tenant's jobs, newest first, starting after the job ``after``; and whether more exist."""
    query = sa.select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.kind == kind)
    if after is not None:
        anchor = get_job(cp, after, tenant_id)
        if anchor is not None:
            query = query.where(
                sa.or_(
                    jobs.c.created_at < anchor.created_at,
                    sa.and_(jobs.c.created_at == anchor.created_at, jobs.c.id > anchor.id),
                )
            )
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit + 1)
    with cp.engine.connect() as conn:
        rows = [JobRow(**row._mapping) for row in conn.execute(query)]
    return rows[:limit], len(rows) > limit


def jobs_with_status(cp: ControlPlane, statuses: Sequence[str]) -> list[JobRow]:
    """Every job (any tenant) in one of ``statuses``, oldest first: the supervisor's queue."""
    query = sa.select(jobs).where(jobs.c.status.in_(statuses)).order_by(jobs.c.created_at, jobs.c.id)
    with cp.engine.connect() as conn:
        return [JobRow(**row._mapping) for row in conn.execute(query)]


def transition(cp: ControlPlane, job_id: str, from_statuses: Sequence[str], to: str, **fields: Any) -> bool:
    """Move the job to ``to`` (setting ``fields``) only if it is in one of ``from_statuses``; whether it did.

    Moving to ``running`` counts an attempt and stamps ``started_at``; a finished status stamps
    ``finished_at``.
    """
    values: dict[str, Any] = {"status": to, **fields}
    if to == "running":
        values["attempts"] = jobs.c.attempts + 1
        values.setdefault("started_at", utcnow())
    if to in FINISHED:
        values["finished_at"] = utcnow()
    update = sa.update(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(from_statuses)).values(**values)
    with cp.engine.begin() as conn:
        return conn.execute(update).rowcount == 1


def claim(cp: ControlPlane, job_id: str, owner: str, lease_s: float, status: str | None = None) -> bool:
    """Take or renew ``owner``'s claim on the job for ``lease_s`` seconds; whether ``owner`` holds it now.

    A compare-and-set like :func:`transition`: it succeeds when the job is unclaimed, already ``owner``'s,
    or its owner's lease ran out (that owner died or hung, so the job is taken over). An owner renews its
    claim well within the lease (a heartbeat); one that finds it lost stops working on the job. With
    ``status``, the job must also still be in it (a job re-queued meanwhile is lost to its old owner).
    """
    now = time.time()
    free = sa.or_(jobs.c.claimed_by.is_(None), jobs.c.claimed_by == owner, jobs.c.claim_expires_at < now)
    update = sa.update(jobs).where(jobs.c.id == job_id, free)
    if status is not None:
        update = update.where(jobs.c.status == status)
    with cp.engine.begin() as conn:
        return conn.execute(update.values(claimed_by=owner, claim_expires_at=now + lease_s)).rowcount == 1


def claim_owner() -> str:
    """A name for one runner in one process, unique across servers: what :func:`claim` records."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def release_claim(cp: ControlPlane, job_id: str, owner: str) -> None:
    """Give up ``owner``'s claim (a server stopping cleanly), so another server may resume the job now."""
    update = sa.update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == owner)
    with cp.engine.begin() as conn:
        conn.execute(update.values(claimed_by=None, claim_expires_at=None))


def update_job(cp: ControlPlane, job_id: str, **fields: Any) -> None:
    """Set ``fields`` (result, error) without changing the status."""
    with cp.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**fields))


def request_cancel(cp: ControlPlane, tenant_id: int, job_id: str) -> JobRow | None:
    """Cancel the tenant's job: a job not yet running is cancelled at once; a running one is flagged and
    its worker stops at its next check. A finished job is left as it is. None for an unknown job."""
    job = get_job(cp, job_id, tenant_id)
    if job is None or job.status in FINISHED:
        return job
    with cp.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
        record(conn, f"job.{job.kind}.cancel", tenant_id=tenant_id, id=job_id)
    transition(cp, job_id, ("validating_files", "queued"), "cancelled")
    return get_job(cp, job_id, tenant_id)


def cancel_requested(cp: ControlPlane, job_id: str) -> bool:
    with cp.engine.connect() as conn:
        return bool(conn.scalar(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)))


def requeue_running(cp: ControlPlane) -> list[str]:
    """Jobs left ``running`` that no server holds go back to ``queued`` (to resume); their ids. A job is
    held while its runner's claim lasts (:func:`claim`): one another live server runs stays where it is;
    one whose server stopped (claim released) or died (lease ran out) is re-queued."""
    now = time.time()
    free = sa.or_(jobs.c.claimed_by.is_(None), jobs.c.claim_expires_at < now)
    stale = [job.id for job in jobs_with_status(cp, ("running",))]
    requeued = []
    for job_id in stale:
        update = sa.update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running", free)
        with cp.engine.begin() as conn:
            if conn.execute(update.values(status="queued", claimed_by=None, claim_expires_at=None)).rowcount:
                requeued.append(job_id)
    return requeued


def add_event(
    cp: ControlPlane,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> None:
    values = {"job_id": job_id, "level": level, "type": type, "message": message, "data": data}
    with cp.engine.begin() as conn:
        conn.execute(sa.insert(job_events).values(**values, created_at=utcnow()))


def list_events(
    cp: ControlPlane, job_id: str, *, after: int | None = None, limit: int = 20
) -> tuple[list[EventRow], bool]:
    """A page of the job's events, newest first, older than the event id ``after``; and whether more exist."""
    query = sa.select(job_events).where(job_events.c.job_id == job_id)
    if after is not None:
        query = query.where(job_events.c.id < after)
    query = query.order_by(job_events.c.id.desc()).limit(limit + 1)
    with cp.engine.connect() as conn:
        rows = [EventRow(**row._mapping) for row in conn.execute(query)]
    return rows[:limit], len(rows) > limit


def add_checkpoint(cp: ControlPlane, job_id: str, step: int, path: str, metrics: dict[str, Any]) -> None:
    values = {"job_id": job_id, "step": step, "path": path, "metrics": metrics, "created_at": utcnow()}
    with cp.engine.begin() as conn:
        conn.execute(sa.insert(job_checkpoints).values(**values))


def list_checkpoints(cp: ControlPlane, job_id: str) -> list[CheckpointRow]:
    """The job's checkpoints, newest first."""
    query = sa.select(job_checkpoints).where(job_checkpoints.c.job_id == job_id)
    with cp.engine.connect() as conn:
        rows = conn.execute(query.order_by(job_checkpoints.c.step.desc(), job_checkpoints.c.id.desc()))
        return [CheckpointRow(**row._mapping) for row in rows]
