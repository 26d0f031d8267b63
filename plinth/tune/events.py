"""What a training run reports while it runs: plain frozen dataclasses, one per kind of event.

Contract: :func:`plinth.tune.train` calls ``on_event(event)`` (an :data:`EventSink`) from the training
thread, in this order: one :class:`TrainingStarted`; a :class:`StepMetrics` per optimizer step; a
:class:`EpochValidated` and a :class:`CheckpointSaved` at the end of each epoch; one
:class:`TrainingFinished`. A sink must be quick (it runs between steps). :func:`event_record` turns any
event into a JSON-able dict with a ``"type"`` key, what the job system persists; the ``StepMetrics``
records are the loss curve.

Example::

    >>> event_record(EpochValidated(epoch=1, step=4, val_loss=1.5))["message"]
    'Epoch 1: validation loss 1.5000'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "CheckpointSaved",
    "EpochValidated",
    "EventSink",
    "StepMetrics",
    "TrainingFinished",
    "TrainingStarted",
    "TuneEvent",
    "event_record",
]


@dataclass(frozen=True, slots=True)
class TrainingStarted:
    total_steps: int
    n_epochs: int
    train_examples: int
    validation_examples: int
    train_tokens: int  # tokens in the training set, one epoch
    first_step: int  # 0, or the step a resumed run continues after

    @property
    def message(self) -> str:
        resumed = f", resuming after step {self.first_step}" if self.first_step else ""
        return (
            f"Training {self.train_examples} examples ({self.train_tokens} tokens) for {self.n_epochs} "
            f"epoch(s), {self.total_steps} steps{resumed}"
        )


@dataclass(frozen=True, slots=True)
class StepMetrics:
    step: int
    total_steps: int
    epoch: float  # fractional: 1.5 is halfway through the second epoch
    loss: float
    learning_rate: float
    tokens_per_second: float  # input tokens (no padding) per second of training steps in this run so far
    elapsed_s: float  # wall time since this run started, evaluations included
    eta_s: float  # training steps left times the mean step time (evaluations not included)

    @property
    def message(self) -> str:
        return f"Step {self.step}/{self.total_steps}: training loss={self.loss:.4f}"


@dataclass(frozen=True, slots=True)
class EpochValidated:
    epoch: int
    step: int
    val_loss: float

    @property
    def message(self) -> str:
        return f"Epoch {self.epoch}: validation loss {self.val_loss:.4f}"


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    epoch: int
    step: int
    path: str  # a folder ``train(..., resume=True)`` continues from

    @property
    def message(self) -> str:
        return f"Checkpoint for epoch {self.epoch} saved at step {self.step}"


@dataclass(frozen=True, slots=True)
class TrainingFinished:
    steps: int
    final_train_loss: float | None
    final_val_loss: float | None
    adapter_path: str

    @property
    def message(self) -> str:
        return f"Training finished after {self.steps} steps; adapter at {self.adapter_path}"


TuneEvent = TrainingStarted | StepMetrics | EpochValidated | CheckpointSaved | TrainingFinished
EventSink = Callable[[TuneEvent], None]

_TYPES = {
    TrainingStarted: "training_started",
    StepMetrics: "step_metrics",
    EpochValidated: "epoch_validated",
    CheckpointSaved: "checkpoint_saved",
    TrainingFinished: "training_finished",
}


def event_record(event: TuneEvent) -> dict[str, Any]:
    """``{"type": ..., **fields, "message": ...}`` for storing ``event`` as JSON."""
    return {"type": _TYPES[type(event)], **asdict(event), "message": event.message}
