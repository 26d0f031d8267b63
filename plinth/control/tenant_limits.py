"""Per-tenant rate limits and quotas, one row per tenant that has any (``None``: no limit).

Rate limits (per minute, in flight) are enforced on every request; quotas (how many adapters,
knowledge-base documents, SQL datasets and unfinished jobs a tenant may hold) at the routes that create
them, against :func:`plinth.control.tenant_usage.usage`.

The server reads them through a short cache (:mod:`plinth.server.quotas`) and enforces them; admin keys
set them with ``PUT /v1/admin/tenants/{tenant}/limits`` or ``plinth tenants limits``::

    set_limits(cp, tenant.id, TenantLimits(requests_per_minute=60, concurrent_requests=4))
    get_limits(cp, tenant.id).tokens_per_minute  # None: unlimited
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from plinth.control.db import ControlPlane, tenant_limits, utcnow

__all__ = ["LIMIT_FIELDS", "TenantLimits", "get_limits", "set_limits"]


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """What one tenant may use; each ``None`` means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None  # prompt + generated tokens of the OpenAI-style routes
    concurrent_requests: int | None = None
    adapters: int | None = None  # the tenant's own adapters (public ones are the admins')
    knowledge_base_documents: int | None = None  # documents in all its knowledge bases, as last synced
    datasets: int | None = None  # SQL datasets
    concurrent_jobs: int | None = None  # fine-tuning, batch and evaluation jobs not yet finished

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


LIMIT_FIELDS = tuple(f.name for f in dataclasses.fields(TenantLimits))


def get_limits(cp: ControlPlane, tenant_id: int) -> TenantLimits:
    """The tenant's limits (all ``None`` when none were set)."""
    with cp.engine.connect() as conn:
        row = conn.execute(sa.select(tenant_limits).where(tenant_limits.c.tenant_id == tenant_id)).first()
    if row is None:
        return TenantLimits()
    return TenantLimits(**{name: getattr(row, name) for name in LIMIT_FIELDS})


def set_limits(cp: ControlPlane, tenant_id: int, limits: TenantLimits) -> None:
    """Replace the tenant's limits (one transaction)."""
    values = {**limits.to_json(), "updated_at": utcnow()}
    with cp.engine.begin() as conn:
        conn.execute(sa.delete(tenant_limits).where(tenant_limits.c.tenant_id == tenant_id))
        conn.execute(sa.insert(tenant_limits).values(tenant_id=tenant_id, **values))
