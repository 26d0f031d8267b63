"""Uploaded files: checked for their purpose, then kept under the data dir, one folder per tenant.

A file is checked before anything is recorded, so a bad upload leaves nothing behind; a good one is moved
into ``<data_dir>/files/<tenant id>/<file id>`` and only then gets its row. A purpose may have a checker
(fine-tune files must be chat or prompt/completion JSONL) that returns the problems it found; the first
few are reported, each with its line number::

    row = store_file(cp, data_dir, tenant_id=1, purpose="fine-tune", upload=path, filename="train.jsonl")
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from plinth.control import ControlPlane
from plinth.control.files import FileRow, create_file, delete_file, new_file_id

__all__ = ["PURPOSES", "FileError", "Checker", "remove_file", "store_file"]

PURPOSES = ("fine-tune", "batch", "evals")
MAX_REPORTED_PROBLEMS = 5

Checker = Callable[[Path], list[str]]


class FileError(ValueError):
    """An upload that cannot be kept: ``param`` names the request field, ``problems`` lists what is wrong."""

    def __init__(self, message: str, param: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.param, self.problems = param, problems or []


def store_file(
    cp: ControlPlane,
    data_dir: Path,
    *,
    tenant_id: int,
    purpose: str,
    upload: Path,
    filename: str,
    checkers: Mapping[str, Checker],
) -> FileRow:
    """Check ``upload`` for ``purpose``, move it under the data dir and record it; FileError if bad."""
    if purpose not in PURPOSES:
        raise FileError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}", "purpose")
    check = checkers.get(purpose)
    problems = check(upload) if check is not None else []
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > 5 else ""
        raise FileError(f"The file is not a valid {purpose} file: {shown}{more}", "file", problems)
    file_id = new_file_id()
    dest = Path(data_dir) / "files" / str(tenant_id) / file_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(upload, dest)
    try:
        return create_file(
            cp, file_id=file_id, tenant_id=tenant_id, purpose=purpose, filename=filename,
            size=dest.stat().st_size, path=str(dest),
        )  # fmt: skip
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def remove_file(cp: ControlPlane, tenant_id: int, file_id: str) -> FileRow | None:
    """Delete the tenant's file (row, then bytes); None when there is no such file for this tenant."""
    row = delete_file(cp, tenant_id, file_id)
    if row is not None:
        Path(row.path).unlink(missing_ok=True)
    return row
