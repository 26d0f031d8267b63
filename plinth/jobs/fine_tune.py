"""The fine-tuning job kind: train a LoRA adapter with :mod:`plinth.tune` in the worker, publish it in the
server.

``run`` (worker process) trains on the job's files with its resolved hyperparameters, reporting every
step's loss and speed as metrics events and every epoch's checkpoint, and resumes from the newest
checkpoint when the job was interrupted. The adapter is written to a temporary folder and renamed into
``<data_dir>/fine_tuned/<job>`` only once it is complete and loads, so a crash never leaves a half-written
adapter where one is expected; ``finalize`` (server process) registers it for the tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plinth.control.jobs import JobRow
from plinth.jobs.files import Checker
from plinth.jobs.kinds import JobKind

__all__ = ["file_checkers", "kind", "run"]

Publish = Callable[[JobRow, dict[str, Any]], dict[str, Any]]


def kind(publish: Publish) -> JobKind:
    """The ``fine_tune`` kind; ``publish`` registers the finished adapter (the server's registry)."""
    return JobKind("fine_tune", "plinth.jobs.fine_tune:run", publish)


def file_checkers() -> dict[str, Checker]:
    """What an upload must be for each purpose this kind reads: chat or prompt/completion JSONL."""
    return {"fine-tune": _check_training_file}


def _check_training_file(path: Path) -> list[str]:
    from plinth.tune import validate_training_file

    return [str(problem) for problem in validate_training_file(path)]


def run(ctx: Any) -> dict[str, Any]:
    raise NotImplementedError("wired when plinth.tune lands")
