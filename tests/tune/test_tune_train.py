"""Training on a tiny random llama: events, checkpoints, reproducibility, resume, cancel, bad input.

Each run is a few optimizer steps on 12 short conversations (about a second on one core).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from tune_fixtures import chat_rows, write_jsonl

from plinth.tune import (
    CARD_FILE,
    CheckpointSaved,
    EpochValidated,
    HyperparameterError,
    Hyperparameters,
    StepMetrics,
    TrainingCancelled,
    TrainingFileError,
    TrainingFinished,
    TrainingStarted,
    TuneJob,
    event_record,
    read_card,
    train,
)

ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", CARD_FILE}


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", chat_rows(12))


def job(base, data, out, **hyperparameters) -> TuneJob:
    settings = {"n_epochs": 2, "batch_size": 4, "micro_batch_size": 2, "r": 4, **hyperparameters}
    return TuneJob(model=str(base), training_file=data, out=out, hyperparameters=Hyperparameters(**settings))


def weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_training_reports_events_and_writes_adapter_and_card(tiny_llama, data, tmp_path) -> None:
    events: list = []
    result = train(job(tiny_llama, data, tmp_path / "out"), on_event=events.append)

    assert {p.name for p in result.adapter_path.iterdir()} >= ADAPTER_FILES
    # 12 examples, validation_split 0.1 holds out 1; 11 train examples at 4 per step -> 3 steps/epoch.
    assert isinstance(events[0], TrainingStarted) and events[0].total_steps == 6
    assert (events[0].train_examples, events[0].validation_examples) == (11, 1)
    steps = [e for e in events if isinstance(e, StepMetrics)]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]
    assert all(e.tokens_per_second > 0 and e.loss > 0 for e in steps) and steps[-1].eta_s == 0
    assert [e.epoch for e in events if isinstance(e, EpochValidated)] == [1, 2]
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [(e.epoch, e.step) for e in saved] == [(1, 3), (2, 6)]
    assert all((tmp_path / "out" / "checkpoints" / f"checkpoint-{e.step}").is_dir() for e in saved)
    assert isinstance(events[-1], TrainingFinished)
    json.dumps([event_record(e) for e in events])  # the job system stores them as JSON

    # Warm-up then cosine decay to zero: up at step 2, down after.
    rates = [e.learning_rate for e in steps]
    assert rates[0] < rates[1] and rates[1] == pytest.approx(2e-4) and rates[1] > rates[3] > rates[5]

    card = read_card(tmp_path / "out")
    assert card.base_model == str(tiny_llama) and card.steps == 6
    assert card.hyperparameters["seed"] == 0 and card.hyperparameters["r"] == 4
    assert (
        card.train_examples == 11 and len(card.val_losses) == 2 and card.final_val_loss == card.val_losses[-1]
    )
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["peft_type"] == "LORA"


@pytest.mark.slow
def test_same_seed_same_adapter_other_seed_another(tiny_llama, data, tmp_path) -> None:
    first = weights(train(job(tiny_llama, data, tmp_path / "a", n_epochs=1)).adapter_path)
    again = weights(train(job(tiny_llama, data, tmp_path / "b", n_epochs=1)).adapter_path)
    other = weights(train(job(tiny_llama, data, tmp_path / "c", n_epochs=1, seed=1)).adapter_path)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.slow
def test_cancel_stops_at_the_next_step_and_resume_finishes_the_same_adapter(
    tiny_llama, data, tmp_path
) -> None:
    straight = weights(train(job(tiny_llama, data, tmp_path / "straight")).adapter_path)

    out = tmp_path / "resumed"
    seen: list = []
    with pytest.raises(TrainingCancelled) as cancelled:
        train(job(tiny_llama, data, out), on_event=seen.append, should_cancel=lambda: len(seen) >= 6)
    # Cancelled right after the epoch-1 checkpoint event: no step of epoch 2 ran, no adapter written.
    assert cancelled.value.step == 3 and cancelled.value.last_checkpoint.endswith("checkpoint-3")
    assert not (out / "adapter_model.safetensors").exists()

    events: list = []
    train(dataclasses.replace(job(tiny_llama, data, out), resume=True), on_event=events.append)
    assert events[0].first_step == 3 and [e.step for e in events if isinstance(e, StepMetrics)] == [4, 5, 6]
    resumed = weights(out)
    assert len(read_card(out).val_losses) == 2  # epoch 1's, from before the resume, is kept
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6, rtol=0) for k in straight)


def test_cancel_mid_epoch_stops_within_a_step(tiny_llama, data, tmp_path) -> None:
    steps: list = []
    with pytest.raises(TrainingCancelled) as cancelled:
        train(
            job(tiny_llama, data, tmp_path / "out"),
            on_event=lambda e: steps.append(e) if isinstance(e, StepMetrics) else None,
            should_cancel=lambda: len(steps) >= 1,
        )
    assert cancelled.value.step == 1 and cancelled.value.last_checkpoint is None
    assert [e.step for e in steps] == [1]


def test_a_fresh_run_refuses_a_used_folder(tiny_llama, data, tmp_path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "adapter_config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="is not empty"):
        train(job(tiny_llama, data, tmp_path / "out"))


def test_bad_hyperparameters_fail_before_any_model_is_loaded(data, tmp_path) -> None:
    bad = Hyperparameters(n_epochs=0, batch_size=6, micro_batch_size=4, r=0, dropout=1.0, suffix="no spaces",
                          target_modules=("q_proj", "lm_head"), learning_rate_multiplier=-1)  # fmt: skip
    with pytest.raises(HyperparameterError) as raised:
        train(TuneJob(model=str(tmp_path / "no-such-model"), training_file=data, out=tmp_path / "o",
                      hyperparameters=bad))  # fmt: skip
    problems = raised.value.problems
    assert len(problems) == 7, problems
    for expected in ("n_epochs must be an integer from 1 to 50, not 0", "r must be", "dropout must be",
                     "target_modules ['lm_head'] cannot be served", "suffix must be",
                     "learning_rate_multiplier must be a number above 0",
                     "batch_size 6 must be a multiple of micro_batch_size 4"):  # fmt: skip
        assert any(expected in p for p in problems), expected


def test_hyperparameters_from_json_refuse_unknown_names() -> None:
    hp = Hyperparameters.from_dict({"n_epochs": 2, "target_modules": ["q_proj"], "learning_rate": 0.1})
    assert hp.target_modules == ("q_proj",)
    assert hp.problems() == ["unknown hyperparameter 'learning_rate'"]
    assert Hyperparameters().check().learning_rate == 2e-4
    assert Hyperparameters(batch_size=8, micro_batch_size=2).gradient_accumulation_steps == 4


def test_a_bad_data_file_fails_before_the_model_loads(tmp_path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    with pytest.raises(TrainingFileError, match="line 1: messages must be a non-empty list"):
        train(TuneJob(model=str(tmp_path / "no-such-model"), training_file=data, out=tmp_path / "o"))


def test_examples_cut_before_any_answer_are_named(tiny_llama, tmp_path) -> None:
    rows = chat_rows(3)
    rows[1]["messages"][1]["content"] = "word " * 200
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(TrainingFileError) as raised:
        train(job(tiny_llama, data, tmp_path / "o", max_length=64))
    assert [p.line for p in raised.value.problems] == [2]
    assert "max_length=64" in raised.value.problems[0].message


def test_resume_skips_a_checkpoint_cut_off_mid_save(tmp_path):
    """A worker killed while the Trainer saves leaves a folder without trainer_state.json (written last):
    resuming takes the newest complete checkpoint and removes the partial one."""
    from plinth.tune.trainer import _last_checkpoint

    for step, complete in ((5, True), (9, False), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"global_st')  # cut off mid-write
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-5"]
    assert _last_checkpoint(tmp_path / "missing") is None
