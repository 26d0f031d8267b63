"""Who is calling: ``Authorization: Bearer <key>`` -> a :class:`~plinth.control.Tenant` on ``request.state``.

Every ``/v1`` and ``/invocations`` route depends on :func:`require_tenant`; later features read
``request.state.tenant`` and scope every lookup by its id. With ``--no-auth`` (only allowed on loopback,
see :func:`plinth.config.check_bind`) every request acts as the built-in ``local`` tenant.
"""

from __future__ import annotations

from fastapi import Request

from plinth.control import LOCAL_TENANT, ControlPlane, Tenant, authenticate, get_or_create_tenant
from plinth.server.errors import APIError
from plinth.server.quotas import admit

__all__ = ["local_tenant", "require_tenant"]


def local_tenant(cp: ControlPlane) -> Tenant:
    """The tenant a ``--no-auth`` server acts as (admin: there is no one else on loopback)."""
    tenant = get_or_create_tenant(cp, LOCAL_TENANT)
    return Tenant(tenant.id, tenant.name, is_admin=True)


def require_tenant(request: Request) -> Tenant:
    """FastAPI dependency: the caller's tenant, or a 401. Sync on purpose: FastAPI runs it in a thread,
    so the database lookup never blocks the event loop."""
    state = request.app.state.plinth
    tenant = state.no_auth_tenant or _tenant_from_header(state.control_plane, request)
    request.state.tenant = tenant
    admit(state.quotas, tenant, request.url.path)  # 429 past the tenant's rate limits
    return tenant


def _tenant_from_header(cp: ControlPlane, request: Request) -> Tenant:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise APIError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>' (create one with `plinth keys create`).",
            code="missing_api_key",
        )
    tenant = authenticate(cp, key.strip())
    if tenant is None:
        raise APIError(401, "Invalid API key.", code="invalid_api_key")
    return tenant
