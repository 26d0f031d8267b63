"""``plinth keys …``: API keys, written straight into the control plane (no server needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.common import build_settings, fail

if TYPE_CHECKING:
    from plinth.control import ControlPlane

__all__ = ["keys_app"]

keys_app = typer.Typer(help="API keys (the control plane's tenants act through them).", no_args_is_help=True)


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
        fail(str(exc))
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
            fail(f"no active key with prefix {prefix!r}", code=1)
        typer.echo(f"revoked {prefix}")
    finally:
        cp.close()
