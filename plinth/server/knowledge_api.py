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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from plinth.control import Tenant
from plinth.control.knowledge import JobRow, KnowledgeBaseRow, has_succeeded_job, latest_job
from plinth.knowledge.filters import FilterError
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.knowledge.progress import rate_and_eta, sync_state
from plinth.knowledge.retriever import RetrievalError
from plinth.knowledge.service import ConflictError, InvalidError, KnowledgeService, NotFoundError
from plinth.knowledge.types import Hit
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError

__all__ = ["router"]

router = APIRouter(prefix="/v1/knowledge-bases", dependencies=[Depends(require_tenant)])
_RETRIEVE_KEYS = {"query", "numberOfResults", "filter", "searchType"}


@router.post("", status_code=201)
async def create_kb(request: Request) -> dict[str, Any]:
    body = await json_object(request)
    if "sources" in body:
        raise APIError(400, "Add sources with POST /v1/knowledge-bases/{kb}/sources.", param="sources")
    try:
        config = KnowledgeBaseConfig.from_json(body)
    except ValueError as exc:
        raise APIError(400, str(exc), param=_config_param(str(exc))) from exc
    row = await call_service(request, "create", config)
    return _card(request, row)


@router.get("")
async def list_kbs(request: Request) -> dict[str, Any]:
    kbs = await call_service(request, "list_kbs")
    return {"object": "list", "data": [_card(request, row) for row in kbs]}


@router.get("/{kb}")
async def get_kb(kb: str, request: Request) -> dict[str, Any]:
    return _card(request, await call_service(request, "get", kb))


@router.delete("/{kb}")
async def delete_kb(kb: str, request: Request) -> dict[str, Any]:
    await call_service(request, "delete", kb)
    return {"id": kb, "object": "knowledge_base", "deleted": True}


@router.post("/{kb}/sources", status_code=201)
async def add_source(kb: str, request: Request) -> dict[str, Any]:
    tenant: Tenant = request.state.tenant
    body = await json_object(request)
    await call_service(request, "get", kb)  # 404 before 403: do not reveal what others may do
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
    return _card(request, await call_service(request, "add_source", kb, body))


@router.post("/{kb}/sync", status_code=202)
async def start_sync(kb: str, request: Request) -> dict[str, Any]:
    job = await call_service(request, "start_sync", kb)
    return _job(job, kb)


@router.get("/{kb}/jobs/{job_id}")
async def get_job(kb: str, job_id: str, request: Request) -> dict[str, Any]:
    row = await call_service(request, "get", kb)
    job = await call_service(request, "job", job_id)
    if job.kb_id != row.id:
        raise APIError(404, f"The sync job '{job_id}' does not exist.", param="job_id", code="not_found")
    return _job(job, kb)


@router.post("/{kb}/retrieve")
async def retrieve(kb: str, request: Request) -> dict[str, Any]:
    body = await json_object(request)
    if unknown := sorted(set(body) - _RETRIEVE_KEYS):
        raise APIError(400, f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])
    hits = await call_service(
        request, "retrieve", kb, body.get("query"), body.get("numberOfResults", 5),
        body.get("searchType", "HYBRID"), body.get("filter"),
    )  # fmt: skip
    return {"results": [_result(hit) for hit in hits]}


# --- helpers --------------------------------------------------------------------------------------


def knowledge_service(request: Request) -> KnowledgeService:
    service = request.app.state.knowledge
    assert service is not None, "create_app always sets the knowledge service"
    return service


async def call_service(request: Request, method: str, *args: Any) -> Any:
    """Run a service method in a worker thread (it does database and disk I/O), mapping its errors."""
    fn = getattr(knowledge_service(request), method)
    try:
        return await asyncio.to_thread(fn, request.state.tenant, *args)
    except NotFoundError as exc:
        raise APIError(404, str(exc), param="kb", code="not_found") from exc
    except ConflictError as exc:
        raise APIError(409, str(exc), code="conflict") from exc
    except (FilterError, RetrievalError, InvalidError) as exc:
        raise APIError(400, str(exc), param=exc.param) from exc


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise APIError(400, "The request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


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
