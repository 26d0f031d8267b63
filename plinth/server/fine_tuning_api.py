"""OpenAI's fine-tuning API, per tenant: ``POST|GET /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``,
``.../events``, ``.../checkpoints`` and ``POST .../cancel``.

A job trains a LoRA adapter for one of the served base models on the tenant's uploaded ``fine-tune``
file; when it succeeds the adapter is registered for the tenant as ``fine_tuned_model``
(``ft:<base>:<tenant>:<suffix>:<job>``) and served at once. The body is OpenAI's, plus ``lora``
(``r``, ``alpha``, ``dropout``, ``target_modules``). Another tenant's job or file is a 404.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from plinth.control import Tenant
from plinth.control.jobs import (
    CheckpointRow,
    EventRow,
    JobRow,
    create_job,
    get_job,
    list_checkpoints,
    list_events,
    list_jobs,
    request_cancel,
)
from plinth.jobs import FineTuneRequest, adapter_name, fine_tune
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError
from plinth.server.files_api import tenant_file
from plinth.server.state import get_state
from plinth.server.tenant_quotas import check_quota

__all__ = ["job_object", "router"]

router = APIRouter(prefix="/v1/fine_tuning", dependencies=[Depends(require_tenant)])
KIND = "fine_tune"


@router.post("/jobs")
def create_fine_tuning_job(body: FineTuneRequest, request: Request) -> dict[str, Any]:
    state = get_state(request)
    tenant: Tenant = request.state.tenant
    model = state.models.get(body.model)
    if model is None:
        served = ", ".join(state.models)
        message = f"Model {body.model!r} cannot be fine-tuned here; choose a served base model ({served})."
        raise APIError(400, message, param="model", code="model_not_available")
    if body.lora.r > state.settings.max_lora_rank:
        message = (
            f"lora.r {body.lora.r} is above this server's max_lora_rank ({state.settings.max_lora_rank})"
        )
        raise APIError(400, message, param="lora.r")
    training = _fine_tune_file(request, body.training_file, "training_file")
    validation = (
        _fine_tune_file(request, body.validation_file, "validation_file") if body.validation_file else None
    )
    job_id = f"ftjob-{secrets.token_hex(12)}"
    record = {
        **body.model_dump(mode="json"),
        "hyperparameters": body.resolved_hyperparameters(_count_lines(Path(training.path))),
        "fine_tuned_model": adapter_name(body.model, tenant.name, body.suffix, job_id),
        "tenant": tenant.name,
        "checkpoint": str(model.checkpoint_path),
        "training_path": training.path,
        "validation_path": validation.path if validation else None,
    }
    problems = fine_tune.hyperparameters(record).problems()
    if problems:
        raise APIError(400, "; ".join(problems), param="hyperparameters")
    check_quota(request, "concurrent_jobs")
    job = create_job(state.control_plane, job_id=job_id, tenant_id=tenant.id, kind=KIND, request=record)
    if state.jobs is not None:
        state.jobs.wake()
    return job_object(job, tenant.name)


@router.get("/jobs")
def list_fine_tuning_jobs(
    request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)
) -> dict[str, Any]:
    tenant: Tenant = request.state.tenant
    rows, more = list_jobs(get_state(request).control_plane, tenant.id, KIND, after=after, limit=limit)
    return {"object": "list", "data": [job_object(r, tenant.name) for r in rows], "has_more": more}


@router.get("/jobs/{job_id}")
def retrieve_fine_tuning_job(job_id: str, request: Request) -> dict[str, Any]:
    return job_object(_job(request, job_id), request.state.tenant.name)


@router.get("/jobs/{job_id}/events")
def list_fine_tuning_events(
    job_id: str, request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=1000)
) -> dict[str, Any]:
    job = _job(request, job_id)
    cursor = _event_cursor(after)
    rows, more = list_events(get_state(request).control_plane, job.id, after=cursor, limit=limit)
    return {"object": "list", "data": [event_object(r) for r in rows], "has_more": more}


@router.get("/jobs/{job_id}/checkpoints")
def list_fine_tuning_checkpoints(
    job_id: str, request: Request, after: str | None = None, limit: int = Query(10, ge=1, le=100)
) -> dict[str, Any]:
    job = _job(request, job_id)
    rows = list_checkpoints(get_state(request).control_plane, job.id)
    if after is not None:
        ids = [f"ftckpt-{r.id}" for r in rows]
        rows = rows[ids.index(after) + 1 :] if after in ids else rows
    page = [checkpoint_object(r, job) for r in rows[:limit]]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(rows) > limit,
    }


@router.post("/jobs/{job_id}/cancel")
def cancel_fine_tuning_job(job_id: str, request: Request) -> dict[str, Any]:
    state = get_state(request)
    tenant: Tenant = request.state.tenant
    job = request_cancel(state.control_plane, tenant.id, job_id)
    if job is None:
        raise _not_found(job_id)
    if job.status in ("succeeded", "failed"):
        raise APIError(400, f"Job {job_id} has already {job.status}; it cannot be cancelled.", param="job_id")
    if state.jobs is not None:
        state.jobs.wake()
    return job_object(job, tenant.name)


def job_object(job: JobRow, organization: str) -> dict[str, Any]:
    """The job as OpenAI shows it (``fine_tuned_model`` only once it succeeded)."""
    req, result = job.request, job.result or {}
    succeeded = job.status == "succeeded"
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "model": req["model"],
        "created_at": _ts(job.created_at),
        "finished_at": _ts(job.finished_at),
        "fine_tuned_model": req["fine_tuned_model"] if succeeded else None,
        "organization_id": organization,
        "result_files": [],
        "status": job.status,
        "training_file": req["training_file"],
        "validation_file": req.get("validation_file"),
        "hyperparameters": req["hyperparameters"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": req["hyperparameters"]}},
        "trained_tokens": result.get("trained_tokens"),
        "error": job.error,
        "seed": req.get("seed"),
        "user_provided_suffix": req.get("suffix"),
        "estimated_finish": None,
        "integrations": [],
        "metadata": req.get("metadata"),
        "lora": req["lora"],
    }


def event_object(event: EventRow) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{event.id}",
        "created_at": _ts(event.created_at),
        "level": event.level,
        "message": event.message,
        "data": event.data or {},
        "type": event.type,
    }


def checkpoint_object(checkpoint: CheckpointRow, job: JobRow) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": f"ftckpt-{checkpoint.id}",
        "created_at": _ts(checkpoint.created_at),
        "fine_tuned_model_checkpoint": f"{job.request['fine_tuned_model']}:ckpt-step-{checkpoint.step}",
        "fine_tuning_job_id": job.id,
        "metrics": checkpoint.metrics,
        "step_number": checkpoint.step,
    }


def _job(request: Request, job_id: str) -> JobRow:
    job = get_job(get_state(request).control_plane, job_id, request.state.tenant.id)
    if job is None or job.kind != KIND:
        raise _not_found(job_id)
    return job


def _fine_tune_file(request: Request, file_id: str, param: str) -> Any:
    row = tenant_file(request, file_id, param)
    if row.purpose != "fine-tune":
        raise APIError(
            400,
            f"File {file_id} has purpose {row.purpose!r}; upload it with purpose 'fine-tune'.",
            param=param,
        )
    return row


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _event_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        return int(after.removeprefix("ftevent-"))
    except ValueError as exc:
        raise APIError(400, f"after must be an event id (ftevent-N), not {after!r}", param="after") from exc


def _not_found(job_id: str) -> APIError:
    return APIError(
        404, f"No such fine-tuning job: {job_id}", param="job_id", code="fine_tuning_job_not_found"
    )


def _ts(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())
