"""What every command shares: turning flags into :class:`~plinth.config.Settings`, and failing cleanly.

Commands import from here, never from :mod:`plinth.cli.app` (the entry point imports the commands)::

    settings = build_settings(ctx, port=port)   # toml < env < the flags given
    fail("no such dataset", code=1)             # "Error: ..." on stderr, exit 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from plinth.config import Settings

__all__ = ["ApiKey", "ConfigFile", "DataDir", "Url", "adapter_model", "build_settings", "fail"]

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./plinth-data).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="plinth.toml to read.")]
# the HTTP-client commands' (adapters, agent): which server, with which key
Url = Annotated[str | None, typer.Option("--url", help="Server URL (default http://127.0.0.1:8000).")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key (default: PLINTH_API_KEY).")]


def build_settings(ctx: typer.Context, **flags: Any) -> Settings:
    """Settings from toml < env < the flags given (global ones first); exit 2 with the reason if invalid."""
    given = {**_given(ctx.obj or {}), **_given(flags)}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid configuration: {problems}")
    except FileNotFoundError as exc:
        fail(str(exc))


def _given(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags the user actually passed: absent ones must not override toml or env."""
    return {name: value for name, value in flags.items() if value not in (None, [], ())}


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code`` (2: usage or configuration)."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def adapter_model(ctx: typer.Context, settings: Any, adapter: str) -> tuple[Any, str | None]:
    """The local model (``settings.models[0]``, else the default) with ``adapter`` -- a folder or a
    packaged adapter's name -- merged in, and the SQL prompt format its data card names
    (:mod:`plinth.sql.adapter_prompt`); ``sql ask --adapter`` and ``eval run`` targets use it."""
    from plinth.llm.catalog import PACKAGED_ADAPTERS_DIR
    from plinth.llm.loading import load_models
    from plinth.sql import read_prompt_format

    if settings.llm_url:
        fail("--adapter merges an adapter into a local model; with --llm-url name the adapter as --model")
    folder = Path(adapter) if Path(adapter).is_dir() else PACKAGED_ADAPTERS_DIR / adapter
    if not folder.is_dir():
        fail(f"--adapter {adapter}: no such folder, and no packaged adapter of that name")
    folder = folder.absolute()
    merged = build_settings(
        ctx, models=settings.models or None, adapters=[folder.parent], merge_lora=folder.name
    )
    return load_models(merged)[0], read_prompt_format(folder)
