"""``GET /v1/me``: who the caller is, so the web app can check a key at sign-in and show admin pages.

The answer is ``{"tenant", "is_admin", "auth": "key" | "none"}``; ``auth`` is ``"none"`` on a
``--no-auth`` server, where the web app skips its sign-in screen. A wrong key is the usual 401, so a
sign-in form needs no route of its own: a key that can call ``/v1/me`` can call everything else it may.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from plinth.control import Tenant
from plinth.server.auth import require_tenant
from plinth.server.state import get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/me")
def me(request: Request, tenant: Annotated[Tenant, Depends(require_tenant)]) -> dict[str, Any]:
    """The caller's tenant and whether its key is an admin key."""
    auth = "none" if get_state(request).no_auth_tenant is not None else "key"
    return {"tenant": tenant.name, "is_admin": tenant.is_admin, "auth": auth}
