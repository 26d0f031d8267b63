"""``plinth model …``: the models on this machine, and random-weight checkpoints to run everything offline."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.common import build_settings

if TYPE_CHECKING:
    from plinth.llm.checkpoint_info import CheckpointInfo

__all__ = ["model_app"]

model_app = typer.Typer(help="Model checkpoints.", no_args_is_help=True)


class Arch(StrEnum):
    llama = "llama"
    mistral = "mistral"
    qwen2 = "qwen2"
    qwen3 = "qwen3"
    mixtral = "mixtral"
    qwen3_moe = "qwen3_moe"


class Size(StrEnum):
    tiny = "tiny"
    small = "small"
    b1 = "1b"
    b7 = "7b"


@model_app.command("init-random")
def init_random(
    arch: Annotated[Arch, typer.Option(help="Architecture.")],
    size: Annotated[Size, typer.Option(help="Preset size.")],
    out: Annotated[Path, typer.Option(help="Directory to write the checkpoint to.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a random-weight checkpoint (with a locally trained tokenizer) to run everything offline."""
    from plinth.engine.checkpoint import init_random as write_checkpoint

    path = write_checkpoint(arch.value, size.value, out, seed)
    typer.echo(f"wrote a {arch.value} {size.value} checkpoint to {path}")
    typer.echo("its weights are RANDOM: it exercises the stack, its outputs mean nothing")


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """Models on this machine (packaged, under the data dir, in the Hugging Face cache)."""
    from plinth.llm.catalog import list_models

    settings = build_settings(ctx)
    rows: list[tuple[str, ...]] = [("NAME", "SOURCE", "ARCH", "PARAMS", "QUANT", "SIZE", "LICENCE")]
    rows += [_model_row(m) for m in list_models(settings.data_dir)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _model_row(m: CheckpointInfo) -> tuple[str, ...]:
    params = f"{m.parameters / 1e6:.0f}M" if m.parameters else "?"
    name = f"{m.name} (random)" if m.random_weights else m.name
    size = f"{m.size_bytes / 2**20:.0f} MiB"
    return (name, m.source, m.architecture or "?", params, m.quantization or "?", size, m.licence or "?")
