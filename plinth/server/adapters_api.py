"""Adapter management over HTTP: ``/v1/adapters`` and vLLM's ``load_lora_adapter``/``unload_lora_adapter``.

Every call is scoped to the caller's tenant (see :mod:`plinth.adapters`):

- ``GET /v1/adapters`` -> ``{"object": "list", "data": [adapter]}``: the tenant's adapters and the
  public ones; ``adapter`` is ``{id, object: "adapter", name, base_model, owned_by, source, rank,
  target_modules, status, created}``.
- ``POST /v1/adapters`` -> 201 ``{"object": "list", "data": [adapter]}``, from JSON ``{"source",
  "name"?, "base_model"?, "public"?}`` or a ``multipart/form-data`` upload of a ``.tar.gz`` in the
  field ``file`` (text fields ``name``, ``base_model``, ``public``). Without ``name`` every adapter
  the source holds is registered (a SageMaker LMI archive's ``adapters/<name>/``).
- ``DELETE /v1/adapters/{name}`` -> ``{"id", "object": "adapter", "deleted": true}``.

Who may do what: a ``source`` that is a path on the server's machine or an fsspec URL (``s3://...``,
read with the server's own credentials), and ``public: true``, need an admin key (403 otherwise): a
tenant must not make the server read arbitrary local files or buckets. Anyone may
upload an archive or name a Hugging Face hub id. Deleting a public adapter needs an admin key; another
tenant's adapter is a 404, as if it did not exist. Registering validates the adapter (400 with the
adapter's name and the problem) and loads nothing into compute slots; deleting lets running requests
finish while new ones get 404.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from plinth.adapters import (
    AdapterConflictError,
    AdapterEntry,
    AdapterRegistry,
    AdapterRegistryError,
    is_local_source,
)
from plinth.artifacts import is_url
from plinth.control import Tenant
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError
from plinth.server.state import get_state
from plinth.server.tenant_quotas import check_quota
from plinth.server.uploads import receive_upload

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])


class AdapterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    name: str | None = None
    base_model: str | None = None
    public: bool = False


class LoadLoraRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lora_name: str
    lora_path: str


class UnloadLoraRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lora_name: str


@router.get("/adapters")
def list_adapters(request: Request) -> dict[str, Any]:
    registry = _registry(request)
    entries = registry.visible(request.state.tenant)
    return {"object": "list", "data": [_card(e, registry.status(e)) for e in entries]}


@router.post("/adapters", status_code=201)
async def create_adapter(request: Request) -> dict[str, Any]:
    tenant: Tenant = request.state.tenant
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        entries = await _register_upload(request, tenant)
    else:
        body = _parse(AdapterCreate, await _json(request))
        _check_source(tenant, body.source, "source")
        owner = _owner(tenant, body.public)
        if not body.public:  # public adapters are no tenant's
            await asyncio.to_thread(check_quota, request, "adapters")
        entries = await asyncio.to_thread(
            _registry(request).register, owner, body.name, body.source, base_model=body.base_model
        )
    return {"object": "list", "data": [_card(e, _registry(request).status(e)) for e in entries]}


@router.delete("/adapters/{name}")
async def delete_adapter(name: str, request: Request) -> dict[str, Any]:
    entry = _deletable(request, name, f"The adapter '{name}' does not exist.")
    await asyncio.to_thread(_registry(request).unregister, entry)
    return {"id": name, "object": "adapter", "deleted": True}


@router.post("/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(body: LoadLoraRequest, request: Request) -> str:
    """vLLM's runtime loading: plain-text success, 400 when the name is already loaded."""
    tenant: Tenant = request.state.tenant
    _check_source(tenant, body.lora_path, "lora_path")
    registry = _registry(request)
    if registry.get(tenant.id, body.lora_name) is not None:
        raise _already_loaded(body.lora_name)
    await asyncio.to_thread(check_quota, request, "adapters")
    try:
        await asyncio.to_thread(registry.register, tenant, body.lora_name, body.lora_path)
    except AdapterConflictError as exc:  # registered concurrently under the same name
        raise _already_loaded(body.lora_name) from exc
    except AdapterRegistryError as exc:  # the registry names /v1/adapters' fields: name this body's
        param = _VLLM_FIELDS.get(exc.param or "", exc.param)
        raise APIError(400, exc.message, param=param, code=exc.code) from exc
    return f"Success: LoRA adapter '{body.lora_name}' added successfully."


_VLLM_FIELDS = {"source": "lora_path", "name": "lora_name"}


@router.post("/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(body: UnloadLoraRequest, request: Request) -> str:
    """vLLM's runtime unloading: plain-text success, 404 when no such adapter is visible."""
    entry = _deletable(request, body.lora_name, f"The lora adapter '{body.lora_name}' cannot be found.")
    await asyncio.to_thread(_registry(request).unregister, entry)
    return f"Success: LoRA adapter '{body.lora_name}' removed successfully."


def _card(entry: AdapterEntry, status: str) -> dict[str, Any]:
    """The ``/v1/adapters`` object; ``status`` is where its weights are (AdapterRegistry.status)."""
    return {
        "id": entry.name,
        "object": "adapter",
        "name": entry.name,
        "base_model": entry.base_model,
        "owned_by": entry.owner,
        "source": entry.source,
        "rank": entry.rank,
        "target_modules": list(entry.target_modules),
        "status": status,
        "created": int(entry.created_at.timestamp()),
    }


def _already_loaded(name: str) -> APIError:
    return APIError(400, f"The lora adapter '{name}' has already been loaded.", param="lora_name")


async def _register_upload(request: Request, tenant: Tenant) -> list[AdapterEntry]:
    settings = get_state(request).settings
    limit = settings.max_upload_mb * 1024 * 1024
    upload = await receive_upload(request, Path(settings.data_dir) / "adapters" / "uploads", limit)
    try:
        fields = upload.fields
        public = fields.get("public", "").strip().lower() in ("1", "true", "yes", "on")
        if not public:
            await asyncio.to_thread(check_quota, request, "adapters")
        return await asyncio.to_thread(
            _registry(request).register,
            _owner(tenant, public),
            fields.get("name") or None,
            str(upload.path),
            base_model=fields.get("base_model") or None,
            label=f"upload:{upload.filename}",
        )
    finally:  # the archive is extracted under the data dir by now; the upload itself is not needed
        await asyncio.to_thread(shutil.rmtree, upload.path.parent, True)


def _registry(request: Request) -> AdapterRegistry:
    registry = get_state(request).adapters
    assert registry is not None, "create_app always sets the adapter registry"
    return registry


def _owner(tenant: Tenant, public: bool) -> Tenant | None:
    """The owner a registration gets: the tenant, or None (public), which only admin keys may ask for."""
    if public and not tenant.is_admin:
        raise APIError(403, "Only admin keys may register public adapters.", param="public")
    return None if public else tenant


MAX_SOURCE_CHARS = 1024  # a path, URL or hub id; longer is no name a file system or the hub accepts
MAX_NAME_PART_CHARS = 255  # one path component (NAME_MAX on Linux and macOS)


def _check_source(tenant: Tenant, source: str, param: str) -> None:
    """A server-local path or a URL needs an admin key; a path must be absolute (it is read on the
    server), a URL is fetched with the server's credentials."""
    _check_source_shape(source, param)
    if is_url(source):
        if not tenant.is_admin:
            message = (
                "Only admin keys may register adapters from a URL (it is read with the server's credentials)."
            )
            raise APIError(403, message, param=param)
        return
    path = Path(source).expanduser()
    if not (is_local_source(source) or path.exists()):
        return  # a hub id: downloaded into the data dir, never a local read
    if not tenant.is_admin:
        raise APIError(
            403,
            "Only admin keys may register adapters from a path on the server; upload a .tar.gz "
            "(multipart field 'file') or give a Hugging Face hub id.",
            param=param,
        )
    if not path.is_absolute():
        message = f"{param} path {source!r} must be absolute (it is read on the server's machine)"
        raise APIError(400, message, param=param)


def _check_source_shape(source: str, param: str) -> None:
    """A 400 for a source no file system could hold (before any file system call sees it)."""
    if not source.strip() or "\0" in source:
        raise APIError(400, f"{param} must be a path, an fsspec URL or a Hugging Face hub id.", param=param)
    if len(source) > MAX_SOURCE_CHARS:
        raise APIError(400, f"{param} is longer than {MAX_SOURCE_CHARS} characters.", param=param)
    if any(len(part.encode()) > MAX_NAME_PART_CHARS for part in source.split("/")):
        message = f"{param} has a path component longer than {MAX_NAME_PART_CHARS} bytes."
        raise APIError(400, message, param=param)


def _deletable(request: Request, name: str, not_found: str) -> AdapterEntry:
    """The caller's own adapter ``name``, else the public one for an admin key; 404 / 403 otherwise."""
    tenant: Tenant = request.state.tenant
    registry = _registry(request)
    entry = registry.get(tenant.id, name)
    if entry is not None:
        return entry
    public = registry.get(None, name)
    if public is None:
        raise APIError(404, not_found, param="name", code="adapter_not_found")
    if not tenant.is_admin:
        raise APIError(403, f"The adapter '{name}' is public: only admin keys may remove it.", param="name")
    return public


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise APIError(400, "The request body is not valid JSON.", code="invalid_json") from exc


T = TypeVar("T", bound=BaseModel)


def _parse(model: type[T], data: Any) -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise APIError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param) from exc
