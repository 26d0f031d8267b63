"""The audit log: an append-only record of security-relevant actions (keys, guardrail blocks, admin).

Events are written inside the caller's transaction, so an action and its record commit together.
``detail`` is JSON and must never hold secrets (a key's visible prefix, never the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.db import ControlPlane, audit_log, utcnow

__all__ = ["AuditEvent", "list_events", "record"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    ts: datetime
    tenant_id: int | None
    action: str
    detail: dict[str, Any] | None


def record(conn: sa.Connection, action: str, *, tenant_id: int | None = None, **detail: Any) -> None:
    """Append one event, e.g. ``record(conn, "key.create", tenant_id=t.id, prefix="pk-AbCd1234")``."""
    conn.execute(
        sa.insert(audit_log).values(ts=utcnow(), tenant_id=tenant_id, action=action, detail=detail or None)
    )


def list_events(cp: ControlPlane, *, tenant_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
    """The newest ``limit`` events, newest first; only ``tenant_id``'s when given."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(audit_log.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        return [AuditEvent(**row._mapping) for row in conn.execute(query)]
