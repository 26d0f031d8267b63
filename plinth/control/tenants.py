"""Tenants: who owns every adapter, knowledge base, session and job.

A tenant is a name and an integer id; everything tenant-owned stores ``tenant_id`` and every lookup is
scoped by it. ``is_admin`` is not a property of the tenant but of the key that authenticated the
request, so a tenant can hold both admin and ordinary keys. The built-in ``local`` tenant is the one the
CLI (and a ``--no-auth`` server) acts as.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from plinth.control.db import ControlPlane, tenants, utcnow

__all__ = [
    "LOCAL_TENANT",
    "PUBLIC_OWNER",
    "Tenant",
    "get_or_create_tenant",
    "get_tenant",
    "list_tenants",
    "validate_tenant_name",
]

LOCAL_TENANT = "local"
PUBLIC_OWNER = "public"  # owner of adapters every tenant sees; reserved, so no tenant can take the name
_NAME = re.compile(r"[a-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as seen by one request: ``id`` scopes every query, ``is_admin`` comes from the key."""

    id: int
    name: str
    is_admin: bool = False


def validate_tenant_name(name: str) -> str:
    """Return ``name`` if valid (names appear in paths and URLs), else raise ``ValueError``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid tenant name {name!r}: use 1-64 characters, lowercase letters, digits, '-' or '_'"
        )
    if name == PUBLIC_OWNER:
        raise ValueError(f"invalid tenant name {name!r}: it is reserved for public adapters")
    return name


def get_tenant(cp: ControlPlane, name: str) -> Tenant | None:
    """The tenant called ``name``, or None."""
    with cp.engine.connect() as conn:
        row = conn.execute(sa.select(tenants.c.id, tenants.c.name).where(tenants.c.name == name)).first()
    return Tenant(row.id, row.name) if row else None


def get_or_create_tenant(cp: ControlPlane, name: str) -> Tenant:
    """The tenant called ``name``, created if missing; safe when two callers race to create it."""
    validate_tenant_name(name)
    if tenant := get_tenant(cp, name):
        return tenant
    try:
        with cp.engine.begin() as conn:
            conn.execute(sa.insert(tenants).values(name=name, created_at=utcnow()))
    except sa.exc.IntegrityError:
        pass  # another caller created it first
    tenant = get_tenant(cp, name)
    assert tenant is not None
    return tenant


def list_tenants(cp: ControlPlane) -> list[Tenant]:
    """All tenants, by name."""
    with cp.engine.connect() as conn:
        rows = conn.execute(sa.select(tenants.c.id, tenants.c.name).order_by(tenants.c.name))
        return [Tenant(row.id, row.name) for row in rows]
