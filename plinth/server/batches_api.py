"""OpenAI's Batch API, per tenant: ``POST|GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``.

A batch runs every line of the tenant's ``batch`` file (``{"custom_id", "method": "POST", "url", "body"}``)
against ``endpoint`` -- ``/v1/chat/completions``, ``/v1/completions`` or ``/v1/embeddings`` -- through the
same route an interactive request takes, at a lower priority than interactive traffic (see
:mod:`plinth.server.batch_runner`). Results land in a ``batch_output`` file (``output_file_id``: lines
answered 200) and an error file (``error_file_id``: lines that failed, each alone), one
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`` per line. Statuses are
OpenAI's: ``validating -> in_progress -> finalizing -> completed``, or ``failed`` (the file's shape is
wrong: ``errors`` lists the lines), ``expired`` (the completion window passed), ``cancelling ->
cancelled``. Another tenant's batch or file is a 404.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.control import Tenant
from plinth.control.jobs import JobRow, create_job, get_job, list_jobs, transition
from plinth.jobs.batch import COMPLETION_WINDOWS, ENDPOINTS, FINISHED
from plinth.server.auth import require_tenant
from plinth.server.batch_runner import BATCH_KIND
from plinth.server.errors import APIError
from plinth.server.files_api import tenant_file
from plinth.server.state import get_state
from plinth.server.tenant_quotas import check_quota

__all__ = ["BatchCreate", "batch_object", "router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])
_TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
          "cancelled_at")  # fmt: skip


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = Field(None, max_length=16)


@router.post("/batches")
async def create_batch(body: BatchCreate, request: Request) -> dict[str, Any]:
    state = get_state(request)
    tenant: Tenant = request.state.tenant
    if body.endpoint not in ENDPOINTS:
        raise APIError(400, f"endpoint must be one of {', '.join(ENDPOINTS)}.", param="endpoint")
    if body.completion_window not in COMPLETION_WINDOWS:
        windows = ", ".join(COMPLETION_WINDOWS)
        raise APIError(400, f"completion_window must be one of {windows}.", param="completion_window")
    source = tenant_file(request, body.input_file_id, "input_file_id")
    if source.purpose != "batch":
        message = f"File {source.id} has purpose {source.purpose!r}; upload it with purpose 'batch'."
        raise APIError(400, message, param="input_file_id")
    now = int(time.time())
    record = {
        **body.model_dump(mode="json"), "tenant": tenant.name, "input_path": source.path,
        "expires_at": now + COMPLETION_WINDOWS[body.completion_window],
    }  # fmt: skip
    await asyncio.to_thread(check_quota, request, "concurrent_jobs")
    job_id = f"batch_{secrets.token_hex(12)}"
    job = create_job(
        state.control_plane, job_id=job_id, tenant_id=tenant.id, kind=BATCH_KIND, request=record,
        status="validating",
    )  # fmt: skip
    if state.runner is not None:
        state.runner.submit(job.id)
    return batch_object(job)


@router.get("/batches")
def list_batches(
    request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)
) -> dict[str, Any]:
    tenant: Tenant = request.state.tenant
    rows, more = list_jobs(get_state(request).control_plane, tenant.id, BATCH_KIND, after=after, limit=limit)
    data = [batch_object(r) for r in rows]
    return {
        "object": "list", "data": data, "has_more": more,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    }  # fmt: skip


@router.get("/batches/{batch_id}")
def retrieve_batch(batch_id: str, request: Request) -> dict[str, Any]:
    return batch_object(_batch(request, batch_id))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request) -> dict[str, Any]:
    state = get_state(request)
    job = _batch(request, batch_id)
    if job.status in FINISHED or job.status == "finalizing":
        raise APIError(409, f"Batch {batch_id} is {job.status}; it cannot be cancelled.",
                       param="batch_id", code="batch_not_cancellable")  # fmt: skip
    if job.status != "cancelling":
        if state.runner is not None and state.runner.running:
            await state.runner.cancel(job)
        else:  # no runner here (an app without its lifespan): the runner finishes it when it starts
            result = {**(job.result or {}), "cancelling_at": int(time.time())}
            transition(
                state.control_plane, job.id, ("validating", "in_progress"), "cancelling", result=result
            )
    return batch_object(_batch(request, batch_id))


def batch_object(job: JobRow) -> dict[str, Any]:
    """The batch as OpenAI shows it."""
    req, result = job.request, job.result or {}
    counts = result.get("request_counts") or {"total": 0, "completed": 0, "failed": 0}
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": req["endpoint"],
        "errors": result.get("errors") or (job.error and {"object": "list", "data": [job.error]}),
        "input_file_id": req["input_file_id"],
        "completion_window": req["completion_window"],
        "status": job.status,
        "output_file_id": result.get("output_file_id"),
        "error_file_id": result.get("error_file_id"),
        "created_at": int(job.created_at.timestamp()),
        "expires_at": req["expires_at"],
        **{key: result.get(key) for key in _TIMES},
        "request_counts": counts,
        "metadata": req.get("metadata"),
    }


def _batch(request: Request, batch_id: str) -> JobRow:
    job = get_job(get_state(request).control_plane, batch_id, request.state.tenant.id)
    if job is None or job.kind != BATCH_KIND:
        raise APIError(404, f"No such batch: {batch_id}", param="batch_id", code="batch_not_found")
    return job
