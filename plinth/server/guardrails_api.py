"""``/v1/guardrails``: Bedrock-shaped guardrail objects and ApplyGuardrail (work in progress)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from plinth.server.auth import require_tenant

__all__ = ["router"]

router = APIRouter(prefix="/v1/guardrails", dependencies=[Depends(require_tenant)])
