"""Guardrail rows: each tenant's guardrails (the CreateGuardrail body as JSON) and its default.

Names are unique per tenant (the database enforces it); the id is the ``guardrailId`` clients see. An
update replaces the body and bumps ``version``. At most one guardrail per tenant is the default -- the one
chat, RAG and SQL use when a request names none -- and :func:`set_default` moves it in one transaction,
so two concurrent calls can never leave two defaults::

    row = create_guardrail(cp, tenant_id=2, name="support", config=body, is_default=True)
    row = update_guardrail(cp, row, name="support", config=new_body)   # row.version == 2
    get_default(cp, 2).id == row.id
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, guardrails, utcnow

__all__ = [
    "GuardrailExistsError",
    "GuardrailRow",
    "create_guardrail",
    "delete_guardrail",
    "get_default",
    "get_guardrail",
    "list_guardrails",
    "set_default",
    "update_guardrail",
]

_ID_ALPHABET = string.ascii_lowercase + string.digits


class GuardrailExistsError(ValueError):
    """The tenant already has a guardrail of this name."""


@dataclass(frozen=True, slots=True)
class GuardrailRow:
    id: str
    tenant_id: int
    name: str
    version: int
    config: dict[str, Any]
    is_default: bool
    created_at: datetime
    updated_at: datetime


def create_guardrail(
    cp: ControlPlane, *, tenant_id: int, name: str, config: dict[str, Any], is_default: bool = False
) -> GuardrailRow:
    """Record a new guardrail at version 1 (audited); :class:`GuardrailExistsError` if the name is taken."""
    guardrail_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))  # Bedrock's id shape
    now = utcnow()
    values = dict(id=guardrail_id, tenant_id=tenant_id, name=name, version=1, config=config,
                  is_default=False, created_at=now, updated_at=now)  # fmt: skip
    try:
        with cp.engine.begin() as conn:
            conn.execute(sa.insert(guardrails).values(**values))
            record(conn, "guardrail.create", tenant_id=tenant_id, guardrail_id=guardrail_id, name=name)
            if is_default:
                _make_default(conn, tenant_id, guardrail_id)
    except sa.exc.IntegrityError as exc:
        raise GuardrailExistsError(f"a guardrail named {name!r} already exists") from exc
    return GuardrailRow(guardrail_id, tenant_id, name, 1, config, is_default, now, now)


def get_guardrail(cp: ControlPlane, tenant_id: int, id_or_name: str) -> GuardrailRow | None:
    """The tenant's guardrail with this id (or, failing that, this name); None also for another
    tenant's, so callers answer 404 without revealing that it exists."""
    scoped = sa.select(guardrails).where(guardrails.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(scoped.where(guardrails.c.id == id_or_name)).first()
        row = row or conn.execute(scoped.where(guardrails.c.name == id_or_name)).first()
    return GuardrailRow(**row._mapping) if row else None


def list_guardrails(cp: ControlPlane, tenant_id: int) -> list[GuardrailRow]:
    """The tenant's guardrails by name."""
    query = sa.select(guardrails).where(guardrails.c.tenant_id == tenant_id).order_by(guardrails.c.name)
    with cp.engine.connect() as conn:
        return [GuardrailRow(**row._mapping) for row in conn.execute(query)]


def update_guardrail(
    cp: ControlPlane, row: GuardrailRow, *, name: str, config: dict[str, Any], is_default: bool | None = None
) -> GuardrailRow:
    """Replace the body (and name), bump the version, and set or clear the default when ``is_default``
    is given (audited). :class:`GuardrailExistsError` if the new name is another guardrail's;
    :class:`LookupError` if the row was deleted meanwhile."""
    now = utcnow()
    update = sa.update(guardrails).where(guardrails.c.id == row.id, guardrails.c.tenant_id == row.tenant_id)
    values = dict(name=name, config=config, version=guardrails.c.version + 1, updated_at=now)
    try:
        with cp.engine.begin() as conn:
            if conn.execute(update.values(**values)).rowcount == 0:
                raise LookupError(f"guardrail {row.id!r} no longer exists")
            if is_default is True:
                _make_default(conn, row.tenant_id, row.id)
            elif is_default is False:
                conn.execute(sa.update(guardrails).where(guardrails.c.id == row.id).values(is_default=False))
            record(conn, "guardrail.update", tenant_id=row.tenant_id, guardrail_id=row.id, name=name)
            fresh = conn.execute(sa.select(guardrails).where(guardrails.c.id == row.id)).one()
    except sa.exc.IntegrityError as exc:
        raise GuardrailExistsError(f"a guardrail named {name!r} already exists") from exc
    return GuardrailRow(**fresh._mapping)


def delete_guardrail(cp: ControlPlane, row: GuardrailRow) -> bool:
    """Delete a guardrail (audited); False if it was already gone. Deleting the default leaves none."""
    query = sa.delete(guardrails).where(guardrails.c.id == row.id, guardrails.c.tenant_id == row.tenant_id)
    with cp.engine.begin() as conn:
        deleted = conn.execute(query).rowcount
        if deleted:
            record(conn, "guardrail.delete", tenant_id=row.tenant_id, guardrail_id=row.id, name=row.name)
    return bool(deleted)


def set_default(cp: ControlPlane, tenant_id: int, guardrail_id: str | None) -> None:
    """Make ``guardrail_id`` the tenant's default (None: no default), in one transaction (audited).
    :class:`LookupError` if the tenant has no such guardrail."""
    with cp.engine.begin() as conn:
        if guardrail_id is None:
            _clear_default(conn, tenant_id)
        else:
            _make_default(conn, tenant_id, guardrail_id)
        record(conn, "guardrail.default", tenant_id=tenant_id, guardrail_id=guardrail_id)


def get_default(cp: ControlPlane, tenant_id: int) -> GuardrailRow | None:
    """The tenant's default guardrail, if it set one."""
    query = sa.select(guardrails).where(guardrails.c.tenant_id == tenant_id, guardrails.c.is_default)
    with cp.engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    return GuardrailRow(**row._mapping) if row else None


def _clear_default(conn: sa.Connection, tenant_id: int) -> None:
    scoped = sa.update(guardrails).where(guardrails.c.tenant_id == tenant_id, guardrails.c.is_default)
    conn.execute(scoped.values(is_default=False))


def _make_default(conn: sa.Connection, tenant_id: int, guardrail_id: str) -> None:
    _clear_default(conn, tenant_id)
    mine = sa.update(guardrails).where(guardrails.c.id == guardrail_id, guardrails.c.tenant_id == tenant_id)
    if conn.execute(mine.values(is_default=True)).rowcount == 0:
        raise LookupError(f"guardrail {guardrail_id!r} does not exist")
