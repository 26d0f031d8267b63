"""Knowledge-base rows: each tenant's knowledge bases (config as JSON), their sync jobs and RAG sessions.

The vectors live in the KB's store (LanceDB files, pgvector); these rows say which KBs exist, how they
are configured, and what each sync did. Names are unique per tenant (enforced by the database). A job
moves queued -> running -> succeeded | failed, and at most one job per KB is queued or running::

    kb = create_kb(cp, tenant_id=2, name="docs", config={...})
    job = create_job(cp, kb)                       # raises SyncRunningError if one is active
    update_job(cp, job.id, status="running", done=3, total=10)
    save_session(cp, "s-1", tenant_id=2, kb_id=kb.id, turns=[{"user": "hi", "assistant": "hello"}])
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, kb_jobs, kb_sessions, knowledge_bases, utcnow

__all__ = [
    "ACTIVE_STATUSES",
    "JobRow",
    "KnowledgeBaseExistsError",
    "KnowledgeBaseRow",
    "SessionRow",
    "SyncRunningError",
    "active_job",
    "create_job",
    "create_kb",
    "delete_kb",
    "fail_unfinished_jobs",
    "get_job",
    "get_kb",
    "get_session",
    "has_succeeded_job",
    "latest_job",
    "list_kbs",
    "save_session",
    "update_job",
    "update_kb_config",
]

ACTIVE_STATUSES = ("queued", "running")


class KnowledgeBaseExistsError(ValueError):
    """The tenant already has a knowledge base of this name."""


class SyncRunningError(RuntimeError):
    """A sync of this knowledge base is already queued or running."""


@dataclass(frozen=True, slots=True)
class KnowledgeBaseRow:
    id: int
    tenant_id: int
    name: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    kb_id: int
    tenant_id: int
    status: str  # queued | running | succeeded | failed
    done: int
    total: int
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    tenant_id: int
    kb_id: int | None
    turns: list[Any]
    updated_at: datetime


# --- knowledge bases ------------------------------------------------------------------------------


def create_kb(cp: ControlPlane, *, tenant_id: int, name: str, config: dict[str, Any]) -> KnowledgeBaseRow:
    """Record a new KB (audited); raises :class:`KnowledgeBaseExistsError` if the name is taken."""
    now = utcnow()
    insert = sa.insert(knowledge_bases).values(
        tenant_id=tenant_id, name=name, config=config, created_at=now, updated_at=now
    )
    try:
        with cp.engine.begin() as conn:
            kb_id = conn.execute(insert.returning(knowledge_bases.c.id)).scalar_one()
            record(conn, "kb.create", tenant_id=tenant_id, name=name)
    except sa.exc.IntegrityError as exc:
        raise KnowledgeBaseExistsError(f"a knowledge base named {name!r} already exists") from exc
    return KnowledgeBaseRow(kb_id, tenant_id, name, config, now, now)


def get_kb(cp: ControlPlane, tenant_id: int, name: str) -> KnowledgeBaseRow | None:
    """The tenant's KB called ``name``; None also for another tenant's (callers answer 404)."""
    query = sa.select(knowledge_bases).where(
        knowledge_bases.c.tenant_id == tenant_id, knowledge_bases.c.name == name
    )
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return KnowledgeBaseRow(**row._mapping) if row else None


def list_kbs(cp: ControlPlane, tenant_id: int) -> list[KnowledgeBaseRow]:
    """The tenant's KBs by name."""
    query = (
        sa.select(knowledge_bases)
        .where(knowledge_bases.c.tenant_id == tenant_id)
        .order_by(knowledge_bases.c.name)
    )
    with cp.engine.connect() as conn:
        return [KnowledgeBaseRow(**row._mapping) for row in conn.execute(query)]


def update_kb_config(cp: ControlPlane, kb_id: int, config: dict[str, Any]) -> None:
    """Replace a KB's config (a source added, the metadata schema inferred at the first sync)."""
    update = sa.update(knowledge_bases).where(knowledge_bases.c.id == kb_id)
    with cp.engine.begin() as conn:
        conn.execute(update.values(config=config, updated_at=utcnow()))


def delete_kb(cp: ControlPlane, kb: KnowledgeBaseRow) -> bool:
    """Delete a KB with its jobs and sessions (audited); False if it was already gone."""
    with cp.engine.begin() as conn:
        conn.execute(sa.delete(kb_jobs).where(kb_jobs.c.kb_id == kb.id))
        conn.execute(sa.delete(kb_sessions).where(kb_sessions.c.kb_id == kb.id))
        deleted = conn.execute(sa.delete(knowledge_bases).where(knowledge_bases.c.id == kb.id)).rowcount
        if deleted:
            record(conn, "kb.delete", tenant_id=kb.tenant_id, name=kb.name)
    return bool(deleted)


# --- sync jobs ------------------------------------------------------------------------------------


def create_job(cp: ControlPlane, kb: KnowledgeBaseRow) -> JobRow:
    """A queued job for ``kb``; :class:`SyncRunningError` if one is already queued or running."""
    job_id = f"kbjob-{uuid.uuid4().hex[:24]}"
    now = utcnow()
    with cp.engine.begin() as conn:
        if _active_job_id(conn, kb.id) is not None:
            raise SyncRunningError(f"a sync of knowledge base {kb.name!r} is already running")
        conn.execute(
            sa.insert(kb_jobs).values(
                id=job_id, kb_id=kb.id, tenant_id=kb.tenant_id, status="queued", done=0, total=0,
                created_at=now,
            )
        )  # fmt: skip
    return JobRow(job_id, kb.id, kb.tenant_id, "queued", 0, 0, None, None, now, None, None)


def update_job(cp: ControlPlane, job_id: str, **fields: Any) -> None:
    """Set some of a job's columns (``status``, ``done``, ``total``, ``report``, ``error``, times)."""
    with cp.engine.begin() as conn:
        conn.execute(sa.update(kb_jobs).where(kb_jobs.c.id == job_id).values(**fields))


def get_job(cp: ControlPlane, tenant_id: int, job_id: str) -> JobRow | None:
    """The tenant's job ``job_id``; None also for another tenant's."""
    query = sa.select(kb_jobs).where(kb_jobs.c.id == job_id, kb_jobs.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return JobRow(**row._mapping) if row else None


def active_job(cp: ControlPlane, kb_id: int) -> str | None:
    """The id of the KB's queued or running job, if any."""
    with cp.engine.connect() as conn:
        return _active_job_id(conn, kb_id)


def latest_job(cp: ControlPlane, kb_id: int) -> JobRow | None:
    """The KB's most recent job (what a KB listing shows as its last sync)."""
    query = sa.select(kb_jobs).where(kb_jobs.c.kb_id == kb_id).order_by(kb_jobs.c.created_at.desc())
    with cp.engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    return JobRow(**row._mapping) if row else None


def has_succeeded_job(cp: ControlPlane, kb_id: int) -> bool:
    """Whether any sync of the KB succeeded: its store then holds a complete version to protect."""
    query = sa.select(kb_jobs.c.id).where(kb_jobs.c.kb_id == kb_id, kb_jobs.c.status == "succeeded")
    with cp.engine.connect() as conn:
        return conn.execute(query.limit(1)).first() is not None


def fail_unfinished_jobs(cp: ControlPlane) -> int:
    """Mark jobs a previous process left queued/running as failed (their writes were never committed)."""
    update = sa.update(kb_jobs).where(kb_jobs.c.status.in_(ACTIVE_STATUSES))
    values = {"status": "failed", "error": "interrupted: the server stopped during the sync"}
    with cp.engine.begin() as conn:
        return conn.execute(update.values(**values, finished_at=utcnow())).rowcount


def _active_job_id(conn: sa.Connection, kb_id: int) -> str | None:
    query = sa.select(kb_jobs.c.id).where(kb_jobs.c.kb_id == kb_id, kb_jobs.c.status.in_(ACTIVE_STATUSES))
    return conn.execute(query.limit(1)).scalar()


# --- RAG sessions ---------------------------------------------------------------------------------


def get_session(cp: ControlPlane, tenant_id: int, session_id: str) -> SessionRow | None:
    """The tenant's session ``session_id``; None also for another tenant's."""
    query = sa.select(kb_sessions).where(kb_sessions.c.id == session_id, kb_sessions.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return SessionRow(**row._mapping) if row else None


def save_session(
    cp: ControlPlane, session_id: str, *, tenant_id: int, kb_id: int | None, turns: list[Any]
) -> SessionRow:
    """Create or replace a session's turns; raises ``PermissionError`` if another tenant owns the id."""
    now = utcnow()
    with cp.engine.begin() as conn:
        owner = conn.execute(
            sa.select(kb_sessions.c.tenant_id).where(kb_sessions.c.id == session_id)
        ).scalar()
        if owner is None:
            conn.execute(
                sa.insert(kb_sessions).values(
                    id=session_id, tenant_id=tenant_id, kb_id=kb_id, turns=turns, updated_at=now
                )
            )
        elif owner != tenant_id:
            raise PermissionError(f"session {session_id!r} belongs to another tenant")
        else:
            update = sa.update(kb_sessions).where(kb_sessions.c.id == session_id)
            conn.execute(update.values(kb_id=kb_id, turns=turns, updated_at=now))
    return SessionRow(session_id, tenant_id, kb_id, turns, now)
