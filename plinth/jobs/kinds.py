"""The job kinds: what each kind runs in a worker, and what the server does when it has finished.

A kind is two functions. ``run(ctx)`` runs in the worker process and returns the job's result (JSON);
it raises :class:`~plinth.jobs.context.JobStopped` when told to stop and any other exception to fail.
``finalize(job, result)`` runs in the server process once ``run`` has returned, to publish what the job
made (a fine-tuning job registers its adapter there, so it is served at once); it returns the final
result, and an exception there fails the job with nothing half-published.

A kind whose work needs what the server has loaded (an evaluation calls the served models as target
and judge) gives ``in_server`` instead: the same ``run(ctx)``, called in a thread of the server process,
with the same statuses, events, cancel (cooperative: ``ctx.should_stop``) and resume on restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plinth.control.jobs import JobRow
from plinth.jobs.context import JobContext

__all__ = ["JobKind", "Finalize", "Run"]

Run = Callable[[JobContext], dict[str, Any]]
Finalize = Callable[[JobRow, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A job kind: its ``run`` is referenced by import path so a spawned worker can find it."""

    name: str
    run: str  # "module:function", imported in the worker ("" when in_server is given)
    finalize: Finalize | None = None
    in_server: Run | None = None  # run in a server thread instead of a worker process
