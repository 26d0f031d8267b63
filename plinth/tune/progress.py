"""The bridge from transformers' Trainer callbacks to Plinth's training events, and cancellation.

Contract: :class:`EventBridge` is a ``TrainerCallback`` that announces ``started`` (with the step a
resumed run starts from), turns the Trainer's per-step logs, evaluations and saves into
:mod:`plinth.tune.events`, measures tokens/s and time left for this run from the time spent in
optimizer steps (evaluation and checkpointing do not count), and stops training at the next step or
gradient-accumulation substep once ``should_cancel()`` is true. :func:`losses` reads the final losses
from the Trainer's history.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from plinth.tune.events import CheckpointSaved, EpochValidated, EventSink, StepMetrics, TrainingStarted

__all__ = ["EventBridge", "losses"]


class EventBridge(TrainerCallback):
    def __init__(
        self, on_event: EventSink, should_cancel: Callable[[], bool], started: TrainingStarted
    ) -> None:
        self.on_event, self.should_cancel, self.started = on_event, should_cancel, started
        self.cancelled = False
        self._start_time = self._step_start = time.perf_counter()
        self._start_step = 0
        self.start_tokens = self.tokens = 0
        self.step_seconds = 0.0  # inside optimizer steps only: evaluation and saving are not training

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start_time = time.perf_counter()
        self._start_step, self.start_tokens = state.global_step, state.num_input_tokens_seen
        # Here, not before ``train()``: a resumed run knows its first step only once the checkpoint is read.
        self.on_event(
            dataclasses.replace(self.started, total_steps=state.max_steps, first_step=state.global_step)
        )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_start = time.perf_counter()

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_cancel(control)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_seconds += time.perf_counter() - self._step_start
        self.tokens = state.num_input_tokens_seen - self.start_tokens
        self._check_cancel(control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.cancelled:  # stop now: no end-of-epoch evaluation or checkpoint of a cut-short epoch
            control.should_save = control.should_evaluate = False

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return
        done = max(state.global_step - self._start_step, 1)
        self.on_event(
            StepMetrics(
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=float(logs["loss"]),
                learning_rate=float(logs.get("learning_rate", 0.0)),
                tokens_per_second=self.tokens_per_second(),
                elapsed_s=time.perf_counter() - self._start_time,
                eta_s=self.step_seconds / done * (state.max_steps - state.global_step),
            )
        )

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kw: Any
    ) -> None:
        if metrics and "eval_loss" in metrics:
            epoch = _epoch_of_step(state.global_step, state.max_steps, args.num_train_epochs)
            val_loss = float(metrics["eval_loss"])
            self.on_event(EpochValidated(epoch=epoch, step=state.global_step, val_loss=val_loss))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = _epoch_of_step(state.global_step, state.max_steps, args.num_train_epochs)
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.on_event(CheckpointSaved(epoch=epoch, step=state.global_step, path=str(path)))

    def tokens_per_second(self) -> float:
        """Input tokens (no padding) per second of optimizer steps in this run."""
        return self.tokens / max(self.step_seconds, 1e-9)

    def _check_cancel(self, control: Any) -> None:
        if not self.cancelled and self.should_cancel():
            self.cancelled = True
        if self.cancelled:
            control.should_training_stop = True


def losses(state: Any, n_epochs: int) -> tuple[float | None, list[float]]:
    """``(mean step loss of the last epoch, validation loss per epoch)`` from the Trainer's history,
    which a resumed run restores from its checkpoint, so epochs trained before a resume count too."""
    history = state.log_history
    last = [
        h["loss"]
        for h in history
        if "loss" in h and _epoch_of_step(h["step"], state.max_steps, n_epochs) == n_epochs
    ]
    return (sum(last) / len(last) if last else None), [
        float(h["eval_loss"]) for h in history if "eval_loss" in h
    ]


def _epoch_of_step(step: int, max_steps: int, n_epochs: float) -> int:
    """The 1-based epoch that optimizer step ``step`` belongs to (steps per epoch are equal)."""
    steps_per_epoch = max(max_steps / max(n_epochs, 1), 1)
    return max(1, -(-step // round(steps_per_epoch)))
