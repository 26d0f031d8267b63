"""How much of each quota'd resource a tenant holds now (see :mod:`plinth.control.tenant_limits`).

Counted from the rows themselves, so a deletion frees quota at once and nothing can drift::

    usage(cp, tenant.id, "datasets")  # SQL datasets the tenant registered
    usage(cp, tenant.id, "concurrent_jobs", job_kinds=("fine_tune",), finished=("succeeded", "failed"))
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from plinth.control.db import ControlPlane, adapters, jobs, kb_jobs, knowledge_bases, sql_datasets

__all__ = ["usage"]


def usage(
    cp: ControlPlane,
    tenant_id: int,
    quota: str,
    *,
    job_kinds: Sequence[str] = (),
    finished: Sequence[str] = (),
) -> int:
    """The tenant's count for ``quota`` (a :class:`TenantLimits` quota field). Jobs count while their
    kind is one of ``job_kinds`` and their status is not one of ``finished`` (each kind has its own)."""
    with cp.engine.connect() as conn:
        if quota == "knowledge_base_documents":
            return _documents(conn, tenant_id)
        query = {
            "adapters": _count(adapters, tenant_id),
            "datasets": _count(sql_datasets, tenant_id),
            "concurrent_jobs": _count(jobs, tenant_id).where(
                jobs.c.kind.in_(job_kinds), jobs.c.status.not_in(finished)
            ),
        }[quota]
        return int(conn.execute(query).scalar_one())


def _count(table: sa.Table, tenant_id: int) -> sa.Select:
    return sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)


def _documents(conn: sa.Connection, tenant_id: int) -> int:
    """Documents in the tenant's knowledge bases as each one's latest successful sync left them."""
    query = (
        sa.select(kb_jobs.c.kb_id, kb_jobs.c.report)
        .join(knowledge_bases, knowledge_bases.c.id == kb_jobs.c.kb_id)
        .where(kb_jobs.c.tenant_id == tenant_id, kb_jobs.c.status == "succeeded")
        .order_by(kb_jobs.c.finished_at)
    )
    latest = {kb_id: report or {} for kb_id, report in conn.execute(query)}
    return sum(r.get("added", 0) + r.get("changed", 0) + r.get("unchanged", 0) for r in latest.values())
