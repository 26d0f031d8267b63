"""SQL dataset rows: each tenant's named datasets (kind + tables as JSON), unique by name per tenant.

The files stay where the user keeps them; these rows say which datasets exist and where their tables
are::

    row = create_dataset(cp, tenant_id=1, name="costs", kind="cur",
                         config={"tables": {"cur": {"path": "/data/cur", "format": "parquet"}}})
    get_dataset(cp, 1, "costs")        # None for a missing one, or another tenant's
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, sql_datasets, utcnow

__all__ = [
    "DatasetExistsError",
    "DatasetRow",
    "create_dataset",
    "delete_dataset",
    "get_dataset",
    "list_datasets",
    "update_dataset",
]


class DatasetExistsError(ValueError):
    """The tenant already has a dataset of this name."""


@dataclass(frozen=True, slots=True)
class DatasetRow:
    id: int
    tenant_id: int
    name: str
    kind: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def create_dataset(
    cp: ControlPlane, *, tenant_id: int, name: str, kind: str, config: dict[str, Any]
) -> DatasetRow:
    """Record a new dataset (audited); raises :class:`DatasetExistsError` if the name is taken."""
    now = utcnow()
    insert = sa.insert(sql_datasets).values(
        tenant_id=tenant_id, name=name, kind=kind, config=config, created_at=now, updated_at=now
    )
    try:
        with cp.engine.begin() as conn:
            row_id = conn.execute(insert.returning(sql_datasets.c.id)).scalar_one()
            record(conn, "sql_dataset.create", tenant_id=tenant_id, name=name, kind=kind)
    except sa.exc.IntegrityError as exc:
        raise DatasetExistsError(f"a dataset named {name!r} already exists") from exc
    return DatasetRow(row_id, tenant_id, name, kind, config, now, now)


def get_dataset(cp: ControlPlane, tenant_id: int, name: str) -> DatasetRow | None:
    """The tenant's dataset called ``name``; None also for another tenant's (callers answer 404)."""
    query = sa.select(sql_datasets).where(sql_datasets.c.tenant_id == tenant_id, sql_datasets.c.name == name)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return DatasetRow(**row._mapping) if row else None


def list_datasets(cp: ControlPlane, tenant_id: int) -> list[DatasetRow]:
    """The tenant's datasets by name."""
    query = sa.select(sql_datasets).where(sql_datasets.c.tenant_id == tenant_id).order_by(sql_datasets.c.name)
    with cp.engine.connect() as conn:
        return [DatasetRow(**row._mapping) for row in conn.execute(query)]


def update_dataset(cp: ControlPlane, row_id: int, *, kind: str, config: dict[str, Any]) -> None:
    """Replace a dataset's kind and tables (re-registration of the same name)."""
    update = sa.update(sql_datasets).where(sql_datasets.c.id == row_id)
    with cp.engine.begin() as conn:
        conn.execute(update.values(kind=kind, config=config, updated_at=utcnow()))


def delete_dataset(cp: ControlPlane, tenant_id: int, name: str) -> bool:
    """Delete the tenant's dataset (audited); False if there was none."""
    delete = sa.delete(sql_datasets).where(sql_datasets.c.tenant_id == tenant_id, sql_datasets.c.name == name)
    with cp.engine.begin() as conn:
        deleted = conn.execute(delete).rowcount
        if deleted:
            record(conn, "sql_dataset.delete", tenant_id=tenant_id, name=name)
    return bool(deleted)
