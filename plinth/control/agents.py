"""Agent rows: each tenant's agents (their spec as JSON) and agent sessions (a conversation and the action
it waits for, as JSON). Another tenant's agent or session reads as missing, so routes answer 404::

    row = create_agent(cp, tenant_id=2, agent_id="agent_3f..", name="helper", spec=body)
    save_session(cp, "sess_1", tenant_id=2, agent_id=row.id, state={"messages": [], "pending": None})
    get_session(cp, 2, "sess_1").state
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, agent_sessions, agents, utcnow

__all__ = [
    "AgentRow",
    "AgentSessionRow",
    "create_agent",
    "delete_agent",
    "get_agent",
    "get_session",
    "list_agents",
    "save_session",
    "session_taken",
    "update_agent",
]


@dataclass(frozen=True, slots=True)
class AgentRow:
    id: str
    tenant_id: int
    name: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AgentSessionRow:
    id: str
    tenant_id: int
    agent_id: str
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def create_agent(
    cp: ControlPlane, *, tenant_id: int, agent_id: str, name: str, spec: dict[str, Any]
) -> AgentRow:
    """Record a new agent (audited)."""
    now = utcnow()
    row = AgentRow(agent_id, tenant_id, name, spec, now, now)
    with cp.engine.begin() as conn:
        conn.execute(sa.insert(agents).values(**_values(row)))
        record(conn, "agent.create", tenant_id=tenant_id, agent_id=agent_id, name=name)
    return row


def get_agent(cp: ControlPlane, tenant_id: int, agent_id: str) -> AgentRow | None:
    """The tenant's agent ``agent_id``; None also for another tenant's."""
    query = sa.select(agents).where(agents.c.id == agent_id, agents.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return AgentRow(**row._mapping) if row else None


def list_agents(cp: ControlPlane, tenant_id: int) -> list[AgentRow]:
    """The tenant's agents, oldest first."""
    query = (
        sa.select(agents).where(agents.c.tenant_id == tenant_id).order_by(agents.c.created_at, agents.c.id)
    )
    with cp.engine.connect() as conn:
        return [AgentRow(**row._mapping) for row in conn.execute(query)]


def update_agent(cp: ControlPlane, row: AgentRow, *, name: str, spec: dict[str, Any]) -> AgentRow | None:
    """Replace the agent's spec (audited); None if it was deleted meanwhile."""
    now = utcnow()
    query = sa.update(agents).where(agents.c.id == row.id, agents.c.tenant_id == row.tenant_id)
    with cp.engine.begin() as conn:
        if conn.execute(query.values(name=name, spec=spec, updated_at=now)).rowcount == 0:
            return None
        record(conn, "agent.update", tenant_id=row.tenant_id, agent_id=row.id, name=name)
    return AgentRow(row.id, row.tenant_id, name, spec, row.created_at, now)


def delete_agent(cp: ControlPlane, row: AgentRow) -> bool:
    """Delete an agent and its sessions (audited); False if it was already gone."""
    with cp.engine.begin() as conn:
        conn.execute(sa.delete(agent_sessions).where(agent_sessions.c.agent_id == row.id))
        query = sa.delete(agents).where(agents.c.id == row.id, agents.c.tenant_id == row.tenant_id)
        deleted = conn.execute(query).rowcount
        if deleted:
            record(conn, "agent.delete", tenant_id=row.tenant_id, agent_id=row.id, name=row.name)
    return bool(deleted)


def get_session(cp: ControlPlane, tenant_id: int, session_id: str) -> AgentSessionRow | None:
    """The tenant's agent session ``session_id``; None also for another tenant's."""
    query = sa.select(agent_sessions).where(
        agent_sessions.c.id == session_id, agent_sessions.c.tenant_id == tenant_id
    )
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return AgentSessionRow(**row._mapping) if row else None


def session_taken(cp: ControlPlane, session_id: str) -> bool:
    """Whether any tenant holds a session with this id."""
    query = sa.select(agent_sessions.c.id).where(agent_sessions.c.id == session_id)
    with cp.engine.connect() as conn:
        return conn.execute(query).first() is not None


def save_session(
    cp: ControlPlane, session_id: str, *, tenant_id: int, agent_id: str, state: dict[str, Any]
) -> None:
    """Create or replace a session's state; ``PermissionError`` if another tenant or agent owns the id."""
    now = utcnow()
    with cp.engine.begin() as conn:
        owner = conn.execute(
            sa.select(agent_sessions.c.tenant_id, agent_sessions.c.agent_id).where(
                agent_sessions.c.id == session_id
            )
        ).first()
        if owner is None:
            values = dict(id=session_id, tenant_id=tenant_id, agent_id=agent_id, state=state,
                          created_at=now, updated_at=now)  # fmt: skip
            conn.execute(sa.insert(agent_sessions).values(**values))
        elif tuple(owner) != (tenant_id, agent_id):
            raise PermissionError(f"session {session_id!r} belongs to another agent or tenant")
        else:
            update = sa.update(agent_sessions).where(agent_sessions.c.id == session_id)
            conn.execute(update.values(state=state, updated_at=now))


def _values(row: AgentRow) -> dict[str, Any]:
    return {"id": row.id, "tenant_id": row.tenant_id, "name": row.name, "spec": row.spec,
            "created_at": row.created_at, "updated_at": row.updated_at}  # fmt: skip
