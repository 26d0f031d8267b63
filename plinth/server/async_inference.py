"""Asynchronous inference, in SageMaker's shape: ``POST /invocations-async`` and its output location.

The body is an ``/invocations`` body, or -- with the header ``X-Amzn-SageMaker-InputLocation`` naming one
of the tenant's uploaded files (its id, or its ``/v1/files/{id}`` URL) -- that file holds the body. The
answer is a 202 ``{"InferenceId", "OutputLocation"}`` at once; the inference runs as an
``async_inference`` job in the server (:mod:`plinth.server.batch_runner`, batch priority, resumed after a
restart). ``GET`` on ``OutputLocation`` answers 404 with ``Retry-After`` until the result is ready, then
the ``/invocations`` response (or its error, with its status) for ``async_result_ttl_s`` seconds; after
that, a plain 404::

    curl -X POST localhost:8000/invocations-async -d '{"inputs": "Hi", "parameters": {"max_new_tokens": 8}}'
    -> 202 {"InferenceId": "inf-...", "OutputLocation": "http://localhost:8000/invocations-async/inf-..."}
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from plinth.control.jobs import create_job, get_job
from plinth.server.auth import require_tenant
from plinth.server.batch_runner import ASYNC_KIND
from plinth.server.errors import APIError, invalid_body
from plinth.server.files_api import tenant_file
from plinth.server.invocations import ADAPTER_HEADER, LMIRequest
from plinth.server.state import get_state

__all__ = ["INPUT_LOCATION_HEADER", "router"]

router = APIRouter(dependencies=[Depends(require_tenant)])
INPUT_LOCATION_HEADER = "X-Amzn-SageMaker-InputLocation"
RETRY_AFTER_S = 1


@router.post("/invocations-async", status_code=202)
async def invocations_async(request: Request) -> JSONResponse:
    state = get_state(request)
    tenant = request.state.tenant
    body = await _body(request)
    headers = {ADAPTER_HEADER: value} if (value := request.headers.get(ADAPTER_HEADER)) else {}
    job_id = f"inf-{secrets.token_hex(12)}"
    record = {"tenant": tenant.name, "body": body, "headers": headers}
    create_job(state.control_plane, job_id=job_id, tenant_id=tenant.id, kind=ASYNC_KIND, request=record,
               status="in_progress")  # fmt: skip
    if state.runner is not None:
        state.runner.submit(job_id)
    location = str(request.url_for("async_inference_result", inference_id=job_id))
    return JSONResponse({"InferenceId": job_id, "OutputLocation": location}, status_code=202,
                        headers={"Location": location})  # fmt: skip


@router.get("/invocations-async/{inference_id}", name="async_inference_result")
def async_inference_result(inference_id: str, request: Request) -> JSONResponse:
    job = get_job(get_state(request).control_plane, inference_id, request.state.tenant.id)
    if job is None or job.kind != ASYNC_KIND or job.status == "expired":
        raise APIError(404, f"No such inference result: {inference_id}", param="inference_id",
                       code="inference_not_found")  # fmt: skip
    if job.status != "completed" or job.result is None:
        body = {"error": {"message": f"Inference {inference_id} is not finished yet.", "type":
                          "not_found_error", "param": None, "code": "inference_in_progress"}}  # fmt: skip
        return JSONResponse(body, status_code=404, headers={"Retry-After": str(RETRY_AFTER_S)})
    path = Path(job.result["path"])
    if not path.exists():  # swept a moment ago
        raise APIError(404, f"No such inference result: {inference_id}", param="inference_id",
                       code="inference_not_found")  # fmt: skip
    stored = json.loads(path.read_text(encoding="utf-8"))
    return JSONResponse(stored["body"], status_code=stored["status_code"])


async def _body(request: Request) -> dict[str, Any]:
    location = request.headers.get(INPUT_LOCATION_HEADER)
    if location is None:
        raw = await request.body()
    else:
        file_id = location.rstrip("/").removesuffix("/content").rsplit("/", 1)[-1]
        row = tenant_file(request, file_id, INPUT_LOCATION_HEADER)
        raw = await asyncio.to_thread(Path(row.path).read_bytes)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, "The request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise APIError(400, "The body must be a JSON object (an /invocations body).")
    try:
        LMIRequest.model_validate(body)  # a malformed body is a 400 now, not a stored error later
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from exc
    return body
