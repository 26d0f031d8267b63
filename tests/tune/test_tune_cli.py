"""``plinth tune`` as a user runs it: trains a tiny model, or exits 2 listing what is wrong."""

from __future__ import annotations

import json

import pytest
import typer
from tune_fixtures import chat_rows, write_jsonl
from typer.testing import CliRunner

from plinth.cli.tune import tune

pytestmark = pytest.mark.usefixtures("clean_env")

app = typer.Typer()
app.callback()(lambda: None)  # a group, as on the real root app: `<app> tune ...`
app.command("tune")(tune)
runner = CliRunner()


def test_tune_trains_an_adapter_and_says_how_to_serve_it(tiny_llama, tmp_path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(8))
    out = tmp_path / "adapters" / "adder"
    args = ["tune", "--model", str(tiny_llama), "--data", str(data), "--out", str(out), "--epochs", "1",
            "--batch-size", "4", "--r", "4", "--lr", "1e-3", "--target-modules", "q_proj,v_proj"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Training 8 examples" in result.output and "Epoch 1: validation loss" not in result.output
    assert f"adapter: {out} (2 steps" in result.output
    assert f"--adapters {out.parent}" in result.output
    config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"] and config["r"] == 4
    card = json.loads((out / "training.json").read_text())
    assert card["hyperparameters"]["learning_rate_multiplier"] == pytest.approx(5.0)


def test_a_bad_file_exits_2_listing_line_numbers(tmp_path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\nnope\n')
    result = runner.invoke(app, ["tune", "--model", "x", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert (
        "line 1: messages must be a non-empty list" in result.output
        and "line 2: not valid JSON" in result.output
    )


def test_bad_hyperparameters_exit_2_before_loading_anything(tmp_path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(2))
    args = ["tune", "--model", "no-such-model", "--data", str(data), "--out", str(tmp_path / "o"), "--r", "0",
            "--target-modules", "embed_tokens"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "r must be an integer from 1 to 256, not 0" in result.output
    assert "target_modules ['embed_tokens'] cannot be served" in result.output


def test_the_cli_defaults_are_the_library_defaults() -> None:
    from plinth.cli import tune as cli
    from plinth.tune import Hyperparameters

    lib = Hyperparameters()
    assert (lib.n_epochs, lib.batch_size, lib.r, lib.alpha, lib.dropout, lib.seed) == (
        cli.N_EPOCHS,
        cli.BATCH_SIZE,
        cli.R,
        cli.ALPHA,
        cli.DROPOUT,
        cli.SEED,
    )
    assert (lib.warmup_ratio, lib.max_length, tuple(lib.target_modules)) == (
        cli.WARMUP_RATIO,
        cli.MAX_LENGTH,
        cli.TARGET_MODULES,
    )
    assert lib.learning_rate == cli.LEARNING_RATE
