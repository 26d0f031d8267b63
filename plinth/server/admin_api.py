"""API keys over HTTP, for admin keys only (the web app's key page; ``plinth keys`` is the CLI twin):

- ``GET /v1/admin/keys`` -> ``{"object": "list", "data": [key]}``, every tenant's keys, revoked ones
  included; ``key`` is ``{"prefix", "tenant", "admin", "created", "revoked", "active"}`` and never
  holds the secret or its hash.
- ``POST /v1/admin/keys`` ``{"tenant", "admin"?}`` -> 201 ``{"key", ...key}``: the only time the
  secret is shown (only its hash is stored).
- ``DELETE /v1/admin/keys/{prefix}`` -> ``{"id": prefix, "object": "api_key", "deleted": true}``
  (revoked, kept in listings); 404 when no active key has that prefix.

Any other key gets a 403: a key that can mint keys can act as every tenant.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from plinth.control import KEY_PREFIX, VISIBLE_CHARS, KeyInfo, Tenant, create_key, list_keys, revoke_key
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError
from plinth.server.state import get_state

__all__ = ["router"]


def require_admin(tenant: Annotated[Tenant, Depends(require_tenant)]) -> Tenant:
    """FastAPI dependency: the caller's tenant if its key is an admin key, else a 403."""
    if not tenant.is_admin:
        raise APIError(403, "Only admin keys may manage API keys.", code="admin_required")
    return tenant


router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_admin)])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str
    admin: bool = False


@router.get("/keys")
async def get_keys(request: Request) -> dict[str, Any]:
    keys = await asyncio.to_thread(list_keys, get_state(request).control_plane)
    return {"object": "list", "data": [_card(k) for k in keys]}


@router.post("/keys", status_code=201)
async def post_key(body: KeyCreate, request: Request) -> dict[str, Any]:
    cp = get_state(request).control_plane
    try:
        key = await asyncio.to_thread(create_key, cp, body.tenant, body.admin)
    except ValueError as exc:  # an invalid or reserved tenant name
        raise APIError(400, str(exc), param="tenant") from exc
    prefix = key[: len(KEY_PREFIX) + VISIBLE_CHARS]
    info = next(k for k in await asyncio.to_thread(list_keys, cp, body.tenant) if k.prefix == prefix)
    return {"key": key, **_card(info)}


@router.delete("/keys/{prefix}")
async def delete_key(prefix: str, request: Request) -> dict[str, Any]:
    state = get_state(request)
    if not await asyncio.to_thread(revoke_key, state.control_plane, prefix):
        raise APIError(404, f"No active API key has the prefix '{prefix}'.", param="prefix", code="not_found")
    state.keys.clear()  # the revoked key is refused from the next request on, not after the cache's TTL
    return {"id": prefix, "object": "api_key", "deleted": True}


def _card(info: KeyInfo) -> dict[str, Any]:
    return {
        "prefix": info.prefix,
        "tenant": info.tenant,
        "admin": info.is_admin,
        "created": _ts(info.created_at),
        "revoked": _ts(info.revoked_at),
        "active": info.active,
    }


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None
