"""Artifacts (adapter folders, archives) at fsspec URLs: fetch one into a local cache, upload a folder.

Replicas and API processes on different machines share adapters through an object store rather than a
shared filesystem: a registration records the URL, and every process that serves the adapter fetches it
once into its own data dir. Any protocol with an installed fsspec implementation works (``s3://`` with
``s3fs``, ``gs://`` with ``gcsfs``, ``file://``, ``memory://``...).

The cache is keyed by the URL and the listing's sizes and version markers (ETag, generation, mtime...),
so an unchanged artifact is never downloaded twice and a changed one is fetched afresh. A fetch lands in
a temporary folder that is renamed into place only when complete, so a failed one leaves nothing::

    folder = fetch("s3://team/adapters/sql", Path("plinth-data/adapters/remote"))  # .../<digest>/sql
    upload_folder(Path("plinth-data/fine_tuned/ftjob-1"), "s3://team/plinth/fine_tuned/ftjob-1")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from fsspec import AbstractFileSystem
from fsspec.core import split_protocol, url_to_fs

__all__ = ["ArtifactError", "check_url", "fetch", "is_url", "publish_dir", "remove_quietly", "upload_folder"]

# What tells two versions of an object apart, across fsspec implementations (S3, GCS, Azure, local...).
_VERSION_KEYS = ("ETag", "etag", "md5Hash", "generation", "VersionId", "LastModified", "mtime", "created")
T = TypeVar("T")


class ArtifactError(ValueError):
    """A URL that cannot be read or written; ``code`` says why (``unsupported_protocol``,
    ``artifact_not_found``, ``artifact_too_large``, ``invalid_artifact``, ``artifact_unreadable``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def is_url(source: str) -> bool:
    """``scheme://...`` (fsspec's test): what neither a local path nor a hub id looks like."""
    return split_protocol(source)[0] is not None


def check_url(url: str) -> str:
    """``url`` if an installed fsspec implementation serves its protocol; ArtifactError otherwise."""
    _filesystem(url)
    return url


def fetch(url: str, cache_dir: Path, max_bytes: int | None = None) -> Path:
    """A local copy of the file or folder at ``url``: ``cache_dir/<digest>/<its name>``. One whose
    listed size passes ``max_bytes`` is refused before anything is downloaded."""
    fs, root = _filesystem(url)
    name = posixpath.basename(root.rstrip("/")) or "artifact"
    files = _listing(fs, root, name, url)
    size = sum(meta.get("size") or 0 for _, meta in files.values())
    if max_bytes is not None and size > max_bytes:
        message = f"{url} holds {size} bytes, more than the {max_bytes} allowed (max_upload_mb)"
        raise ArtifactError(message, "artifact_too_large")
    dest = Path(cache_dir) / _fingerprint(url, files)
    if not dest.is_dir():
        _download(fs, files, dest, url)
    return dest / name


def upload_folder(folder: Path, url: str) -> str:
    """Copy every file under ``folder`` to ``url`` (replacing what was there); ``url`` back. On a failure
    what was written is removed and ArtifactError raised."""
    fs, root = _filesystem(url)
    root = root.rstrip("/")
    try:
        if fs.exists(root):
            fs.rm(root, recursive=True)
        for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            target = posixpath.join(root, file.relative_to(folder).as_posix())
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            fs.put_file(str(file), target)
    except Exception as exc:  # any backend's failure (credentials, network, quota): nothing stays behind
        _remove(fs, root)
        raise ArtifactError(f"uploading to {url} failed ({_describe(exc)})", "artifact_unreadable") from exc
    return url


def publish_dir(staging: Path, dest: Path) -> None:
    """Rename the complete ``staging`` folder to ``dest``; a concurrent writer of the same content
    winning the race is fine."""
    try:
        staging.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise


def _filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    protocol = split_protocol(url)[0]
    try:
        fs, path = url_to_fs(url)
    except ImportError as exc:  # a protocol fsspec knows whose package is not installed (s3fs, gcsfs...)
        message = f"{protocol}:// URLs need a package this server lacks: {_describe(exc)}"
        raise ArtifactError(message, "unsupported_protocol") from exc
    except ValueError as exc:  # "Protocol not known", or a URL its implementation cannot parse
        message = f"cannot read {url!r} ({_describe(exc)}); use a protocol fsspec knows (s3, gs, file...)"
        raise ArtifactError(message, "unsupported_protocol") from exc
    return fs, path


def _listing(fs: AbstractFileSystem, root: str, name: str, url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{local path relative to the cache entry: (remote path, info)}`` for the object or folder."""
    info = _remote(url, fs.info, root)
    if info.get("type") != "directory":
        return {name: (root, info)}
    prefix = root.rstrip("/") + "/"
    found: dict[str, dict[str, Any]] = _remote(url, fs.find, root, detail=True)
    if not found:
        raise ArtifactError(f"{url} is an empty folder", "artifact_not_found")
    listing = {}
    for path, meta in found.items():
        relative = path.removeprefix(prefix) if path.startswith(prefix) else ""
        parts = PurePosixPath(relative).parts
        if not parts or ".." in parts or relative.startswith("/"):
            raise ArtifactError(
                f"{url}: object {path!r} lies outside the folder; refused", "invalid_artifact"
            )
        listing[f"{name}/{relative}"] = (path, meta)
    return listing


def _fingerprint(url: str, files: dict[str, tuple[str, dict[str, Any]]]) -> str:
    versions = [
        [rel, meta.get("size"), *(str(meta[key]) for key in _VERSION_KEYS if key in meta)]
        for rel, (_, meta) in sorted(files.items())
    ]
    return hashlib.sha256(json.dumps([url, versions]).encode()).hexdigest()[:24]


def _download(
    fs: AbstractFileSystem, files: dict[str, tuple[str, dict[str, Any]]], dest: Path, url: str
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".fetch-"))
    try:
        for relative, (path, _) in files.items():
            local = staging / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            _remote(url, fs.get_file, path, str(local))
        publish_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remote(url: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One call to the store, its failures as ArtifactError (a missing object apart)."""
    try:
        return call(*args, **kwargs)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{url} does not exist", "artifact_not_found") from exc
    except Exception as exc:  # credentials, network, permissions: each backend raises its own types
        raise ArtifactError(f"reading {url} failed ({_describe(exc)})", "artifact_unreadable") from exc


def remove_quietly(url: str) -> None:
    """Remove the file or folder at ``url`` if it is there, as a clean-up: failures are ignored."""
    with contextlib.suppress(ArtifactError):  # nothing could have been written where no filesystem serves
        _remove(*_filesystem(url))


def _remove(fs: AbstractFileSystem, root: str) -> None:
    with contextlib.suppress(Exception):  # best effort: the caller's own error is the one to report
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
