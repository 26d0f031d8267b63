"""Ordered, named schema migrations, each applied once and recorded in the ``migrations`` table.

As in Datasette and sqlite-utils: a migration is a plain function of a connection, its ``__name__`` is
its identity, and the list order is the apply order. To change the schema, append a new function with
:func:`migration` (never edit or rename one that has shipped) and update the query-side tables in
db.py. Each migration runs in its own transaction together with its record, so it is all-or-nothing.

Migrations declare the tables they create on their own ``MetaData``: a snapshot of the schema at that
point, so later edits to db.py can never change what an old migration does. The module owns its
ledger, :data:`migrations_table`, and imports nothing from the app (db.py imports it, never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = [
    "MIGRATIONS",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "migration",
    "migrations_table",
]

Migration = Callable[[sa.Connection], None]
MIGRATIONS: list[Migration] = []

migrations_table = sa.Table(
    "migrations",
    sa.MetaData(),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration."""
    MIGRATIONS.append(fn)
    return fn


def apply_migrations(engine: Engine, migrations: Sequence[Migration]) -> list[str]:
    """Apply, in order, each migration not yet recorded; return the names applied this time."""
    names = [m.__name__ for m in migrations]
    assert len(set(names)) == len(names), f"duplicate migration names in {names}"
    migrations_table.create(engine, checkfirst=True)
    done = applied_migrations(engine)
    applied = []
    for fn in migrations:
        if fn.__name__ in done:
            continue
        with engine.begin() as conn:
            fn(conn)
            conn.execute(sa.insert(migrations_table).values(name=fn.__name__, applied_at=_utcnow()))
        applied.append(fn.__name__)
    return applied


def applied_migrations(engine: Engine) -> set[str]:
    """Names of the migrations recorded in the database."""
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(migrations_table.c.name)))


@migration
def m001_tenants_keys_audit(conn: sa.Connection) -> None:
    """Tenants, hashed API keys, the audit log, and the built-in ``local`` tenant."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    tenants = sa.Table(
        "tenants",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", tz, nullable=False),
    )
    sa.Table(
        "api_keys",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("revoked_at", tz, nullable=True),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", tz, nullable=False, index=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=True, index=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    md.create_all(conn)
    conn.execute(sa.insert(tenants).values(name="local", created_at=_utcnow()))


@migration
def m002_adapters(conn: sa.Connection) -> None:
    """LoRA adapter registrations, so they survive restarts. ``tenant_id`` NULL means public.

    ``source`` is what the user registered (path, archive, hub id, upload); ``path`` is the resolved
    local PEFT folder the server re-registers from at start. Names are unique per tenant; SQL treats
    NULLs as distinct, so public names get their own partial unique index.
    """
    md = sa.MetaData()
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    table = sa.Table(
        "adapters",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=True, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("base_model", sa.String(500), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_adapters_tenant_name"),
    )
    public = table.c.tenant_id.is_(None)
    sa.Index(
        "uq_adapters_public_name", table.c.name, unique=True, sqlite_where=public, postgresql_where=public
    )
    table.create(conn)


@migration
def m003_knowledge(conn: sa.Connection) -> None:
    """Knowledge bases (config as JSON, names unique per tenant), their sync jobs, and RAG sessions.

    Jobs and sessions belong to a knowledge base; deleting one deletes its rows in the same transaction
    (see plinth.control.knowledge), so no ON DELETE clause is needed here.
    """
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "knowledge_bases",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_knowledge_bases_tenant_name"),
    )
    sa.Table(
        "kb_jobs",
        md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kb_id", sa.Integer, sa.ForeignKey("knowledge_bases.id"), nullable=False, index=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("started_at", tz, nullable=True),
        sa.Column("finished_at", tz, nullable=True),
    )
    sa.Table(
        "kb_sessions",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("kb_id", sa.Integer, sa.ForeignKey("knowledge_bases.id"), nullable=True, index=True),
        sa.Column("turns", sa.JSON, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    md.create_all(conn)


@migration
def m004_sql_datasets(conn: sa.Connection) -> None:
    """Ask-your-data datasets: a named set of tables (paths + formats as JSON), unique per tenant."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "sql_datasets",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_sql_datasets_tenant_name"),
    )
    md.create_all(conn)


@migration
def m005_guardrails(conn: sa.Connection) -> None:
    """Guardrails (the Bedrock CreateGuardrail body as JSON), names unique per tenant; at most one per
    tenant is the default (enforced in plinth.control.guardrails, in one transaction)."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "guardrails",
        md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_guardrails_tenant_name"),
    )
    md.create_all(conn)


@migration
def m006_files_and_jobs(conn: sa.Connection) -> None:
    """Uploaded files (OpenAI's Files API) and the one job system (fine-tuning now; batch and evaluation
    jobs are other ``kind`` s): a job's request and result as JSON, its events and checkpoints."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "files",
        md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    sa.Table(
        "jobs",
        md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("started_at", tz, nullable=True),
        sa.Column("finished_at", tz, nullable=True),
    )
    sa.Table(
        "job_events",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False, index=True),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("created_at", tz, nullable=False),
    )
    sa.Table(
        "job_checkpoints",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False, index=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    md.create_all(conn)


@migration
def m007_longer_adapter_names(conn: sa.Connection) -> None:
    """Adapter names up to 200 characters: fine-tuned models are named ``ft:<base>:<tenant>:<suffix>:<job>``.
    SQLite does not enforce VARCHAR lengths, so only other databases need the column widened."""
    if conn.dialect.name != "sqlite":
        conn.execute(sa.text("ALTER TABLE adapters ALTER COLUMN name TYPE VARCHAR(200)"))


@migration
def m008_agents(conn: sa.Connection) -> None:
    """Agents (their spec as JSON, per tenant) and agent sessions: the conversation so far and the action
    a session waits for, as JSON, each belonging to one agent of one tenant."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "agents",
        md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    sa.Table(
        "agent_sessions",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("agent_id", sa.String(40), nullable=False, index=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    md.create_all(conn)


@migration
def m009_tenant_limits(conn: sa.Connection) -> None:
    """Per-tenant rate limits and quotas (NULL: unlimited); see plinth.control.tenant_limits."""
    md = sa.MetaData()
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "tenant_limits",
        md,
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("tokens_per_minute", sa.Integer, nullable=True),
        sa.Column("concurrent_requests", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    md.create_all(conn)


@migration
def m010_job_claims(conn: sa.Connection) -> None:
    """Which server runs a job: the claim's owner and when its lease ends (epoch seconds), so two servers
    on one control plane never run the same batch, and a dead owner's job is taken over (plinth.control.jobs
    ``claim``)."""
    conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN claimed_by VARCHAR(64)"))
    conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN claim_expires_at FLOAT"))


@migration
def m011_tenant_quotas(conn: sa.Connection) -> None:
    """Quotas beside the rate limits (NULL: unlimited): adapters, knowledge-base documents, SQL datasets
    and jobs (fine-tuning, batch, evaluation) unfinished at once; see plinth.control.tenant_limits."""
    for column in ("adapters", "knowledge_base_documents", "datasets", "concurrent_jobs"):
        conn.execute(sa.text(f"ALTER TABLE tenant_limits ADD COLUMN {column} INTEGER"))


def _utcnow() -> datetime:
    return datetime.now(UTC)
