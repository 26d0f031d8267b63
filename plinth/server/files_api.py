"""OpenAI's Files API, per tenant: ``POST|GET /v1/files``, ``GET|DELETE /v1/files/{id}``,
``GET /v1/files/{id}/content``.

A file is a ``multipart/form-data`` upload (fields ``file`` and ``purpose``: ``fine-tune``, ``batch`` or
``evals``), streamed to disk with the ``max_upload_mb`` limit and checked for its purpose before it is
kept: a fine-tune file that is not chat or prompt/completion JSONL is a 400 that lists the first bad
lines. Another tenant's file is a 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from plinth.control import Tenant
from plinth.control.files import FileRow, get_file, list_files
from plinth.jobs import FileError, remove_file, store_file
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError
from plinth.server.state import get_state
from plinth.server.uploads import receive_upload

__all__ = ["file_object", "router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])


def file_object(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at.timestamp()),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
    }


@router.post("/files")
async def create_file(request: Request) -> dict[str, Any]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise APIError(
            400, "Upload files as multipart/form-data with fields 'file' and 'purpose'.", param="file"
        )
    state = get_state(request)
    tenant: Tenant = request.state.tenant
    data_dir = Path(state.settings.data_dir)
    limit = state.settings.max_upload_mb * 1024 * 1024
    upload = await receive_upload(request, data_dir / "files" / "uploads", limit, archive=False)
    try:
        purpose = upload.fields.get("purpose", "")
        row = await asyncio.to_thread(
            store_file, state.control_plane, data_dir, tenant_id=tenant.id, purpose=purpose,
            upload=upload.path, filename=upload.filename, checkers=state.file_checkers,
        )  # fmt: skip
    except FileError as exc:
        raise APIError(400, str(exc), param=exc.param, code="invalid_file") from exc
    finally:
        await asyncio.to_thread(shutil.rmtree, upload.path.parent, True)
    return file_object(row)


@router.get("/files")
def list_tenant_files(
    request: Request,
    purpose: str | None = None,
    limit: int = Query(10_000, ge=1, le=10_000),
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    rows = list_files(get_state(request).control_plane, request.state.tenant.id, purpose)
    rows = rows if order == "desc" else rows[::-1]
    return {"object": "list", "data": [file_object(r) for r in rows[:limit]], "has_more": len(rows) > limit}


@router.get("/files/{file_id}")
def retrieve_file(file_id: str, request: Request) -> dict[str, Any]:
    return file_object(_file(request, file_id))


@router.get("/files/{file_id}/content")
def file_content(file_id: str, request: Request) -> FileResponse:
    row = _file(request, file_id)
    return FileResponse(row.path, media_type="application/octet-stream", filename=row.filename)


@router.delete("/files/{file_id}")
def delete_tenant_file(file_id: str, request: Request) -> dict[str, Any]:
    _file(request, file_id)
    remove_file(get_state(request).control_plane, request.state.tenant.id, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


def tenant_file(request: Request, file_id: str, param: str) -> FileRow:
    """The caller's file ``file_id`` (other routes name their field in ``param``); 404 otherwise."""
    row = get_file(get_state(request).control_plane, request.state.tenant.id, file_id)
    if row is None:
        raise APIError(404, f"No such File object: {file_id}", param=param, code="file_not_found")
    return row


def _file(request: Request, file_id: str) -> FileRow:
    return tenant_file(request, file_id, "file_id")
