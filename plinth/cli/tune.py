"""``plinth tune``: train a LoRA adapter from a JSONL file, with a progress bar (loss, tokens/s, time left).

A thin wrapper over :func:`plinth.tune.train`. Exit codes: 0 trained, 1 the model cannot be loaded,
2 a bad data file or bad hyperparameters (every problem is listed, before any model is loaded),
130 cancelled with Ctrl-C (the epoch checkpoints stay; ``--resume`` continues). The adapter folder is
served as it is: ``plinth serve --model M --adapters <parent of --out>``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from plinth.cli.common import build_settings, fail

if TYPE_CHECKING:  # plinth.tune loads torch: imported when the command runs, not for `plinth --help`
    from plinth.tune import TuneEvent, TuneJob, TuneResult

# Hyperparameters() defaults, repeated here so the CLI imports no torch; a test keeps them equal.
N_EPOCHS, BATCH_SIZE, LEARNING_RATE, R, ALPHA, DROPOUT, SEED = 3, 8, 2e-4, 8, 16, 0.05, 0
WARMUP_RATIO, MAX_LENGTH = 0.1, 1024
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

__all__ = ["tune"]


def tune(
    ctx: typer.Context,
    data: Annotated[
        Path, typer.Option("--data", help="Training JSONL (chat messages or prompt/completion).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Adapter folder (checkpoints go to out/checkpoints).")],
    model: Annotated[
        str, typer.Option("--model", help="Catalog name, .gguf file, checkpoint folder or hub id.")
    ] = "smollm2-135m-instruct",
    validation: Annotated[
        Path | None, typer.Option("--validation-data", help="Validation JSONL (default: hold out a share).")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="n_epochs.")] = N_EPOCHS,
    batch_size: Annotated[int, typer.Option(help="Examples per optimizer step.")] = BATCH_SIZE,
    micro_batch_size: Annotated[
        int | None, typer.Option(help="Examples per forward pass (gradient accumulation makes up the rest).")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = LEARNING_RATE,
    r: Annotated[int, typer.Option("--r", help="LoRA rank.")] = R,
    alpha: Annotated[int, typer.Option(help="LoRA alpha (scaling is alpha / r).")] = ALPHA,
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = DROPOUT,
    target_modules: Annotated[str, typer.Option(help="Comma-separated projections to adapt.")] = ",".join(
        TARGET_MODULES
    ),
    seed: Annotated[int, typer.Option(help="Same seed and data, same adapter.")] = SEED,
    suffix: Annotated[str | None, typer.Option(help="A name suffix, recorded in training.json.")] = None,
    max_length: Annotated[int, typer.Option(help="Tokens per example (longer ones are cut).")] = MAX_LENGTH,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps warming up.")] = WARMUP_RATIO,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch (default: all).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from --out's last checkpoint.")] = False,
) -> None:
    """Train a LoRA adapter for MODEL on --data and write it to --out (PEFT format, served as it is)."""
    from plinth.tune import BASE_LEARNING_RATE, Hyperparameters, TuneJob

    hyperparameters = Hyperparameters(
        n_epochs=epochs,
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        learning_rate_multiplier=lr / BASE_LEARNING_RATE,
        r=r,
        alpha=alpha,
        dropout=dropout,
        target_modules=tuple(m.strip() for m in target_modules.split(",") if m.strip()),
        seed=seed,
        suffix=suffix,
        max_length=max_length,
        warmup_ratio=warmup_ratio,
    )
    job = TuneJob(
        model=model,
        training_file=data,
        out=out,
        hyperparameters=hyperparameters,
        validation_file=validation,
        data_dir=_data_dir(ctx),
        threads=threads,
        resume=resume,
    )
    result = _run(job)
    card = result.card
    typer.echo(
        f"adapter: {result.adapter_path} ({card.steps} steps, {card.time_s:.0f} s, "
        f"{card.tokens_per_second:.0f} tokens/s; train loss {_loss(card.final_train_loss)}, "
        f"validation loss {_loss(card.final_val_loss)})"
    )
    typer.echo(f"serve it: plinth serve --model {model} --adapters {result.adapter_path.parent}")


def _run(job: TuneJob) -> TuneResult:
    from plinth.tune import HyperparameterError, TrainingCancelled, TrainingFileError, train

    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if _main_thread() else None
    try:
        with _ProgressBar() as bar:
            return train(job, on_event=bar.show, should_cancel=cancel.is_set)
    except (HyperparameterError, TrainingFileError) as exc:
        _fail(str(exc), 2)
    except TrainingCancelled as exc:
        _fail(f"{exc}; the last checkpoint is {exc.last_checkpoint} (--resume continues from it)", 130)
    except (LookupError, OSError) as exc:  # the model is not installed or cannot be loaded
        _fail(str(exc), 1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class _ProgressBar:
    """A rich progress bar fed by training events; epoch results print above it."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]tune"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[speed]} tok/s  {task.fields[eta]} left"),
        )
        self.task = self.progress.add_task("tune", total=None, loss="-", speed="-", eta="-")

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def show(self, event: TuneEvent) -> None:
        from plinth.tune import (
            CheckpointSaved,
            EpochValidated,
            StepMetrics,
            TrainingFinished,
            TrainingStarted,
        )

        if isinstance(event, TrainingStarted):
            self.progress.console.print(event.message)
            self.progress.update(self.task, total=event.total_steps, completed=event.first_step)
        elif isinstance(event, StepMetrics):
            self.progress.update(
                self.task,
                completed=event.step,
                loss=f"{event.loss:.4f}",
                speed=f"{event.tokens_per_second:.0f}",
                eta=_duration(event.eta_s),
            )
        elif isinstance(event, EpochValidated | CheckpointSaved | TrainingFinished):
            self.progress.console.print(event.message)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _data_dir(ctx: typer.Context) -> Path:
    """The data dir from the global options and settings (where catalog models live)."""
    return Path(build_settings(ctx).data_dir)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _fail(message: str, code: int) -> NoReturn:
    fail(message, code)
