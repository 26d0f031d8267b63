"""API keys: created once in plaintext, stored only as a SHA-256 hash plus a short visible prefix.

A key is ``pk-`` followed by 43 random URL-safe characters (256 bits), so a plain fast hash is enough:
there is nothing to brute-force, and no salt is needed because no two keys share a secret. Looking a key
up by its hash means no comparison ever runs over the secret itself, so response time says nothing
about how close a guess was. The prefix (``pk-`` + 8 characters) identifies a key in listings and is
what ``revoke_key`` takes::

    key = create_key(cp, "acme")              # show once; it cannot be recovered
    authenticate(cp, key)                     # Tenant(id=2, name='acme', is_admin=False)
    revoke_key(cp, key[:11])                  # True
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, api_keys, tenants, utcnow
from plinth.control.tenants import Tenant, get_or_create_tenant

__all__ = [
    "KEY_PREFIX",
    "VISIBLE_CHARS",
    "KeyInfo",
    "authenticate",
    "create_key",
    "hash_key",
    "list_keys",
    "revoke_key",
]

KEY_PREFIX = "pk-"
VISIBLE_CHARS = 8  # of the random part, shown in listings
_MAX_KEY_LEN = 256  # anything longer is not ours; do not hash arbitrary request headers


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a listing shows about a key: never the key or its hash."""

    prefix: str
    tenant: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """Hex SHA-256 of ``key``: the only form of a key the database holds."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(cp: ControlPlane, tenant_name: str, admin: bool = False) -> str:
    """Create a key for ``tenant_name`` (created if missing) and return it in plaintext, once."""
    tenant = get_or_create_tenant(cp, tenant_name)
    for _ in range(3):  # a prefix collision (48 bits) is astronomically rare; retry rather than fail
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = key[: len(KEY_PREFIX) + VISIBLE_CHARS]
        try:
            with cp.engine.begin() as conn:
                conn.execute(
                    sa.insert(api_keys).values(
                        tenant_id=tenant.id,
                        prefix=prefix,
                        key_hash=hash_key(key),
                        is_admin=admin,
                        created_at=utcnow(),
                    )
                )
                record(conn, "key.create", tenant_id=tenant.id, prefix=prefix, admin=admin)
            return key
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("could not generate a unique API key prefix")


def authenticate(cp: ControlPlane, key: str) -> Tenant | None:
    """The tenant an active ``key`` belongs to, with ``is_admin`` from the key; None for anything else."""
    if not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_LEN:
        return None
    query = (
        sa.select(tenants.c.id, tenants.c.name, api_keys.c.is_admin)
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
    )
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return Tenant(row.id, row.name, bool(row.is_admin)) if row else None


def revoke_key(cp: ControlPlane, prefix: str, *, tenant_id: int | None = None) -> bool:
    """Revoke the active key with this visible prefix; only within ``tenant_id`` when given.

    Returns False when no such active key exists (unknown, already revoked, or another tenant's).
    """
    where = [api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None)]
    if tenant_id is not None:
        where.append(api_keys.c.tenant_id == tenant_id)
    with cp.engine.begin() as conn:
        owner = conn.scalar(sa.select(api_keys.c.tenant_id).where(*where))
        if owner is None:
            return False
        conn.execute(sa.update(api_keys).where(*where).values(revoked_at=utcnow()))
        record(conn, "key.revoke", tenant_id=owner, prefix=prefix)
    return True


def list_keys(cp: ControlPlane, tenant_name: str | None = None) -> list[KeyInfo]:
    """Keys, revoked ones included, oldest first; only ``tenant_name``'s when given."""
    query = (
        sa.select(
            api_keys.c.prefix,
            tenants.c.name.label("tenant"),
            api_keys.c.is_admin,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        )
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(api_keys.c.id)
    )
    if tenant_name is not None:
        query = query.where(tenants.c.name == tenant_name)
    with cp.engine.connect() as conn:
        return [KeyInfo(**row._mapping) for row in conn.execute(query)]
