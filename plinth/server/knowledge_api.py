"""Knowledge bases over HTTP, scoped to the caller's tenant (another tenant's KB is a 404):

- ``POST /v1/knowledge-bases`` ``{"name", "embedder"?, "embedder_url"?, "chunking"?, "store"?,
  "metadata_schema"?, "hybrid_weight"?}`` -> 201 ``kb``; 409 if the name is taken.
- ``GET /v1/knowledge-bases`` -> ``{"object": "list", "data": [kb]}``; ``GET|DELETE …/{kb}``.
- ``POST …/{kb}/sources`` ``{"type": "files"|"records", "path", "text_fields"?, "metadata_fields"?,
  "id_field"?, "title_field"?}`` -> 201 ``kb``. The path is read on the server's machine, so only
  admin keys may add one (403 otherwise), and it must be absolute.
- ``POST …/{kb}/sync`` -> 202 ``job``; 409 while one runs. ``GET …/{kb}/jobs/{id}`` -> ``job``:
  ``{id, object: "knowledge_base.sync_job", knowledge_base, status, progress: {done, total, rate,
  eta_seconds}, report, error, created, started, finished}`` (``rate`` documents/s and ``eta_seconds``
  while running, else null).
- A ``kb`` is ``{id, object: "knowledge_base", name, created, config, last_sync: job | null, state}``;
  ``state`` is ``not_synced|building|syncing|ready|failed`` (see ``plinth.knowledge.progress``):
  while ``building``, retrieval answers from the ``last_sync.progress.done`` documents already landed.
- ``POST …/{kb}/retrieve`` ``{"query", "numberOfResults"?, "filter"?, "searchType"?}`` ->
  ``{"results": [{"content": {"text"}, "score", "metadata", "location"}]}``; 400s name the param.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, SkipValidation

from plinth.control import Tenant
from plinth.control.knowledge import JobRow, KnowledgeBaseRow, has_succeeded_job, latest_job
from plinth.knowledge import (
    Hit,
    KnowledgeBaseConfig,
    KnowledgeService,
    rate_and_eta,
    sync_state,
)
from plinth.llm import DEFAULT_EMBEDDING_MODEL
from plinth.server.auth import require_tenant
from plinth.server.bodies import JSONBody
from plinth.server.errors import APIError
from plinth.server.state import get_state
from plinth.server.tenant_quotas import check_quota

__all__ = ["router"]

router = APIRouter(prefix="/v1/knowledge-bases", dependencies=[Depends(require_tenant)])
_MODEL_NAME = re.compile(r"[\w.\-/]+")


class KnowledgeBaseBody(JSONBody):
    """A knowledge base's config; :meth:`KnowledgeBaseConfig.from_json` judges it (unknown keys too)."""

    model_config = ConfigDict(extra="allow")

    name: SkipValidation[str | None] = None
    embedder: SkipValidation[str | None] = None  # a sentence-transformers id, or a model at embedder_url
    embedder_url: SkipValidation[str | None] = None  # an OpenAI-compatible server (…/v1)
    chunking: SkipValidation[str | dict[str, Any] | None] = None  # a strategy name or its settings
    store: SkipValidation[str | None] = None  # lancedb (default) or pgvector
    metadata_schema: SkipValidation[dict[str, str] | None] = None
    hybrid_weight: SkipValidation[float | None] = None
    reranker: SkipValidation[str | None] = None


class SourceBody(JSONBody):
    """A source to add; checked after the knowledge base is found and the key is known to be admin."""

    model_config = ConfigDict(extra="allow")

    type: SkipValidation[Literal["files", "records"] | None] = None
    path: SkipValidation[str | None] = None  # absolute, on the server's machine
    text_fields: SkipValidation[list[str] | None] = None
    metadata_fields: SkipValidation[list[str] | None] = None
    id_field: SkipValidation[str | None] = None
    title_field: SkipValidation[str | None] = None


@router.post("", status_code=201)
async def create_kb(kb_body: KnowledgeBaseBody, request: Request) -> dict[str, Any]:
    body = kb_body.raw()
    if "sources" in body:
        raise APIError(400, "Add sources with POST /v1/knowledge-bases/{kb}/sources.", param="sources")
    try:
        config = KnowledgeBaseConfig.from_json(body)
    except ValueError as exc:
        raise APIError(400, str(exc), param=_config_param(str(exc))) from exc
    local = config.embedder_url is None  # a model at embedder_url is that server's to judge
    if local and not await asyncio.to_thread(_embedder_exists, request, config.embedder):
        message = f"The embedder {config.embedder!r} is neither on this server nor on the Hugging Face hub."
        raise APIError(400, message, param="embedder", code="embedder_not_found")
    service, tenant = scope(request)
    return _card(request, await asyncio.to_thread(service.create, tenant, config))


@router.get("")
async def list_kbs(request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    kbs = await asyncio.to_thread(service.list_kbs, tenant)
    return {"object": "list", "data": [_card(request, row) for row in kbs]}


@router.get("/{kb}")
async def get_kb(kb: str, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    return _card(request, await asyncio.to_thread(service.get, tenant, kb))


@router.delete("/{kb}")
async def delete_kb(kb: str, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    await asyncio.to_thread(service.delete, tenant, kb)
    return {"id": kb, "object": "knowledge_base", "deleted": True}


@router.post("/{kb}/sources", status_code=201)
async def add_source(kb: str, source: SourceBody, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    body = source.raw()
    await asyncio.to_thread(service.get, tenant, kb)  # 404 before 403: do not reveal what others may do
    if not tenant.is_admin:
        raise APIError(
            403,
            "Only admin keys may add sources: a source path is read on the server's machine.",
            param="path",
        )
    path = body.get("path")
    if isinstance(path, str) and not Path(path).is_absolute():
        raise APIError(
            400, f"path {path!r} must be absolute (it is read on the server's machine)", param="path"
        )
    if isinstance(path, str) and not Path(path).exists():
        raise APIError(400, f"path {path!r} does not exist on the server", param="path")
    await asyncio.to_thread(check_quota, request, "knowledge_base_documents")
    return _card(request, await asyncio.to_thread(service.add_source, tenant, kb, body))


@router.post("/{kb}/sync", status_code=202)
async def start_sync(kb: str, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    await asyncio.to_thread(service.get, tenant, kb)  # 404 before 429
    await asyncio.to_thread(check_quota, request, "knowledge_base_documents")
    job = await asyncio.to_thread(service.start_sync, tenant, kb)
    return _job(job, kb)


@router.get("/{kb}/jobs/{job_id}")
async def get_job(kb: str, job_id: str, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    row = await asyncio.to_thread(service.get, tenant, kb)
    job = await asyncio.to_thread(service.job, tenant, job_id)
    if job.kb_id != row.id:
        raise APIError(404, f"The sync job '{job_id}' does not exist.", param="job_id", code="not_found")
    return _job(job, kb)


class RetrieveBody(JSONBody):
    """Bedrock Retrieve's body. Its values are the retriever's to check (400 naming the field), after
    the knowledge base is found (404 first), so they are documented here but not validated."""

    query: SkipValidation[str | None] = None
    numberOfResults: SkipValidation[int] = 5
    searchType: SkipValidation[str] = "HYBRID"  # LEXICAL, SEMANTIC or HYBRID
    filter: SkipValidation[dict[str, Any] | None] = None  # Bedrock's metadata filter


@router.post("/{kb}/retrieve")
async def retrieve(kb: str, body: RetrieveBody, request: Request) -> dict[str, Any]:
    service, tenant = scope(request)
    hits = await asyncio.to_thread(
        service.retrieve, tenant, kb, body.query, body.numberOfResults, body.searchType, body.filter
    )
    return {"results": [_result(hit) for hit in hits]}


# --- helpers --------------------------------------------------------------------------------------


def knowledge_service(request: Request) -> KnowledgeService:
    service = request.app.state.knowledge
    assert service is not None, "create_app always sets the knowledge service"
    return service


def scope(request: Request) -> tuple[KnowledgeService, Tenant]:
    """The service and the caller's tenant. Service calls run in a worker thread (database and disk
    I/O); their errors reach the client through :mod:`plinth.server.errors`."""
    return knowledge_service(request), request.state.tenant


def _embedder_exists(request: Request, name: str) -> bool:
    """Whether the sentence-transformers model ``name`` can be loaded: the server's own embedder, a
    model folder, a hub id in the local cache, or one the hub knows (asked with a short timeout)."""
    if name in (get_state(request).settings.embedding_model, DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"):
        return True
    if len(name) > 200 or not _MODEL_NAME.fullmatch(name):
        return False
    if Path(name).is_absolute():
        return any((Path(name) / f).is_file() for f in ("modules.json", "config.json"))
    import huggingface_hub

    repos = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in repos:
        try:
            if isinstance(huggingface_hub.try_to_load_from_cache(repo, "config.json"), str):
                return True
            huggingface_hub.model_info(repo, timeout=5)
            return True
        except Exception:  # not a valid id, not on the hub, or the hub is out of reach
            continue
    return False


def _config_param(message: str) -> str | None:
    """The field a config error is about, from its message (``chunking: ...`` -> ``chunking``)."""
    fields = ("name", "embedder_url", "embedder", "chunking", "store", "hybrid_weight", "metadata_schema",
              "reranker")  # fmt: skip
    return next((f for f in fields if f in message), None)


def _card(request: Request, row: KnowledgeBaseRow) -> dict[str, Any]:
    cp = knowledge_service(request).cp
    last = latest_job(cp, row.id)
    return {
        "id": row.name,
        "object": "knowledge_base",
        "name": row.name,
        "created": _ts(row.created_at),
        "config": row.config,
        "last_sync": _job(last, row.name) if last else None,
        "state": sync_state(last, last is not None and has_succeeded_job(cp, row.id)),
    }


def _job(job: JobRow, kb: str) -> dict[str, Any]:
    rate, eta = rate_and_eta(job, datetime.now(UTC))
    return {
        "id": job.id,
        "object": "knowledge_base.sync_job",
        "knowledge_base": kb,
        "status": job.status,
        "progress": {"done": job.done, "total": job.total, "rate": rate, "eta_seconds": eta},
        "report": job.report,
        "error": job.error,
        "created": _ts(job.created_at),
        "started": _ts(job.started_at),
        "finished": _ts(job.finished_at),
    }


def _result(hit: Hit) -> dict[str, Any]:
    return {
        "content": {"text": hit.content, "type": "TEXT"},
        "score": hit.score,
        "metadata": hit.metadata,
        "location": hit.location,
    }


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None
