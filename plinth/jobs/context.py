"""What a job kind sees while it runs in a worker process: its job, and a way to report back.

A kind never touches the control plane directly: it reports events, metrics and checkpoints through
:class:`JobContext`, and asks :meth:`JobContext.should_stop` (cheap: the database is read at most once a
second) whether to stop -- because the job was cancelled, or because the server that started this worker
has gone (then the job resumes from its newest checkpoint when the server starts again).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.control import ControlPlane
from plinth.control.jobs import (
    CheckpointRow,
    JobRow,
    add_checkpoint,
    add_event,
    cancel_requested,
    list_checkpoints,
)

__all__ = ["JobContext", "JobStopped"]

_CANCEL_POLL_S = 1.0


class JobStopped(Exception):
    """Raised by a kind that stopped early because :meth:`JobContext.should_stop` said so."""


@dataclass
class JobContext:
    job: JobRow
    control_plane: ControlPlane
    data_dir: Path
    threads: int = 1
    parent_pid: int = field(default_factory=os.getppid)
    _last_poll: float = 0.0
    _stop: bool = False

    @property
    def work_dir(self) -> Path:
        """The job's own folder under the data dir (checkpoints, outputs); created on first use."""
        path = Path(self.data_dir) / "jobs" / self.job.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def event(self, message: str, *, level: str = "info", **data: Any) -> None:
        add_event(self.control_plane, self.job.id, message, level=level, data=data or None)

    def metrics(self, message: str, **data: Any) -> None:
        add_event(self.control_plane, self.job.id, message, type="metrics", data=data)

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        add_checkpoint(self.control_plane, self.job.id, step, str(path), metrics)

    def latest_checkpoint(self) -> CheckpointRow | None:
        """The newest checkpoint whose folder still exists (the one to resume from)."""
        return next(
            (c for c in list_checkpoints(self.control_plane, self.job.id) if Path(c.path).exists()), None
        )

    def stop(self) -> None:
        """Make :meth:`should_stop` true from now on (the server is stopping an in-server job)."""
        self._stop = True

    def should_stop(self) -> bool:
        """True once the job is cancelled or the server process that owns this worker has exited."""
        now = time.monotonic()
        if not self._stop and now - self._last_poll >= _CANCEL_POLL_S:
            self._last_poll = now
            orphaned = os.getppid() != self.parent_pid
            self._stop = orphaned or cancel_requested(self.control_plane, self.job.id)
        return self._stop
