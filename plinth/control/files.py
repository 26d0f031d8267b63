"""File rows: what each tenant uploaded (OpenAI's Files API), and where its bytes lie.

The bytes are written by :mod:`plinth.jobs.files` under the data dir before the row exists, so a row
always points at a complete file; deleting removes the row first, then the bytes::

    row = create_file(cp, tenant_id=1, purpose="fine-tune", filename="train.jsonl", size=812, path=p)
    get_file(cp, 1, row.id)          # None for a missing id, or another tenant's
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from plinth.control.audit import record
from plinth.control.db import ControlPlane, files, utcnow

__all__ = ["FileRow", "create_file", "delete_file", "get_file", "list_files", "new_file_id"]


@dataclass(frozen=True, slots=True)
class FileRow:
    id: str
    tenant_id: int
    purpose: str
    filename: str
    bytes: int
    path: str
    created_at: datetime


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def create_file(
    cp: ControlPlane, *, file_id: str, tenant_id: int, purpose: str, filename: str, size: int, path: str
) -> FileRow:
    """Record an uploaded file whose bytes are already at ``path`` (audited)."""
    row = FileRow(file_id, tenant_id, purpose, filename, size, path, utcnow())
    with cp.engine.begin() as conn:
        conn.execute(
            sa.insert(files).values(
                id=row.id, tenant_id=tenant_id, purpose=purpose, filename=filename, bytes=size, path=path,
                created_at=row.created_at,
            )
        )  # fmt: skip
        record(conn, "file.create", tenant_id=tenant_id, id=row.id, purpose=purpose, bytes=size)
    return row


def get_file(cp: ControlPlane, tenant_id: int, file_id: str) -> FileRow | None:
    """The tenant's file ``file_id``; None also for another tenant's (callers answer 404)."""
    query = sa.select(files).where(files.c.id == file_id, files.c.tenant_id == tenant_id)
    with cp.engine.connect() as conn:
        row = conn.execute(query).first()
    return FileRow(**row._mapping) if row else None


def list_files(cp: ControlPlane, tenant_id: int, purpose: str | None = None) -> list[FileRow]:
    """The tenant's files, newest first."""
    query = sa.select(files).where(files.c.tenant_id == tenant_id)
    if purpose is not None:
        query = query.where(files.c.purpose == purpose)
    with cp.engine.connect() as conn:
        rows = conn.execute(query.order_by(files.c.created_at.desc(), files.c.id)).all()
    return [FileRow(**row._mapping) for row in rows]


def delete_file(cp: ControlPlane, tenant_id: int, file_id: str) -> FileRow | None:
    """Remove the tenant's row and return it (the caller removes the bytes); None if it was not there."""
    row = get_file(cp, tenant_id, file_id)
    if row is None:
        return None
    with cp.engine.begin() as conn:
        conn.execute(sa.delete(files).where(files.c.id == file_id, files.c.tenant_id == tenant_id))
        record(conn, "file.delete", tenant_id=tenant_id, id=file_id)
    return row
