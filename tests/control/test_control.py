"""Control plane: named migrations applied once, hashed API keys, tenants, audit log."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from plinth.control import (
    LOCAL_TENANT,
    AdapterExistsError,
    ControlPlane,
    Tenant,
    add_adapter,
    authenticate,
    create_key,
    get_or_create_tenant,
    get_tenant,
    list_adapters,
    list_events,
    list_keys,
    list_tenants,
    open_control_plane,
    remove_adapter,
    revoke_key,
    validate_tenant_name,
)
from plinth.control.db import metadata
from plinth.control.migrations import MIGRATIONS, applied_migrations, apply_migrations


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'plinth.db'}"


@pytest.fixture
def cp(url: str):
    cp = open_control_plane(url)
    yield cp
    cp.close()


def _rows(cp: ControlPlane, sql: str) -> list[tuple]:
    with cp.engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


# --- migrations -----------------------------------------------------------------------------------


def test_first_open_applies_and_records_migrations_by_name(cp: ControlPlane) -> None:
    names = [name for (name,) in _rows(cp, "SELECT name FROM migrations")]
    assert names == [
        "m001_tenants_keys_audit",
        "m002_adapters",
        "m003_knowledge",
        "m004_sql_datasets",
        "m005_guardrails",
        "m006_files_and_jobs",
        "m007_longer_adapter_names",
        "m008_agents",
        "m009_tenant_limits",
        "m010_job_claims",
        "m011_tenant_quotas",
    ]
    assert get_tenant(cp, LOCAL_TENANT) is not None


def test_reopening_is_a_no_op(cp: ControlPlane, url: str) -> None:
    assert apply_migrations(cp.engine, MIGRATIONS) == []
    open_control_plane(url).close()  # would fail on "table already exists" if m001 ran again
    assert len(_rows(cp, "SELECT name FROM migrations")) == len(MIGRATIONS)
    assert len(_rows(cp, "SELECT id FROM tenants WHERE name = 'local'")) == 1


def test_new_migration_applies_on_reopen(cp: ControlPlane, url: str) -> None:
    def m999_widgets(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE widgets (id INTEGER PRIMARY KEY)")

    cp.close()
    reopened = open_control_plane(url, migrations=[*MIGRATIONS, m999_widgets])
    assert applied_migrations(reopened.engine) == {m.__name__ for m in MIGRATIONS} | {"m999_widgets"}
    assert _rows(reopened, "SELECT count(*) FROM widgets") == [(0,)]
    assert apply_migrations(reopened.engine, [*MIGRATIONS, m999_widgets]) == []


def test_failed_migration_rolls_back_and_is_not_recorded(cp: ControlPlane) -> None:
    def m999_broken(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        apply_migrations(cp.engine, [*MIGRATIONS, m999_broken])
    assert "m999_broken" not in applied_migrations(cp.engine)
    assert "half" not in sa.inspect(cp.engine).get_table_names()


def test_query_tables_match_migrated_schema(cp: ControlPlane) -> None:
    inspector = sa.inspect(cp.engine)
    for table in metadata.sorted_tables:
        migrated = {col["name"] for col in inspector.get_columns(table.name)}
        assert migrated == set(table.columns.keys()), table.name


def test_sqlite_file_uses_wal(cp: ControlPlane) -> None:
    assert _rows(cp, "PRAGMA journal_mode") == [("wal",)]
    assert _rows(cp, "PRAGMA foreign_keys") == [(1,)]


# --- keys -----------------------------------------------------------------------------------------


def test_key_authenticates_as_its_tenant(cp: ControlPlane) -> None:
    key = create_key(cp, "acme")
    assert key.startswith("pk-") and len(key) > 40
    tenant = authenticate(cp, key)
    assert tenant == Tenant(id=get_or_create_tenant(cp, "acme").id, name="acme", is_admin=False)


def test_admin_flag_comes_from_the_key(cp: ControlPlane) -> None:
    admin, plain = create_key(cp, "acme", admin=True), create_key(cp, "acme")
    assert authenticate(cp, admin).is_admin
    assert not authenticate(cp, plain).is_admin
    assert authenticate(cp, admin).id == authenticate(cp, plain).id


def test_only_hash_and_prefix_are_stored(cp: ControlPlane) -> None:
    key = create_key(cp, "acme")
    [row] = _rows(cp, "SELECT * FROM api_keys")
    assert key not in [str(value) for value in row]
    assert not any(key[11:] in str(value) for value in row)  # the secret part appears nowhere
    [(prefix, digest)] = _rows(cp, "SELECT prefix, key_hash FROM api_keys")
    assert prefix == key[:11]
    assert digest == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize("wrong", ["", "pk-", "pk-nope", "sk-abc", "Bearer pk-x", "pk-" + "a" * 1000])
def test_wrong_key_is_none(cp: ControlPlane, wrong: str) -> None:
    create_key(cp, "acme")
    assert authenticate(cp, wrong) is None


def test_nearly_right_key_is_none(cp: ControlPlane) -> None:
    key = create_key(cp, "acme")
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert authenticate(cp, flipped) is None
    assert authenticate(cp, key + "x") is None


def test_revoke(cp: ControlPlane) -> None:
    key, other = create_key(cp, "acme"), create_key(cp, "acme")
    assert revoke_key(cp, key[:11])
    assert authenticate(cp, key) is None
    assert authenticate(cp, other) is not None
    assert not revoke_key(cp, key[:11])  # already revoked
    assert not revoke_key(cp, "pk-unknown")
    [revoked] = [k for k in list_keys(cp) if k.prefix == key[:11]]
    assert not revoked.active and revoked.revoked_at is not None


def test_revoke_scoped_to_tenant(cp: ControlPlane) -> None:
    key = create_key(cp, "acme")
    globex = get_or_create_tenant(cp, "globex")
    assert not revoke_key(cp, key[:11], tenant_id=globex.id)
    assert authenticate(cp, key) is not None
    assert revoke_key(cp, key[:11], tenant_id=authenticate(cp, key).id)


def test_list_keys_by_tenant(cp: ControlPlane) -> None:
    a, b = create_key(cp, "acme", admin=True), create_key(cp, "globex")
    assert [(k.prefix, k.tenant, k.is_admin) for k in list_keys(cp)] == [
        (a[:11], "acme", True),
        (b[:11], "globex", False),
    ]
    assert [k.prefix for k in list_keys(cp, "globex")] == [b[:11]]


def test_key_events_are_audited_without_the_key(cp: ControlPlane) -> None:
    key = create_key(cp, "acme")
    revoke_key(cp, key[:11])
    events = list_events(cp, tenant_id=get_tenant(cp, "acme").id)
    assert [e.action for e in events] == ["key.revoke", "key.create"]
    assert all(e.detail["prefix"] == key[:11] and key not in str(e.detail) for e in events)


def test_concurrent_authentication_from_threads(cp: ControlPlane) -> None:
    keys = [create_key(cp, f"t{i}") for i in range(4)]
    results: list[str | None] = [None] * 16

    def worker(i: int) -> None:
        tenant = authenticate(cp, keys[i % 4])
        results[i] = tenant.name if tenant else None

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [f"t{i % 4}" for i in range(16)]


def test_in_memory_database_is_shared_across_threads() -> None:
    cp = open_control_plane("sqlite://")
    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(create_key(cp, "acme")))
    thread.start()
    thread.join()
    assert authenticate(cp, box[0]).name == "acme"


# --- tenants --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Acme", "a" * 65, "a b", "a/b", "a.b", "é", "acme\n"])
def test_invalid_tenant_names(cp: ControlPlane, name: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant name"):
        validate_tenant_name(name)
    with pytest.raises(ValueError, match="invalid tenant name"):
        create_key(cp, name)


@pytest.mark.parametrize("name", ["a", "acme-1_x", "9", "a" * 64])
def test_valid_tenant_names(name: str) -> None:
    assert validate_tenant_name(name) == name


def test_get_or_create_tenant_is_idempotent(cp: ControlPlane) -> None:
    first = get_or_create_tenant(cp, "acme")
    assert get_or_create_tenant(cp, "acme") == first
    assert first.id != get_tenant(cp, LOCAL_TENANT).id
    assert [t.name for t in list_tenants(cp)] == ["acme", "local"]
    assert get_tenant(cp, "missing") is None


def test_public_is_a_reserved_tenant_name() -> None:
    with pytest.raises(ValueError, match="reserved"):
        validate_tenant_name("public")


# --- adapters -------------------------------------------------------------------------------------


def _adapter(cp: ControlPlane, tenant_id: int | None, name: str = "sql"):
    return add_adapter(cp, tenant_id=tenant_id, name=name, base_model="m", source="org/sql", path=Path("/a"))


def test_adapter_names_are_unique_per_owner_public_included(cp: ControlPlane) -> None:
    acme = get_or_create_tenant(cp, "acme")
    beta = get_or_create_tenant(cp, "beta")
    _adapter(cp, acme.id)
    _adapter(cp, beta.id)  # the same name under another tenant is fine
    _adapter(cp, None)
    for owner in (acme.id, None):  # NULL tenant_id must not escape uniqueness
        with pytest.raises(AdapterExistsError):
            _adapter(cp, owner)
    assert [(r.tenant_id, r.name) for r in list_adapters(cp)] == [
        (acme.id, "sql"),
        (beta.id, "sql"),
        (None, "sql"),
    ]


def test_remove_adapter_is_audited_and_idempotent(cp: ControlPlane) -> None:
    row = _adapter(cp, None)
    assert row.path == "/a" and row.source == "org/sql"
    assert remove_adapter(cp, row.id) is True
    assert remove_adapter(cp, row.id) is False
    assert [e.action for e in list_events(cp)][:2] == ["adapter.remove", "adapter.add"]
    assert list_adapters(cp) == []
