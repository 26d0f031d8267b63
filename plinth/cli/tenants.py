"""``plinth tenants …``: per-tenant rate limits, written straight into the control plane (no server
needed; a running server picks a change up within seconds)."""

from __future__ import annotations

from typing import Annotated

import typer

from plinth.cli.common import build_settings, fail

__all__ = ["tenants_app"]

tenants_app = typer.Typer(help="Tenants' rate limits and quotas.", no_args_is_help=True)

PerMinute = Annotated[int | None, typer.Option(min=1, help="Per minute; left out: kept as it is.")]
Concurrent = Annotated[int | None, typer.Option(min=1, help="Requests in flight at once.")]
Quota = Annotated[int | None, typer.Option(min=1, help="At most this many; left out: kept as it is.")]


@tenants_app.command("limits")
def tenants_limits(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="The tenant's name.")],
    requests_per_minute: PerMinute = None,
    tokens_per_minute: PerMinute = None,
    concurrent_requests: Concurrent = None,
    adapters: Quota = None,
    knowledge_base_documents: Quota = None,
    datasets: Quota = None,
    concurrent_jobs: Annotated[
        int | None, typer.Option(min=1, help="Fine-tuning, batch and evaluation jobs unfinished at once.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every limit (unlimited).")] = False,
) -> None:
    """Show a tenant's rate limits and quotas; with options, change the ones given first (--clear: none at
    all)."""
    import dataclasses

    from plinth.control import get_tenant, open_control_plane
    from plinth.control.tenant_limits import TenantLimits, get_limits, set_limits

    settings = build_settings(ctx)
    assert settings.database_url is not None
    cp = open_control_plane(settings.database_url)
    try:
        found = get_tenant(cp, tenant)
        if found is None:
            fail(f"no tenant named {tenant!r}", code=1)
        given = {"requests_per_minute": requests_per_minute, "tokens_per_minute": tokens_per_minute,
                 "concurrent_requests": concurrent_requests, "adapters": adapters,
                 "knowledge_base_documents": knowledge_base_documents, "datasets": datasets,
                 "concurrent_jobs": concurrent_jobs}  # fmt: skip
        changes = {k: v for k, v in given.items() if v is not None}
        if clear or changes:
            current = TenantLimits() if clear else get_limits(cp, found.id)
            set_limits(cp, found.id, dataclasses.replace(current, **changes))
        for name, value in get_limits(cp, found.id).to_json().items():
            typer.echo(f"{name:<24} {'unlimited' if value is None else value}")
    finally:
        cp.close()
