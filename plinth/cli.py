"""The ``plinth`` command line: thin wrappers over library functions.

Each command turns its flags into :class:`~plinth.config.Settings` keyword arguments (flags left out do
not override ``plinth.toml`` or ``PLINTH_*``) and calls one function. Heavy modules (torch, the server,
SQLAlchemy) are imported inside commands so ``plinth --help`` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from plinth import __version__
from plinth.config import InsecureBindError, Settings, check_bind

if TYPE_CHECKING:
    from plinth.control import ControlPlane
    from plinth.llm.checkpoint_info import CheckpointInfo

app = typer.Typer(name="plinth", help="Self-hosted generative-AI platform.", no_args_is_help=True)
model_app = typer.Typer(help="Model checkpoints.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (the control plane's tenants act through them).", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plinth {__version__}")
        raise typer.Exit()


DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./plinth-data).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="plinth.toml to read.")]


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Self-hosted generative-AI platform: serving, adapters, knowledge bases, SQL, guardrails."""
    ctx.obj = {"data_dir": data_dir, "config": config}


def build_settings(ctx: typer.Context, **flags: Any) -> Settings:
    """Settings from toml < env < the flags given (global ones first); exit 2 with the reason if invalid."""
    given = {**_given(ctx.obj or {}), **_given(flags)}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid configuration: {problems}")
    except FileNotFoundError as exc:
        _fail(str(exc))


def _given(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags the user actually passed: absent ones must not override toml or env."""
    return {name: value for name, value in flags.items() if value not in (None, [], ())}


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _serve(settings: Settings) -> None:
    try:
        check_bind(settings)
    except InsecureBindError as exc:
        _fail(str(exc))
    from plinth.server.app import serve

    serve(settings)


@app.command()
def serve(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Catalog name (default smollm2-135m-instruct; random-llama-small), checkpoint dir, "
            ".gguf file or hub id (repeatable).",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto|float32|bfloat16|float16.")] = None,
    device: Annotated[str | None, typer.Option(help="auto|cpu|cuda|cuda:N.")] = None,
    load_format: Annotated[str | None, typer.Option(help="auto|dummy (random weights).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (loopback only).")] = False,
    data_dir: DataDir = None,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server for features.")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(help="Max sequences per batch.")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Max prompt + output tokens.")] = None,
    adapters: Annotated[
        list[Path] | None,
        typer.Option("--adapters", help="Directory whose adapter subfolders are served to all tenants."),
    ] = None,
    enable_lora: Annotated[
        bool | None, typer.Option("--enable-lora/--no-enable-lora", help="Serve LoRA adapters (default on).")
    ] = None,
    max_loras: Annotated[int | None, typer.Option(help="Adapters in compute slots at once (8).")] = None,
    max_lora_rank: Annotated[int | None, typer.Option(help="Largest adapter rank served (16).")] = None,
    max_cpu_loras: Annotated[int | None, typer.Option(help="Adapters cached in host memory (64).")] = None,
    merge_lora: Annotated[
        str | None, typer.Option(help="Serve this --adapters adapter merged into its base model.")
    ] = None,
    config: ConfigFile = None,
) -> None:
    """Serve the OpenAI-compatible API and the web app."""
    settings = build_settings(
        ctx,
        models=model,
        host=host,
        port=port,
        dtype=dtype,
        device=device,
        load_format=load_format,
        no_auth=no_auth or None,
        data_dir=data_dir,
        llm_url=llm_url,
        max_num_seqs=max_num_seqs,
        max_model_len=max_model_len,
        adapters=adapters,
        enable_lora=enable_lora,
        max_loras=max_loras,
        max_lora_rank=max_lora_rank,
        max_cpu_loras=max_cpu_loras,
        merge_lora=merge_lora,
        config=config,
    )
    _serve(settings)


@app.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the packaged default model without API keys, with the sample data, to try Plinth offline."""
    settings = build_settings(ctx, models=None, host=host, port=port, data_dir=data_dir, no_auth=True)
    shared = Path("../shared/data")  # the open datasets beside a checkout (the movie catalog)
    demo_data = shared if (shared / "movies").is_dir() else None
    settings = settings.model_copy(update={"models": [], "demo_data": demo_data})
    if demo_data is None:
        typer.echo("No ../shared/data/movies beside this checkout: the movies knowledge base is skipped.")
    url = f"http://{settings.host}:{settings.port}/"
    typer.echo(f"Plinth demo at {url} (model smollm2-135m-instruct, no auth)")
    _serve(settings)


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
    rows = [("NAME", "SOURCE", "ARCH", "PARAMS", "QUANT", "SIZE", "LICENCE")]
    rows += [_model_row(m) for m in list_models(settings.data_dir)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _model_row(m: CheckpointInfo) -> tuple[str, ...]:
    params = f"{m.parameters / 1e6:.0f}M" if m.parameters else "?"
    name = f"{m.name} (random)" if m.random_weights else m.name
    size = f"{m.size_bytes / 2**20:.0f} MiB"
    return (name, m.source, m.architecture or "?", params, m.quantization or "?", size, m.licence or "?")


def _control_plane(ctx: typer.Context) -> ControlPlane:
    from plinth.control import open_control_plane

    settings = build_settings(ctx)
    assert settings.database_url is not None
    return open_control_plane(settings.database_url)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="Tenant the key acts as (created if missing).")] = "local",
    admin: Annotated[bool, typer.Option("--admin", help="The key may administer all tenants.")] = False,
) -> None:
    """Create a key and print it (only it, on stdout): it is shown this once."""
    from plinth.control import create_key

    cp = _control_plane(ctx)
    try:
        typer.echo(create_key(cp, tenant, admin=admin))
    except ValueError as exc:
        _fail(str(exc))
    finally:
        cp.close()


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List keys by visible prefix (keys themselves are never stored)."""
    from plinth.control import list_keys

    cp = _control_plane(ctx)
    try:
        for key in list_keys(cp, tenant):
            status = "active" if key.active else "revoked"
            role = "admin" if key.is_admin else "-"
            typer.echo(
                f"{key.prefix}  {key.tenant:<20} {role:<6} {status:<8} {key.created_at:%Y-%m-%d %H:%M}"
            )
    finally:
        cp.close()


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="Key prefix, pk-XXXXXXXX.")]
) -> None:
    """Revoke a key by its visible prefix."""
    from plinth.control import revoke_key

    cp = _control_plane(ctx)
    try:
        if not revoke_key(cp, prefix):
            _fail(f"no active key with prefix {prefix!r}", code=1)
        typer.echo(f"revoked {prefix}")
    finally:
        cp.close()


def _register_subcommands() -> None:
    """Sub-apps live in their own modules (one concept each); they import helpers from here."""
    from plinth.cli_adapters import adapters_app
    from plinth.cli_eval import eval_app
    from plinth.cli_guard import guard_app
    from plinth.cli_kb import kb_app
    from plinth.cli_sql import data_app, sql_app

    app.add_typer(adapters_app, name="adapters")
    app.add_typer(kb_app, name="kb")
    app.add_typer(data_app, name="data")
    app.add_typer(sql_app, name="sql")
    app.add_typer(guard_app, name="guard")
    app.add_typer(eval_app, name="eval")


_register_subcommands()
