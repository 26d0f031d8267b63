"""A tenant's rate limits and quotas over HTTP, for admin keys only (`plinth tenants limits` is the
CLI twin):

- ``GET /v1/admin/tenants/{tenant}/limits`` -> ``{"object": "tenant.limits", "tenant", "requests_per_minute",
  "tokens_per_minute", "concurrent_requests", "adapters", "knowledge_base_documents", "datasets",
  "concurrent_jobs"}`` (``null``: unlimited); 404 for an unknown tenant.
- ``PUT /v1/admin/tenants/{tenant}/limits`` with those fields (each a positive integer or ``null``; a
  field left out becomes ``null``) -> the same object. The new limits apply within seconds.

Enforcement is :mod:`plinth.server.quotas` (rates) and :mod:`plinth.server.tenant_quotas` (what a
tenant holds), each a 429 ``rate_limit_exceeded`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.control import Tenant, get_tenant
from plinth.control.tenant_limits import TenantLimits, get_limits, set_limits
from plinth.server.admin_api import require_admin
from plinth.server.errors import APIError
from plinth.server.state import get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/tenants", dependencies=[Depends(require_admin)])

Limit = int | None


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: Limit = Field(None, ge=1, le=10**9)
    tokens_per_minute: Limit = Field(None, ge=1, le=10**12)
    concurrent_requests: Limit = Field(None, ge=1, le=10**6)
    adapters: Limit = Field(None, ge=1, le=10**6)
    knowledge_base_documents: Limit = Field(None, ge=1, le=10**12)
    datasets: Limit = Field(None, ge=1, le=10**6)
    concurrent_jobs: Limit = Field(None, ge=1, le=10**6)


@router.get("/{tenant}/limits")
async def read_limits(tenant: str, request: Request) -> dict[str, Any]:
    found = await _tenant(request, tenant)
    limits = await asyncio.to_thread(get_limits, get_state(request).control_plane, found.id)
    return _card(found, limits)


@router.put("/{tenant}/limits")
async def write_limits(tenant: str, body: LimitsBody, request: Request) -> dict[str, Any]:
    state = get_state(request)
    found = await _tenant(request, tenant)
    limits = TenantLimits(**body.model_dump())
    await asyncio.to_thread(set_limits, state.control_plane, found.id, limits)
    if state.quotas is not None:
        state.quotas.forget(found.id)
    return _card(found, limits)


async def _tenant(request: Request, name: str) -> Tenant:
    found = await asyncio.to_thread(get_tenant, get_state(request).control_plane, name)
    if found is None:
        raise APIError(404, f"The tenant '{name}' does not exist.", param="tenant", code="not_found")
    return found


def _card(tenant: Tenant, limits: TenantLimits) -> dict[str, Any]:
    return {"object": "tenant.limits", "tenant": tenant.name, **limits.to_json()}
