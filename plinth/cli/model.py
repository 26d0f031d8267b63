"""``plinth model …``: model checkpoints (a random-weight one, to run everything offline)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["model_app"]

model_app = typer.Typer(help="Model checkpoints.", no_args_is_help=True)


class Arch(StrEnum):
    llama = "llama"
    mistral = "mistral"
    qwen2 = "qwen2"
    qwen3 = "qwen3"


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
