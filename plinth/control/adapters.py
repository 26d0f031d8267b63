"""Adapter registrations: which LoRA adapters exist, whose they are, and where their files are.

The engine forgets everything at exit; these rows are what the server re-registers at start. A row
with ``tenant_id`` None is public (visible to every tenant). Names are unique per owner, enforced by
the database, so two concurrent registrations of one name cannot both win::

    row = add_adapter(cp, tenant_id=2, name="sql", base_model="qwen", source="org/sql-lora", path=p)
    remove_adapter(cp, row.id)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, adapters, utcnow

__all__ = ["AdapterExistsError", "AdapterRow", "add_adapter", "list_adapters", "remove_adapter"]


class AdapterExistsError(ValueError):
    """The owner already has an adapter of this name."""


@dataclass(frozen=True, slots=True)
class AdapterRow:
    id: int
    tenant_id: int | None
    name: str
    base_model: str
    source: str
    path: str  # a local folder, or the fsspec URL its files are fetched from
    created_at: datetime


def add_adapter(
    cp: ControlPlane, *, tenant_id: int | None, name: str, base_model: str, source: str, path: str | Path
) -> AdapterRow:
    """Record a registration (audited); raises :class:`AdapterExistsError` if the name is taken."""
    created_at = utcnow()
    insert = sa.insert(adapters).values(
        tenant_id=tenant_id, name=name, base_model=base_model, source=source, path=str(path),
        created_at=created_at,
    )  # fmt: skip
    try:
        with cp.engine.begin() as conn:
            row_id = conn.execute(insert.returning(adapters.c.id)).scalar_one()
            record(conn, "adapter.add", tenant_id=tenant_id, name=name, base_model=base_model)
    except sa.exc.IntegrityError as exc:
        raise AdapterExistsError(f"an adapter named {name!r} already exists") from exc
    return AdapterRow(row_id, tenant_id, name, base_model, source, str(path), created_at)


def remove_adapter(cp: ControlPlane, adapter_id: int) -> bool:
    """Delete a registration by id (audited); False if it was already gone."""
    with cp.engine.begin() as conn:
        row = conn.execute(sa.select(adapters).where(adapters.c.id == adapter_id)).first()
        if row is None:
            return False
        conn.execute(sa.delete(adapters).where(adapters.c.id == adapter_id))
        record(conn, "adapter.remove", tenant_id=row.tenant_id, name=row.name)
    return True


def list_adapters(cp: ControlPlane) -> list[AdapterRow]:
    """Every registration, oldest first (the server scopes by tenant in memory)."""
    with cp.engine.connect() as conn:
        rows = conn.execute(sa.select(adapters).order_by(adapters.c.id))
        return [AdapterRow(**row._mapping) for row in rows]
