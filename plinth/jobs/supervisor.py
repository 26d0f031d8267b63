"""The job supervisor: a thread in the server that runs queued jobs in worker processes, one at a time by
default, and finishes them.

Each tick it (1) reaps workers that exited and settles their jobs -- ``finalize`` in this process, then
``succeeded``; ``cancelled`` if cancel was asked; ``failed`` with the worker's reason or its exit code --,
(2) kills a worker still running 10 s after its job was cancelled, (3) moves ``validating_files`` jobs to
``queued``, and (4) starts the oldest queued jobs while there is room. On start, jobs left ``running`` by a
previous process are queued again: their worker resumes from the newest checkpoint. On stop, workers are
terminated and their jobs stay ``running``, so the next start resumes them.

Several servers may share one control plane, so a job runs where its row is claimed (migration m010,
:func:`~plinth.control.jobs.claim`, as batches are): starting a job claims it in the same compare-and-set
that moves it to ``running``, and every tick renews the claims of the jobs running here (a worker whose
claim was lost is killed). Only jobs no live server holds are re-queued: those of a server that stopped
(it released its claims) at once, those of one that died once its lease (``lease_s``) ran out, which
every supervisor checks every few seconds. So another server starting never re-runs a running job::

    supervisor = JobSupervisor(cp, db_url, data_dir, {"fine_tune": FINE_TUNE})
    supervisor.start()  ...  supervisor.stop()
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from plinth.control import ControlPlane
from plinth.control.jobs import (
    JobRow,
    add_event,
    claim,
    claim_owner,
    get_job,
    jobs_with_status,
    release_claim,
    requeue_running,
    transition,
)
from plinth.jobs.context import JobContext
from plinth.jobs.kinds import JobKind, Run
from plinth.jobs.worker import EXIT_DONE, EXIT_STOPPED, run_in_process, run_job

__all__ = ["JobSupervisor"]

log = logging.getLogger(__name__)
CANCEL_GRACE_S = 10.0


class _ServerThread:
    """An in-server kind's run, shaped like the worker process the supervisor otherwise watches. A thread
    cannot be killed: ``terminate`` and ``kill`` ask the job to stop at its next ``should_stop``."""

    def __init__(self, ctx: JobContext, run: Run) -> None:
        self.ctx = ctx
        self.exitcode: int | None = None
        self._thread = threading.Thread(target=self._main, args=(run,), name=f"plinth-job-{ctx.job.id}")
        self._thread.daemon = True

    def _main(self, run: Run) -> None:
        self.exitcode = run_job(self.ctx, run)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def terminate(self) -> None:
        self.ctx.stop()

    kill = terminate


@dataclass
class _Worker:
    job_id: str
    process: BaseProcess | _ServerThread
    cancel_seen_at: float | None = None


class JobSupervisor:
    def __init__(
        self,
        control_plane: ControlPlane,
        database_url: str,
        data_dir: Path,
        kinds: dict[str, JobKind],
        *,
        max_concurrent: int = 1,
        threads: int = 1,
        poll_s: float = 0.5,
        lease_s: float = 30.0,
    ) -> None:
        self.cp, self.database_url, self.data_dir = control_plane, database_url, Path(data_dir)
        self.kinds, self.max_concurrent, self.threads, self.poll_s = kinds, max_concurrent, threads, poll_s
        self.owner, self.lease_s = claim_owner(), lease_s
        self._renewed_at = self._adopted_at = time.monotonic()
        self._workers: dict[str, _Worker] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def start(self) -> None:
        self._requeue_unheld()
        self._thread = threading.Thread(target=self._loop, name="plinth-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop starting jobs and terminate workers; their jobs stay ``running`` and resume next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self._workers.values()):
            worker.process.terminate()
            worker.process.join(timeout)
            release_claim(self.cp, worker.job_id, self.owner)  # the next start (anywhere) resumes it now

    def wake(self) -> None:
        """Look at the queue now (a job was created or cancelled) rather than at the next tick."""
        self._wake.set()

    def tick(self) -> None:
        """One pass over workers and queue (the loop's body; tests call it directly)."""
        self._reap()
        self._renew_claims()
        self._enforce_cancel()
        if time.monotonic() - self._adopted_at > min(5.0, self.lease_s / 3):
            self._requeue_unheld()
        for job in jobs_with_status(self.cp, ("validating_files",)):
            transition(self.cp, job.id, ("validating_files",), "queued")
            add_event(self.cp, job.id, "Files validated; the job is queued")
        for job in jobs_with_status(self.cp, ("queued",)):
            if len(self._workers) >= self.max_concurrent:
                break
            self._launch(job)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup must not kill the supervisor
                log.exception("job supervisor tick failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _launch(self, job: JobRow) -> None:
        kind = self.kinds.get(job.kind)
        if kind is None:
            transition(self.cp, job.id, ("queued",), "failed", error=_error("unknown_kind", job.kind))
            return
        lease = {"claimed_by": self.owner, "claim_expires_at": time.time() + self.lease_s}
        if not transition(self.cp, job.id, ("queued",), "running", **lease):
            return  # cancelled meanwhile, or another server started it
        process: BaseProcess | _ServerThread
        if kind.in_server is not None:
            running = get_job(self.cp, job.id)
            assert running is not None
            process = _ServerThread(JobContext(running, self.cp, self.data_dir, self.threads), kind.in_server)
        else:
            args = (self.database_url, str(self.data_dir), job.id, kind.run, self.threads)
            process = multiprocessing.get_context("spawn").Process(
                target=run_in_process, args=args, name=f"plinth-job-{job.id}", daemon=True
            )
        process.start()
        self._workers[job.id] = _Worker(job.id, process)
        add_event(self.cp, job.id, f"Job started (attempt {job.attempts + 1})")

    def _reap(self) -> None:
        for job_id, worker in list(self._workers.items()):
            if worker.process.is_alive():
                continue
            worker.process.join()
            del self._workers[job_id]
            if not self._stopping.is_set():
                self._settle(job_id, worker.process.exitcode)
                release_claim(self.cp, job_id, self.owner)

    def _renew_claims(self) -> None:
        """Renew the claim of every job running here (a heartbeat, well within the lease); a job whose
        claim was lost (this server hung past its lease and another took the job over) is stopped here."""
        if time.monotonic() - self._renewed_at < min(1.0, self.lease_s / 3):
            return
        self._renewed_at = time.monotonic()
        for job_id, worker in list(self._workers.items()):
            if not claim(self.cp, job_id, self.owner, self.lease_s, status="running"):
                log.warning("lost the claim on job %s; another server runs it now", job_id)
                worker.process.kill()
                worker.process.join(CANCEL_GRACE_S)
                del self._workers[job_id]

    def _requeue_unheld(self) -> None:
        """Queue again the running jobs no live server holds (a restart, a dead server's jobs)."""
        self._adopted_at = time.monotonic()
        for job_id in requeue_running(self.cp):
            add_event(
                self.cp, job_id, "The server restarted; the job is queued to resume from its last checkpoint"
            )

    def _settle(self, job_id: str, exitcode: int | None) -> None:
        job = get_job(self.cp, job_id)
        if job is None or job.status != "running":
            return
        if job.cancel_requested:
            transition(self.cp, job_id, ("running",), "cancelled")
            add_event(self.cp, job_id, "Job cancelled")
        elif exitcode == EXIT_DONE and job.result is not None:
            self._succeed(job)
        elif exitcode == EXIT_STOPPED:  # stopped without a cancel: its server went away; resume it
            transition(self.cp, job_id, ("running",), "queued")
        else:
            error = job.error or _error("worker_crashed", f"the worker process exited with code {exitcode}")
            transition(self.cp, job_id, ("running",), "failed", error=error)

    def _succeed(self, job: JobRow) -> None:
        assert job.result is not None
        kind = self.kinds[job.kind]
        try:
            result = kind.finalize(job, job.result) if kind.finalize else job.result
        except Exception as exc:
            log.warning("job %s could not be finalized: %s", job.id, exc)
            transition(self.cp, job.id, ("running",), "failed", error=_error("finalize_failed", str(exc)))
            add_event(self.cp, job.id, f"Job failed: {exc}", level="error")
            return
        if transition(self.cp, job.id, ("running",), "succeeded", result=result):
            add_event(self.cp, job.id, "The job has successfully completed", data=_event_data(result))

    def _enforce_cancel(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers.values()):
            job = get_job(self.cp, worker.job_id)
            if job is None or not job.cancel_requested:
                continue
            worker.cancel_seen_at = worker.cancel_seen_at or now
            if now - worker.cancel_seen_at > CANCEL_GRACE_S:
                worker.process.kill()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None}


def _event_data(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if isinstance(v, str | int | float)}
