"""``/v1/sql/*``: ask a dataset in plain language, run vetted SQL, manage datasets (work in progress)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from plinth.server.auth import require_tenant

__all__ = ["router"]

router = APIRouter(prefix="/v1/sql", dependencies=[Depends(require_tenant)])
