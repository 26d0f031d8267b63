"""``plinth adapters``: LoRA adapters on a running server (an HTTP client of its API)."""

from __future__ import annotations

from typing import Annotated

import typer

from plinth.cli.common import ApiKey, Url, build_settings, fail

adapters_app = typer.Typer(
    help="LoRA adapters on a running server (an HTTP client: --url, --api-key or PLINTH_API_KEY).",
    no_args_is_help=True,
)


def _client_settings(ctx: typer.Context, url: str | None, api_key: str | None) -> tuple[str, str | None]:
    settings = build_settings(ctx, server_url=url, api_key=api_key)
    return settings.server_url, settings.api_key


@adapters_app.command("list")
def adapters_list(ctx: typer.Context, url: Url = None, api_key: ApiKey = None) -> None:
    """List the adapters your key can use (yours and public ones)."""
    from plinth.cli.adapters_client import AdapterClientError, list_adapters

    try:
        cards = list_adapters(*_client_settings(ctx, url, api_key))
    except AdapterClientError as exc:
        fail(str(exc), code=1)
    typer.echo(f"{'NAME':<24} {'BASE MODEL':<32} {'OWNER':<16} {'RANK':>4}  SOURCE")
    for card in cards:
        typer.echo(
            f"{card['name']:<24} {card['base_model']:<32} {card['owned_by']:<16} {card['rank']:>4}  "
            f"{card['source']}"
        )


@adapters_app.command("add")
def adapters_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name (what clients pass as `model`).")],
    source: Annotated[str, typer.Argument(help="Folder or .tar.gz (uploaded), hub id, or URL (admin).")],
    base_model: Annotated[str | None, typer.Option(help="Base model (default: the one it fits).")] = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every tenant (admin key).")] = False,
    server_path: Annotated[
        bool, typer.Option("--server-path", help="SOURCE is a path on the server's machine (admin key).")
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Register an adapter on the server."""
    from plinth.cli.adapters_client import AdapterClientError, add_adapter

    server, key = _client_settings(ctx, url, api_key)
    try:
        cards = add_adapter(
            server, key, name, source, base_model=base_model, public=public, server_path=server_path
        )
    except AdapterClientError as exc:
        fail(str(exc), code=1)
    for card in cards:
        typer.echo(
            f"added {card['name']} (base {card['base_model']}, rank {card['rank']}, {card['owned_by']})"
        )


@adapters_app.command("rm")
def adapters_rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Unregister an adapter (running requests finish; new ones get 404)."""
    from plinth.cli.adapters_client import AdapterClientError, remove_adapter

    try:
        remove_adapter(*_client_settings(ctx, url, api_key), name)
    except AdapterClientError as exc:
        fail(str(exc), code=1)
    typer.echo(f"removed {name}")
