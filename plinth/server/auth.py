"""Who is calling: ``Authorization: Bearer <key>`` -> a :class:`~plinth.control.Tenant` on ``request.state``.

Every ``/v1`` and ``/invocations`` route depends on :func:`require_tenant`; later features read
``request.state.tenant`` and scope every lookup by its id. With ``--no-auth`` (only allowed on loopback,
see :func:`plinth.config.check_bind`) every request acts as the built-in ``local`` tenant.
"""

from __future__ import annotations

import asyncio

from fastapi import Request

from plinth.control import LOCAL_TENANT, ControlPlane, Tenant, authenticate, get_or_create_tenant
from plinth.server.errors import APIError
from plinth.server.key_cache import bearer_key
from plinth.server.quotas import admit
from plinth.server.state import ServerState

__all__ = ["local_tenant", "require_tenant"]


def local_tenant(cp: ControlPlane) -> Tenant:
    """The tenant a ``--no-auth`` server acts as (admin: there is no one else on loopback)."""
    tenant = get_or_create_tenant(cp, LOCAL_TENANT)
    return Tenant(tenant.id, tenant.name, is_admin=True)


async def require_tenant(request: Request) -> Tenant:
    """FastAPI dependency: the caller's tenant, or a 401, then admission (a 429 past its rate limits).

    A key seen in the last few seconds comes from the key cache, so the request costs no thread hop and
    no query; otherwise the database is asked in a worker thread, never on the event loop (nor are the
    tenant's limits read there when they are not cached)."""
    state: ServerState = request.app.state.plinth
    tenant = state.no_auth_tenant or await _tenant_from_header(state, request)
    request.state.tenant = tenant
    if state.quotas is None or state.quotas.has_fresh_limits(tenant.id):
        admit(state.quotas, tenant, request.url.path)
    else:
        await asyncio.to_thread(admit, state.quotas, tenant, request.url.path)  # context (account) copied
    return tenant


async def _tenant_from_header(state: ServerState, request: Request) -> Tenant:
    key = bearer_key(request.headers.get("authorization", ""))
    if key is None:
        raise APIError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>' (create one with `plinth keys create`).",
            code="missing_api_key",
        )
    tenant = state.keys.get(key)
    if tenant is None:
        tenant = await asyncio.to_thread(authenticate, state.control_plane, key)
        if tenant is None:
            raise APIError(401, "Invalid API key.", code="invalid_api_key")
        state.keys.put(key, tenant)
    return tenant
