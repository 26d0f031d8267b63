"""Train a LoRA adapter: PEFT on the base model's weights, driven by the transformers ``Trainer``.

Contract: ``train(job, on_event, should_cancel)`` checks the hyperparameters and the data before loading
the model (:class:`~plinth.tune.hyperparams.HyperparameterError`,
:class:`~plinth.tune.data.TrainingFileError`), then trains with gradient accumulation, linear warm-up and
cosine decay, a validation loss and a checkpoint (under ``<out>/checkpoints``) each epoch, and writes a
PEFT adapter Plinth serves as it is (``adapter_config.json`` + ``adapter_model.safetensors``) with
``training.json`` beside it. The same seed, data and thread count give the same adapter.
``job.resume`` continues from the last checkpoint when there is one; without it ``job.out`` must be
empty or absent (``FileExistsError``). ``should_cancel`` is polled
every forward pass; once true, training stops and :class:`TrainingCancelled` is raised (the epoch
checkpoints stay, so a later run with ``resume=True`` continues).

Example::

    >>> job = TuneJob(model="smollm2-135m-instruct", training_file=Path("data.jsonl"), out=Path("my-lora"))
    >>> result = train(job, on_event=print)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.tune.base_model import BaseCheckpoint, resolve_base
from plinth.tune.card import TrainingCard, file_sha256
from plinth.tune.data import load_training_file
from plinth.tune.dataset import PadCollator, encode_all, split_validation
from plinth.tune.encoding import EncodedExample
from plinth.tune.events import EventSink, TrainingFinished, TrainingStarted
from plinth.tune.hyperparams import Hyperparameters

__all__ = ["CHECKPOINTS_DIR", "TrainingCancelled", "TuneJob", "TuneResult", "train"]

CHECKPOINTS_DIR = "checkpoints"


class TrainingCancelled(RuntimeError):
    """``should_cancel`` stopped the run; ``last_checkpoint`` is where ``resume=True`` would continue."""

    def __init__(self, step: int, last_checkpoint: str | None) -> None:
        self.step, self.last_checkpoint = step, last_checkpoint
        super().__init__(f"training cancelled at step {step}")


@dataclass(slots=True)
class TuneJob:
    model: str  # catalog name, .gguf file, checkpoint folder or hub id
    training_file: Path
    out: Path  # becomes the adapter folder
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    validation_file: Path | None = None
    data_dir: Path = Path("plinth-data")  # where catalog models (random ones) live
    threads: int | None = None  # torch.set_num_threads: process-wide
    resume: bool = False


@dataclass(slots=True)
class TuneResult:
    adapter_path: Path
    card: TrainingCard


@dataclass(slots=True)
class _Data:
    train: list[EncodedExample]
    validation: list[EncodedExample]
    pad_token_id: int


def train(
    job: TuneJob, on_event: EventSink | None = None, should_cancel: Callable[[], bool] | None = None
) -> TuneResult:
    """Train ``job`` (see the module docstring) and return the adapter folder and its card."""
    import torch
    from transformers import set_seed

    hp = job.hyperparameters.check()
    _check_out(job)
    base = resolve_base(job.model, job.data_dir)
    data = _prepare_data(job, base, hp)
    if job.threads:
        torch.set_num_threads(job.threads)
    set_seed(hp.seed)  # before PEFT draws lora_A
    model = _peft_model(base.load_model(), hp)
    bridge = _bridge(on_event or (lambda _: None), should_cancel or (lambda: False), _started(hp, data))
    trainer = _trainer(model, job, data, bridge)
    start = time.perf_counter()
    resume_from = _last_checkpoint(job.out / CHECKPOINTS_DIR) if job.resume else None
    trainer.train(resume_from_checkpoint=resume_from)
    if bridge.cancelled:
        raise TrainingCancelled(trainer.state.global_step, _last_checkpoint(job.out / CHECKPOINTS_DIR))
    card = _card(job, base, data, trainer, bridge, time.perf_counter() - start)
    _save_adapter(model, job.out, base.name)
    card.write(job.out)
    bridge.on_event(TrainingFinished(card.steps, card.final_train_loss, card.final_val_loss, str(job.out)))
    return TuneResult(adapter_path=job.out, card=card)


def _check_out(job: TuneJob) -> None:
    """A fresh run never mixes its checkpoints with an earlier run's (``resume`` would pick theirs)."""
    if not job.resume and job.out.is_dir() and any(job.out.iterdir()):
        raise FileExistsError(
            f"{job.out} is not empty: resume to continue its checkpoints, or train into a new folder"
        )


def _prepare_data(job: TuneJob, base: BaseCheckpoint, hp: Hyperparameters) -> _Data:
    examples = load_training_file(job.training_file)
    validation = load_training_file(job.validation_file) if job.validation_file else None
    tokenizer = base.load_tokenizer()
    encoded = encode_all(tokenizer, examples, hp.max_length, job.training_file)
    if validation is not None and job.validation_file is not None:
        train_set = encoded
        val_set = encode_all(tokenizer, validation, hp.max_length, job.validation_file)
    else:
        train_set, val_set = split_validation(encoded, hp.validation_split, hp.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return _Data(train=train_set, validation=val_set, pad_token_id=int(pad or 0))


def _peft_model(model: Any, hp: Hyperparameters) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hp.r,
        lora_alpha=hp.alpha,
        lora_dropout=hp.dropout,
        target_modules=list(hp.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _bridge(on_event: EventSink, should_cancel: Callable[[], bool], started: TrainingStarted) -> Any:
    from plinth.tune.progress import EventBridge  # imports transformers

    return EventBridge(on_event, should_cancel, started)


def _trainer(model: Any, job: TuneJob, data: _Data, bridge: Any) -> Any:
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments

    hp = job.hyperparameters
    has_validation = bool(data.validation)
    args = TrainingArguments(
        output_dir=str(job.out / CHECKPOINTS_DIR),
        num_train_epochs=hp.n_epochs,
        per_device_train_batch_size=hp.forward_batch_size,
        per_device_eval_batch_size=hp.forward_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        learning_rate=hp.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=hp.warmup_ratio,  # a float below 1 is a ratio of all steps
        weight_decay=0.0,
        seed=hp.seed,
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        label_names=["labels"],
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation or None,
        data_collator=PadCollator(data.pad_token_id),
        callbacks=[bridge],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through on_event, not print()
    return trainer


def _started(hp: Hyperparameters, data: _Data) -> TrainingStarted:
    steps_per_epoch = -(-len(data.train) // hp.batch_size)
    return TrainingStarted(
        total_steps=steps_per_epoch * hp.n_epochs,
        n_epochs=hp.n_epochs,
        train_examples=len(data.train),
        validation_examples=len(data.validation),
        train_tokens=sum(len(e.input_ids) for e in data.train),
        first_step=0,
    )


def _last_checkpoint(folder: Path) -> str | None:
    """The newest COMPLETE checkpoint: the Trainer writes ``trainer_state.json`` last, so a folder
    without a readable one was cut off mid-save (the process was killed) and is removed, not resumed."""
    found = sorted(folder.glob("checkpoint-*"), key=_step, reverse=True) if folder.is_dir() else []
    for checkpoint in found:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):
            shutil.rmtree(checkpoint, ignore_errors=True)
            continue
        return str(checkpoint)
    return None


def _step(checkpoint: Path) -> int:
    suffix = checkpoint.name.removeprefix("checkpoint-")
    return int(suffix) if suffix.isdigit() else -1


def _save_adapter(model: Any, out: Path, base_name: str) -> None:
    model.peft_config["default"].base_model_name_or_path = base_name
    # Embeddings are never trained (the engine serves only projections); "auto" would ask the hub.
    model.save_pretrained(str(out), save_embedding_layers=False)


def _card(
    job: TuneJob, base: BaseCheckpoint, data: _Data, trainer: Any, bridge: Any, seconds: float
) -> TrainingCard:
    from plinth.tune.progress import losses

    hp = job.hyperparameters
    state = trainer.state
    final_train_loss, val_losses = losses(state, hp.n_epochs)
    return TrainingCard(
        base_model=base.name,
        base_checkpoint=base.checkpoint,
        hyperparameters=hp.to_dict(),
        training_file=_file_entry(job.training_file),
        validation_file=_file_entry(job.validation_file) if job.validation_file else None,
        train_examples=len(data.train),
        validation_examples=len(data.validation),
        train_tokens=sum(len(e.input_ids) for e in data.train),
        trained_tokens=sum(e.num_trained for e in data.train) * hp.n_epochs,
        steps=state.global_step,
        time_s=round(seconds, 3),
        tokens_per_second=round(bridge.tokens_per_second(), 2),
        final_train_loss=final_train_loss,
        final_val_loss=val_losses[-1] if val_losses else None,
        val_losses=val_losses,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _file_entry(path: Path) -> dict[str, str]:
    return {"name": Path(path).name, "sha256": file_sha256(Path(path))}
