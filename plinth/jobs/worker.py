"""The worker process: runs one job's kind and records its outcome; the supervisor decides the status.

Started with the ``spawn`` method (a fresh interpreter: no forked engine threads or torch state), so its
arguments are plain values. It records a result or an error on the job row and exits 0 (done), 3
(stopped on request) or 1 (failed); the job's status is left ``running`` for the supervisor to finish.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from pathlib import Path

from plinth.control import open_control_plane
from plinth.control.jobs import get_job, update_job
from plinth.jobs.context import JobContext, JobStopped
from plinth.jobs.kinds import Run

__all__ = ["EXIT_DONE", "EXIT_FAILED", "EXIT_STOPPED", "run_job", "worker_main"]

EXIT_DONE, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
log = logging.getLogger(__name__)


def worker_main(database_url: str, data_dir: str, job_id: str, run_path: str, threads: int) -> int:
    """Run job ``job_id`` with the kind function at ``run_path`` (``module:function``); the exit code."""
    cp = open_control_plane(database_url)
    try:
        job = get_job(cp, job_id)
        assert job is not None, f"job {job_id} vanished"
        return run_job(JobContext(job, cp, Path(data_dir), threads), _import(run_path))
    finally:
        cp.close()


def run_job(ctx: JobContext, run: Run) -> int:
    """Run one job's kind in this process and record its result or error on the job row; the exit code
    (the worker process's, or an in-server kind's thread's)."""
    job_id, cp = ctx.job.id, ctx.control_plane
    try:
        result = run(ctx)
    except JobStopped:
        return EXIT_STOPPED
    except Exception as exc:  # any failure of the kind ends the job failed, with the reason
        log.debug("job %s failed", job_id, exc_info=True)
        error = {"code": _code(exc), "message": _message(exc), "param": getattr(exc, "param", None)}
        update_job(cp, job_id, error=error)
        ctx.event(f"Job failed: {error['message']}", level="error", traceback=traceback.format_exc(limit=8))
        return EXIT_FAILED
    update_job(cp, job_id, result=result)
    return EXIT_DONE


def run_in_process(database_url: str, data_dir: str, job_id: str, run_path: str, threads: int) -> None:
    """The ``multiprocessing`` target: :func:`worker_main`, its return value as the exit code."""
    raise SystemExit(worker_main(database_url, data_dir, job_id, run_path, threads))


def _import(path: str) -> Run:
    module, _, name = path.partition(":")
    run: Run = getattr(importlib.import_module(module), name)
    return run


def _code(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return "disk_full"
    return str(getattr(exc, "code", None) or type(exc).__name__)


def _message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + "…"
