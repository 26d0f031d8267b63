"""The control plane: tenants, API keys, adapter registrations and the audit log, in SQLite or any
SQLAlchemy database.

The server opens it once with ``open_control_plane(settings.database_url)`` and authenticates each
request with ``authenticate(cp, key) -> Tenant | None``; every tenant-owned row carries ``Tenant.id``.

The rows of each feature are public as modules, used as namespaces::

    from plinth.control import knowledge as rows
    kb = rows.get_kb(cp, tenant.id, "movies")
"""

from plinth.control import (
    agents,
    files,
    guardrails,
    jobs,
    knowledge,
    sql_datasets,
    tenant_limits,
    tenant_usage,
)
from plinth.control.adapters import (
    AdapterExistsError,
    AdapterRow,
    add_adapter,
    list_adapters,
    remove_adapter,
)
from plinth.control.audit import AuditEvent, list_events, record
from plinth.control.db import ControlPlane, open_control_plane, utcnow
from plinth.control.keys import (
    KEY_PREFIX,
    VISIBLE_CHARS,
    KeyInfo,
    authenticate,
    create_key,
    hash_key,
    list_keys,
    revoke_key,
)
from plinth.control.tenants import (
    LOCAL_TENANT,
    PUBLIC_OWNER,
    Tenant,
    get_or_create_tenant,
    get_tenant,
    list_tenants,
    validate_tenant_name,
)

__all__ = [
    "KEY_PREFIX",
    "LOCAL_TENANT",
    "PUBLIC_OWNER",
    "VISIBLE_CHARS",
    "AdapterExistsError",
    "AdapterRow",
    "agents",
    "AuditEvent",
    "ControlPlane",
    "KeyInfo",
    "Tenant",
    "add_adapter",
    "authenticate",
    "create_key",
    "get_or_create_tenant",
    "get_tenant",
    "hash_key",
    "files",
    "guardrails",
    "jobs",
    "knowledge",
    "list_adapters",
    "list_events",
    "list_keys",
    "list_tenants",
    "open_control_plane",
    "record",
    "remove_adapter",
    "revoke_key",
    "sql_datasets",
    "tenant_limits",
    "tenant_usage",
    "utcnow",
    "validate_tenant_name",
]
