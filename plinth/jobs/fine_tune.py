"""The fine-tuning job kind: train a LoRA adapter with :mod:`plinth.tune` in the worker, publish it in the
server.

``run`` (worker process) trains on the job's files with its resolved hyperparameters, reporting every
step's loss and speed as metrics events and every epoch's checkpoint, and resumes from the newest
checkpoint when the job was interrupted. The adapter is written to a temporary folder and renamed into
``<data_dir>/fine_tuned/<job>`` only once it is complete and loads, so a crash never leaves a half-written
adapter where one is expected; ``finalize`` (server process) registers it for the tenant (uploaded to the
``artifact_store`` URL first when one is set, so every process on the control plane can fetch it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.control.jobs import JobRow
from plinth.jobs.context import JobContext, JobStopped
from plinth.jobs.files import Checker
from plinth.jobs.kinds import JobKind

if TYPE_CHECKING:
    from plinth.tune import Hyperparameters, TuneEvent

__all__ = ["file_checkers", "hyperparameters", "kind", "run"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "training.json")

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


def hyperparameters(request: dict[str, Any]) -> Hyperparameters:
    """The trainer's hyperparameters for a job's (validated, resolved) request."""
    from plinth.tune import Hyperparameters

    hyper, lora = request["hyperparameters"], request["lora"]
    return Hyperparameters(
        n_epochs=hyper["n_epochs"],
        batch_size=hyper["batch_size"],
        learning_rate_multiplier=hyper["learning_rate_multiplier"],
        r=lora["r"],
        alpha=lora["alpha"],
        dropout=lora["dropout"],
        target_modules=tuple(lora["target_modules"]),
        seed=request.get("seed") or 0,
        suffix=request.get("suffix"),
    )


def run(ctx: JobContext) -> dict[str, Any]:
    """Train (or resume) the job's adapter and move it, complete, to ``<data_dir>/fine_tuned/<job>``."""
    from plinth.tune import CHECKPOINTS_DIR, TrainingCancelled, TuneJob, train

    request = ctx.job.request
    out = ctx.work_dir / "adapter"
    resume = any((out / CHECKPOINTS_DIR).glob("checkpoint-*"))
    if not resume:
        shutil.rmtree(out, ignore_errors=True)  # an earlier attempt that died before its first checkpoint
    validation = request.get("validation_path")
    job = TuneJob(
        model=request["checkpoint"],
        training_file=Path(request["training_path"]),
        out=out,
        hyperparameters=hyperparameters(request),
        validation_file=Path(validation) if validation else None,
        data_dir=ctx.data_dir,
        threads=ctx.threads,
        resume=resume,
    )
    if resume:
        ctx.event("Resuming from the last checkpoint")
    try:
        result = train(job, on_event=lambda event: _report(ctx, event), should_cancel=ctx.should_stop)
    except TrainingCancelled as exc:
        raise JobStopped from exc
    card = result.card
    return {
        "adapter_path": str(_publish_files(result.adapter_path, ctx.data_dir / "fine_tuned" / ctx.job.id)),
        "trained_tokens": card.trained_tokens,
        "train_loss": card.final_train_loss,
        "valid_loss": card.final_val_loss,
        "tokens_per_second": card.tokens_per_second,
    }


def _report(ctx: JobContext, event: TuneEvent) -> None:
    """Training events as job events: metrics for the loss curve, checkpoints for resuming."""
    from plinth.tune import CheckpointSaved, EpochValidated, StepMetrics

    if isinstance(event, StepMetrics):
        ctx.metrics(
            event.message, step=event.step, total_steps=event.total_steps, epoch=event.epoch,
            train_loss=event.loss, learning_rate=event.learning_rate,
            tokens_per_second=event.tokens_per_second, eta_seconds=event.eta_s,
        )  # fmt: skip
    elif isinstance(event, EpochValidated):
        ctx.metrics(event.message, step=event.step, epoch=event.epoch, valid_loss=event.val_loss)
    elif isinstance(event, CheckpointSaved):
        ctx.checkpoint(event.step, Path(event.path), {"step": event.step, "epoch": event.epoch})
        ctx.event(event.message)
    else:
        ctx.event(event.message)


def _publish_files(adapter: Path, final: Path) -> Path:
    """Copy the adapter's files into a temporary folder beside ``final``, then rename it into place, so
    ``final`` either does not exist or holds a complete adapter."""
    staging = final.with_name(final.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ADAPTER_FILES:
        if (adapter / name).exists():
            shutil.copy2(adapter / name, staging / name)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final
