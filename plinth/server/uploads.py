"""Receive an adapter archive as ``multipart/form-data``, streamed to disk with a size limit.

Starlette's own form parsing needs the optional ``python-multipart`` package and spools whole files
before anyone can check their size; adapters can be gigabytes, so this small parser streams the
request body instead: the part named ``file`` goes straight to a temporary file under the data
directory, and the request fails with 413 the moment it passes ``max_bytes``. Other parts are small
text fields (name, base_model)::

    upload = await receive_upload(request, data_dir / "adapters" / "uploads", 2 << 30)
    upload.fields["name"], upload.path, upload.filename
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from starlette.requests import Request

from plinth.server.errors import APIError

__all__ = ["Upload", "receive_upload"]

_MAX_FIELD_BYTES = 64 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_NAME = re.compile(r'(?:^|;)\s*name="([^"]*)"')
_FILENAME = re.compile(r'(?:^|;)\s*filename="([^"]*)"')


@dataclass(slots=True)
class Upload:
    fields: dict[str, str]  # the text parts
    path: Path  # the ``file`` part on disk; the caller deletes its folder (``path.parent``) when done
    filename: str  # as the client named it (display only: never used as a path)


async def receive_upload(request: Request, dest_dir: Path, max_bytes: int, *, archive: bool = True) -> Upload:
    """Read the whole multipart body: text fields in memory, the ``file`` part to ``dest_dir``.

    ``archive=False`` is for the Files API: the file keeps its own (sanitised) name rather than being
    named as a ``.tar.gz``."""
    match = _BOUNDARY.search(request.headers.get("content-type", ""))
    if match is None:
        raise APIError(400, "multipart/form-data without a boundary", param="file")
    if int(request.headers.get("content-length") or 0) > max_bytes + _MAX_FIELD_BYTES:
        raise _too_large(max_bytes)
    folder = dest_dir / uuid.uuid4().hex  # one folder per upload: the file keeps its client-side name
    folder.mkdir(parents=True)
    parser = _Parser(match.group(1).encode(), folder, max_bytes, archive)
    try:
        async for chunk in request.stream():
            await asyncio.to_thread(parser.feed, chunk)  # writes to disk: off the event loop
        parser.finish()
    except BaseException:
        parser.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Upload(parser.fields, folder / parser.filename, parser.filename)


def _safe_filename(name: str, archive: bool) -> str:
    """The client's file name reduced to a harmless basename; for an archive, ending in .tar.gz (it names
    the adapter when the archive holds one bare PEFT folder and no ``name`` field is given)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not archive:
        return stem[:200] or "upload"
    for suffix in (".tar.gz", ".tgz", ".tar"):
        stem = stem.removesuffix(suffix)
    return f"{stem or 'upload'}.tar.gz"


def _too_large(max_bytes: int) -> APIError:
    return APIError(
        413, f"The upload is larger than the limit of {max_bytes} bytes (max_upload_mb).", param="file"
    )


class _Parser:
    """Incremental multipart parser: ``--B`` delimiters, part headers, then data up to ``\\r\\n--B``."""

    def __init__(self, boundary: bytes, folder: Path, max_bytes: int, archive: bool) -> None:
        self.delimiter, self.separator = b"--" + boundary, b"\r\n--" + boundary
        self.folder, self.max_bytes, self.archive = folder, max_bytes, archive
        self.fields: dict[str, str] = {}
        self.buffer = bytearray()
        self.state = "preamble"
        self.part: str | None = None  # the current part's name
        self.value = bytearray()
        self.file: IO[bytes] | None = None
        self.file_bytes = 0
        self.has_file = False
        self.filename = ""

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while self._step():
            pass

    def finish(self) -> None:
        self.close()
        if self.state != "done":
            raise APIError(400, "The multipart body ended early.", param="file")
        if not self.has_file:
            what = "the adapter archive" if self.archive else "the file"
            raise APIError(400, f"Upload {what} in the form field 'file'.", param="file")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def _step(self) -> bool:
        """Consume what the buffer allows; True while progress is possible."""
        if self.state == "preamble":
            at = self.buffer.find(self.delimiter)
            if at < 0 or len(self.buffer) < at + len(self.delimiter) + 2:
                return False
            return self._after_delimiter(at + len(self.delimiter))
        if self.state == "headers":
            at = self.buffer.find(b"\r\n\r\n")
            if at < 0:
                if len(self.buffer) > _MAX_FIELD_BYTES:
                    raise APIError(400, "multipart part headers are too long", param="file")
                return False
            self._start_part(bytes(self.buffer[:at]).decode("utf-8", "replace"))
            del self.buffer[: at + 4]
            return True
        if self.state == "data":
            at = self.buffer.find(self.separator)
            if at < 0:
                keep = len(self.separator) - 1  # a separator may straddle two chunks
                if len(self.buffer) > keep:
                    self._data(bytes(self.buffer[:-keep]))
                    del self.buffer[:-keep]
                return False
            if len(self.buffer) < at + len(self.separator) + 2:
                return False
            self._data(bytes(self.buffer[:at]))
            self._end_part()
            return self._after_delimiter(at + len(self.separator))
        return False  # done: ignore the epilogue

    def _after_delimiter(self, end: int) -> bool:
        marker = bytes(self.buffer[end : end + 2])
        del self.buffer[: end + 2]
        self.state = "done" if marker == b"--" else "headers"
        return self.state == "headers"

    def _start_part(self, headers: str) -> None:
        disposition = next(
            (line for line in headers.split("\r\n") if line.lower().startswith("content-disposition")), ""
        )
        params = disposition.partition(":")[2]
        match = _NAME.search(params)
        self.part = match.group(1) if match else None
        self.state = "data"
        if self.part == "file":
            if self.has_file:
                raise APIError(400, "Upload exactly one file.", param="file")
            self.has_file = True
            found = _FILENAME.search(params)
            self.filename = _safe_filename(found.group(1) if found else "", self.archive)
            self.file = (self.folder / self.filename).open("wb")

    def _data(self, data: bytes) -> None:
        if self.part == "file" and self.file is not None:
            self.file_bytes += len(data)
            if self.file_bytes > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.file.write(data)
        elif self.part is not None:
            self.value += data
            if len(self.value) > _MAX_FIELD_BYTES:
                raise APIError(400, f"form field {self.part!r} is too long", param=self.part)

    def _end_part(self) -> None:
        if self.part == "file":
            self.close()
        elif self.part is not None:
            self.fields[self.part] = self.value.decode("utf-8", "replace")
        self.part, self.value = None, bytearray()
