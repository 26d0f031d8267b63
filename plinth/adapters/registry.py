"""Which adapters each tenant sees, on which base model, under which engine-level name.

The engine knows adapters by one flat name; tenancy lives here. A tenant's adapter ``sql`` is
``"<tenant>:sql"`` in its base model's engine and a public one ``"public:sql"``, so tenants never
collide. A request's ``model`` resolves to the tenant's own adapter, else a public one; another
tenant's adapter resolves to nothing, so the caller answers exactly as for an unknown model.

Registrations are persisted in the control plane (unless they come from ``--adapters DIR``, which is
re-read at every start) and :meth:`AdapterRegistry.restore` registers them again at start. A source that
is an fsspec URL (``s3://...``) is fetched into ``cache_dir/remote`` and recorded as the URL, so a process
on another machine fetches it too. Processes sharing one control plane (API servers, Ray replicas) catch
up with each other through :meth:`AdapterRegistry.sync`: a listing syncs, and so does a lookup of a name
not known here. Mutations run in worker threads (they read adapter files) and are serialised by one
lock; lookups of known names only read a dict, so requests never wait behind a registration::

    registry = AdapterRegistry(models, control_plane, data_dir / "adapters")
    [entry] = registry.register(tenant, "sql", "/srv/sql-lora")     # in a worker thread
    registry.resolve(tenant, "sql")                                   # -> AdapterEntry
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plinth.adapters.errors import AdapterConflictError, AdapterRegistryError
from plinth.adapters.served import AdapterModel
from plinth.artifacts import ArtifactError, fetch, is_url
from plinth.control import (
    PUBLIC_OWNER,
    AdapterExistsError,
    AdapterRow,
    ControlPlane,
    Tenant,
    add_adapter,
    list_adapters,
    list_tenants,
    remove_adapter,
)
from plinth.engine import AdapterError
from plinth.engine.lora import resolve_adapter_source
from plinth.llm.served import AdapterHost

__all__ = ["AdapterEntry", "AdapterRegistry", "check_adapter_name"]

log = logging.getLogger(__name__)

# A name clients choose, or one a fine-tuning job gives: ft:<base>:<tenant>:<suffix>:<job> (OpenAI's shape).
_PART = r"[A-Za-z0-9._-]"
_NAME = re.compile(rf"[A-Za-z0-9]{_PART}{{0,63}}|ft:{_PART}+:{_PART}+:{_PART}*:[a-f0-9]+")
Owner = int | None  # tenant id; None for public
MISS_SYNC_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class AdapterEntry:
    """One registered adapter as the server sees it."""

    name: str  # what clients put in ``model``
    owner: str  # tenant name, or "public"
    tenant_id: int | None
    base_model: str
    engine_name: str
    source: str
    path: Path
    rank: int
    target_modules: tuple[str, ...]
    row_id: int | None = None  # None: not persisted (``--adapters DIR``)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def check_adapter_name(name: str, models: Mapping[str, AdapterHost]) -> str:
    """Refuse ``name`` unless it can be an adapter name: it appears in URLs and in ``model``."""
    if not isinstance(name, str) or len(name) > 200 or not _NAME.fullmatch(name):
        raise AdapterRegistryError(
            f"invalid adapter name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    if name in models:
        raise AdapterRegistryError(f"invalid adapter name {name!r}: a base model has that name", param="name")
    return name


class AdapterRegistry:
    def __init__(
        self,
        models: Mapping[str, AdapterHost],
        control_plane: ControlPlane,
        cache_dir: Path,
        *,
        max_fetch_bytes: int | None = None,  # the most a URL source may hold (an upload's limit)
    ) -> None:
        self.models, self.control_plane, self.cache_dir = models, control_plane, Path(cache_dir)
        self.max_fetch_bytes = max_fetch_bytes
        self._entries: dict[tuple[Owner, str], AdapterEntry] = {}
        self._write = threading.Lock()
        self._next_miss_sync = 0.0

    # --- lookups (any thread, never blocking) ---------------------------------------------------
    def resolve(self, tenant: Tenant, name: str) -> AdapterEntry | None:
        """The tenant's own adapter ``name``, else the public one, else None. A name not known here is
        looked for in the control plane (at most once a second, so a flood of wrong names costs little):
        another process sharing it may have just registered it."""
        entry = self._lookup(tenant, name)
        if entry is None and time.monotonic() >= self._next_miss_sync:
            self._next_miss_sync = time.monotonic() + MISS_SYNC_INTERVAL_S
            self.sync()
            entry = self._lookup(tenant, name)
        return entry

    def _lookup(self, tenant: Tenant, name: str) -> AdapterEntry | None:
        return self._entries.get((tenant.id, name)) or self._entries.get((None, name))

    def get(self, tenant_id: int | None, name: str) -> AdapterEntry | None:
        """Exactly the adapter ``name`` owned by ``tenant_id`` (None: the public one)."""
        return self._entries.get((tenant_id, name))

    def visible(self, tenant: Tenant) -> list[AdapterEntry]:
        """The tenant's adapters and the public ones, by name (caught up with the control plane)."""
        self.sync()
        entries = [e for (owner, _), e in list(self._entries.items()) if owner in (tenant.id, None)]
        return sorted(entries, key=lambda e: (e.name, e.tenant_id is None))

    def visible_all(self) -> list[AdapterEntry]:
        """Every registered adapter (shutdown, tests)."""
        return list(self._entries.values())

    def status(self, entry: AdapterEntry) -> str:
        """``resident`` (in a compute slot), ``cached`` (host memory), ``disk``, or ``ready`` when the
        base model cannot say (fakes, merged models)."""
        model = self.models.get(entry.base_model)
        return (model.adapter_tier(entry.engine_name) if model is not None else None) or "ready"

    def model_for(self, tenant: Tenant, name: str) -> AdapterModel | None:
        entry = self.resolve(tenant, name)
        return (
            None
            if entry is None
            else AdapterModel(self.models[entry.base_model], entry.name, entry.engine_name)
        )

    # --- mutations (worker threads) --------------------------------------------------------------
    def register(
        self,
        tenant: Tenant | None,
        name: str | None,
        source: str,
        *,
        base_model: str | None = None,
        label: str | None = None,
        persist: bool = True,
        preload: bool = True,
    ) -> list[AdapterEntry]:
        """Register every adapter ``source`` holds (or the one called ``name``) for ``tenant``
        (None: public). All or nothing: on any error nothing stays registered. Raises
        AdapterRegistryError (AdapterConflictError when the name is taken). ``preload=False`` validates
        it and leaves it on disk until a request needs it (what start-up does)."""
        if name is not None:
            check_adapter_name(name, self.models)
        if base_model is not None and base_model not in self.models:
            raise AdapterRegistryError(f"base_model '{base_model}' is not served here", param="base_model")
        found = self._resolve_source(source, name)  # may download or extract: outside the lock
        origin = source if is_url(source) else None  # what other processes fetch it from
        with self._write:
            done: list[AdapterEntry] = []
            try:
                for adapter_name, folder in found:
                    stored = _Stored(folder, label or source, origin)
                    entry = self._add(tenant, adapter_name, stored, base_model, persist, preload)
                    done.append(entry)
            except BaseException:
                for entry in done:
                    self._drop(entry)
                raise
        return done

    def unregister(self, entry: AdapterEntry) -> None:
        """Remove ``entry``: new requests for it get 404 at once; running ones finish in the engine."""
        with self._write:
            self._drop(entry)

    def restore(self) -> None:
        """Re-register persisted adapters at start; ones that no longer load are skipped, loudly."""
        self.sync()

    def sync(self) -> None:
        """Catch up with the control plane, which other processes may share (replicas, API servers):
        adapters persisted since are loaded, ones whose rows are gone are dropped. Rows that no longer
        load are skipped, loudly."""
        with self._write:  # rows read under the lock: a registration here adds its row and entry together
            rows = list_adapters(self.control_plane)
            live = {row.id for row in rows}
            for entry in [e for e in self._entries.values() if e.row_id is not None and e.row_id not in live]:
                self._forget(entry)
            known = {entry.row_id for entry in self._entries.values()}
            fresh = [row for row in rows if row.id not in known]
            tenants = _tenant_names(self.control_plane) if fresh else {}
            for row in fresh:
                self._restore_row(row, tenants)

    def _restore_row(self, row: AdapterRow, tenants: dict[int, str]) -> None:
        owner = PUBLIC_OWNER if row.tenant_id is None else tenants.get(row.tenant_id, str(row.tenant_id))
        if row.base_model not in self.models:
            log.warning("adapter %s:%s skipped: base model %r is not served", owner, row.name, row.base_model)
            return
        if (row.tenant_id, row.name) in self._entries:
            return  # a --adapters folder of the same name holds it here
        tenant = None if row.tenant_id is None else Tenant(row.tenant_id, owner)
        try:
            folder = self._local_folder(row)
            entry = self._load(tenant, row.name, folder, row.source, row.base_model, preload=False)
        except (AdapterError, AdapterRegistryError, OSError) as exc:
            log.warning("adapter %s:%s skipped: it no longer loads (%s)", owner, row.name, exc)
            return
        self._entries[(row.tenant_id, row.name)] = _with(entry, row_id=row.id, created_at=row.created_at)

    def _local_folder(self, row: AdapterRow) -> Path:
        """The row's folder here: its path, or the local copy of its URL (fetched once per version)."""
        if not is_url(row.path):
            return Path(row.path)
        return self._resolve_source(row.path, row.name)[0][1]  # the name picks one adapter

    def _resolve_source(self, source: str, name: str | None) -> list[tuple[str, Path]]:
        """Local folders for ``source``; a URL's files are fetched first, into ``cache_dir/remote``."""
        try:
            remote = self.cache_dir / "remote"
            local = str(fetch(source, remote, self.max_fetch_bytes)) if is_url(source) else source
            return resolve_adapter_source(local, self.cache_dir, name)
        except ArtifactError as exc:
            raise AdapterRegistryError(str(exc), param="source", code=exc.code) from exc
        except AdapterError as exc:
            raise AdapterRegistryError(str(exc), param="source", code="invalid_adapter") from exc

    def register_dir(self, directory: Path) -> list[AdapterEntry]:
        """``--adapters DIR``: every adapter subfolder of ``directory`` as public, not persisted (the
        folder is read again at every start). Ones that fail are logged and skipped."""
        registered = []
        for folder in sorted(p for p in Path(directory).iterdir() if p.is_dir()):
            try:
                registered += self.register(None, folder.name, str(folder), persist=False, preload=False)
            except (AdapterRegistryError, AdapterError) as exc:
                log.warning("adapter %s skipped: %s", folder, exc)
        return registered

    # --- internals (caller holds the write lock) ----------------------------------------------------
    def _add(
        self,
        tenant: Tenant | None,
        name: str,
        stored: _Stored,
        base_model: str | None,
        persist: bool,
        preload: bool,
    ) -> AdapterEntry:
        check_adapter_name(name, self.models)
        key = (None if tenant is None else tenant.id, name)
        if key in self._entries:
            raise AdapterConflictError(f"an adapter named '{name}' already exists")
        entry = self._load(tenant, name, stored.folder, stored.source, base_model, preload)
        if persist:
            try:
                row = add_adapter(
                    self.control_plane,
                    tenant_id=key[0],
                    name=name,
                    base_model=entry.base_model,
                    source=stored.source,
                    path=stored.origin or str(stored.folder),
                )
            except AdapterExistsError as exc:
                self.models[entry.base_model].remove_adapter(entry.engine_name)
                raise AdapterConflictError(str(exc)) from exc
            entry = _with(entry, row_id=row.id, created_at=row.created_at)
        self._entries[key] = entry
        return entry

    def _load(
        self,
        tenant: Tenant | None,
        name: str,
        folder: Path,
        source: str,
        base_model: str | None,
        preload: bool = True,
    ) -> AdapterEntry:
        """Register ``folder`` in the engine of ``base_model`` (or the first served model it fits);
        ``preload``: keep its weights in host memory now rather than at its first request."""
        owner = PUBLIC_OWNER if tenant is None else tenant.name
        engine_name = f"{owner}:{name}"
        candidates = self._candidates(folder, base_model)
        errors: list[tuple[str, str]] = []
        for model in candidates:
            try:
                adapter = model.add_adapter(engine_name, folder, preload)
            except AdapterError as exc:  # its message names the engine-level name: rebuild it
                errors.append((model.name, exc.problem))
                continue
            return AdapterEntry(
                name=name,
                owner=owner,
                tenant_id=None if tenant is None else tenant.id,
                base_model=model.name,
                engine_name=engine_name,
                source=source,
                path=Path(folder),
                rank=adapter.rank,
                target_modules=tuple(sorted(adapter.target_modules)),
            )
        if len(errors) == 1:
            message = f"adapter '{name}': {errors[0][1]}"
        else:
            tried = "; ".join(f"{model}: {problem}" for model, problem in errors)
            message = f"adapter '{name}' fits none of the served base models ({tried})"
        raise AdapterRegistryError(message, param="source", code="invalid_adapter")

    def _candidates(self, folder: Path, base_model: str | None) -> list[AdapterHost]:
        """Models to try: the requested one, else every LoRA-enabled model, the one the adapter's
        config names (``base_model_name_or_path``) first."""
        if base_model is not None:
            model = self.models[base_model]
            if not model.lora_enabled:
                message = f"base model '{base_model}' does not serve adapters"
                raise AdapterRegistryError(message, param="base_model")
            return [model]
        models = [m for m in self.models.values() if m.lora_enabled]
        if not models:
            message = "no served model has adapters enabled (--enable-lora)"
            raise AdapterRegistryError(message, param="base_model")
        named = _declared_base(folder)
        return sorted(models, key=lambda m: named is None or named not in (m.name, str(m.checkpoint_path)))

    def _drop(self, entry: AdapterEntry) -> None:
        """Forget it here first (new requests 404), then in the engine and the database."""
        self._forget(entry)
        if entry.row_id is not None:
            remove_adapter(self.control_plane, entry.row_id)

    def _forget(self, entry: AdapterEntry) -> None:
        key = (entry.tenant_id, entry.name)
        if self._entries.get(key) is entry:
            del self._entries[key]
        self.models[entry.base_model].remove_adapter(entry.engine_name)


@dataclass(frozen=True, slots=True)
class _Stored:
    """Where a registration's files are: the local ``folder`` it loads from, the ``source`` clients see,
    and the fsspec URL (``origin``) it came from, which is what the control plane records for it."""

    folder: Path
    source: str
    origin: str | None


def _with(entry: AdapterEntry, **changes: Any) -> AdapterEntry:
    return replace(entry, **changes)


def _declared_base(folder: Path) -> str | None:
    try:
        return json.loads((Path(folder) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None


def _tenant_names(cp: ControlPlane) -> dict[int, str]:
    return {t.id: t.name for t in list_tenants(cp)}
