"""The control plane: tenants, API keys and the audit log, in SQLite or any SQLAlchemy database.

The server opens it once with ``open_control_plane(settings.database_url)`` and authenticates each
request with ``authenticate(cp, key) -> Tenant | None``; every tenant-owned row carries ``Tenant.id``.
"""

from plinth.control.audit import AuditEvent, list_events, record
from plinth.control.db import ControlPlane, open_control_plane
from plinth.control.keys import KeyInfo, authenticate, create_key, list_keys, revoke_key
from plinth.control.tenants import (
    LOCAL_TENANT,
    Tenant,
    get_or_create_tenant,
    get_tenant,
    list_tenants,
    validate_tenant_name,
)

__all__ = [
    "LOCAL_TENANT",
    "AuditEvent",
    "ControlPlane",
    "KeyInfo",
    "Tenant",
    "authenticate",
    "create_key",
    "get_or_create_tenant",
    "get_tenant",
    "list_events",
    "list_keys",
    "list_tenants",
    "open_control_plane",
    "record",
    "revoke_key",
    "validate_tenant_name",
]
