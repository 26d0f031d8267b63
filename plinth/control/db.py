"""Control-plane storage: the SQLAlchemy engine, the current table shapes, and opening a database.

SQLAlchemy Core, not the ORM: rows are plain tuples and every query is visible where it runs. SQLite is
the default (one file under the data directory); any SQLAlchemy URL, PostgreSQL included, runs the same
code. The tables here describe the schema *after* all migrations, for queries; migrations.py creates
them, owns every schema change and its own ledger (the ``migrations`` table)::

    cp = open_control_plane("sqlite:///plinth-data/plinth.db")   # creates the file, applies migrations
    tenant = authenticate(cp, key)                                # from plinth.control
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from plinth.control.migrations import MIGRATIONS, Migration, apply_migrations

__all__ = [
    "ControlPlane",
    "adapters",
    "agent_sessions",
    "agents",
    "api_keys",
    "audit_log",
    "files",
    "guardrails",
    "job_checkpoints",
    "job_events",
    "jobs",
    "kb_jobs",
    "kb_sessions",
    "knowledge_bases",
    "metadata",
    "open_control_plane",
    "sql_datasets",
    "tenant_limits",
    "tenants",
]

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),
)

adapters = sa.Table(
    "adapters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=True),  # NULL: public
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("base_model", sa.String(500), nullable=False),
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

knowledge_bases = sa.Table(
    "knowledge_bases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

kb_jobs = sa.Table(
    "kb_jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kb_id", sa.Integer, sa.ForeignKey("knowledge_bases.id"), nullable=False),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | succeeded | failed
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("report", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

kb_sessions = sa.Table(
    "kb_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("kb_id", sa.Integer, sa.ForeignKey("knowledge_bases.id"), nullable=True),
    sa.Column("turns", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

sql_datasets = sa.Table(
    "sql_datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # cur | cur2 | focus | custom
    sa.Column("config", sa.JSON, nullable=False),  # {"tables": {name: {"path", "format"}}, ...}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

guardrails = sa.Table(
    "guardrails",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the guardrailId clients see
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),  # the CreateGuardrail body
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # file-<hex>, the id clients see
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),  # fine-tune | batch | evals
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("path", sa.Text, nullable=False),  # where the content lies, under the data dir
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # ftjob-<hex> for fine-tuning
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # fine_tune (batch, evaluation later)
    sa.Column("status", sa.String(32), nullable=False),  # validating_files | queued | running | succeeded ...
    sa.Column("request", sa.JSON, nullable=False),  # the validated create body
    sa.Column("result", sa.JSON, nullable=True),  # kind-specific: trained_tokens, fine_tuned_model, ...
    sa.Column("error", sa.JSON, nullable=True),  # {"code", "message", "param"}
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),  # worker starts; >1 means it resumed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),  # the runner running it (batch kinds), see m010
    sa.Column("claim_expires_at", sa.Float, nullable=True),  # epoch seconds; past it, another may claim
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),  # info | warn | error
    sa.Column("type", sa.String(16), nullable=False),  # message | metrics
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

job_checkpoints = sa.Table(
    "job_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # agent_<hex>, the id clients see
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # the create/update body, checked (plinth.agents.AgentSpec)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

agent_sessions = sa.Table(
    "agent_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the session_id clients see (or chose)
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("agent_id", sa.String(40), nullable=False),  # no foreign key: deleting an agent ends them
    sa.Column("state", sa.JSON, nullable=False),  # {"messages", "pending"}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

tenant_limits = sa.Table(
    "tenant_limits",
    metadata,
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("requests_per_minute", sa.Integer, nullable=True),
    sa.Column("tokens_per_minute", sa.Integer, nullable=True),
    sa.Column("concurrent_requests", sa.Integer, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("adapters", sa.Integer, nullable=True),
    sa.Column("knowledge_base_documents", sa.Integer, nullable=True),
    sa.Column("datasets", sa.Integer, nullable=True),
    sa.Column("concurrent_jobs", sa.Integer, nullable=True),
)


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """An open control-plane database. Thread-safe: every call checks a connection out of the pool."""

    engine: Engine

    def close(self) -> None:
        """Release pooled connections (the server calls this at shutdown; tests between cases)."""
        self.engine.dispose()


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_control_plane(url: str, *, migrations: Sequence[Migration] | None = None) -> ControlPlane:
    """Connect to ``url``, create the SQLite file's directory, and apply pending migrations.

    ``migrations`` defaults to :data:`plinth.control.migrations.MIGRATIONS`; tests pass their own list.
    """
    cp = ControlPlane(create_engine(url))
    apply_migrations(cp.engine, MIGRATIONS if migrations is None else migrations)
    return cp


def create_engine(url: str) -> Engine:
    """An engine with SQLite made fit for a threaded server (see :func:`_configure_sqlite`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if in_memory:  # one shared connection, or every checkout would see a fresh empty database
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, **kwargs)
    _configure_sqlite(engine, wal=not in_memory)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    """WAL (readers never block the writer), enforced foreign keys, and real transactions.

    pysqlite's own transaction handling skips BEGIN before DDL, so a failed migration would be left
    half-applied; taking over BEGIN (SQLAlchemy's documented recipe) makes each migration atomic.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")
