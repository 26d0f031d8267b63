"""Turn an adapter source (folder, ``.tar.gz`` or hub id) into local PEFT folders, safely.

Contract: ``resolve_adapter_source(source, cache_dir, name)`` returns ``[(adapter name, folder)]`` and
never loads tensors (``load_adapter`` does). A folder is a PEFT adapter itself or holds
``adapters/<name>/`` (the SageMaker LMI layout); an archive is checked member by member -- no absolute
paths, no ``..``, no links, no devices -- before it is extracted under ``cache_dir`` (once per archive
content); anything else is a Hugging Face hub id, of which only the adapter files are downloaded, into
``cache_dir/hub``. Every failure is an ``AdapterError`` that says what to do.

Example::

    >>> resolve_adapter_source("lmi-model.tar.gz", Path("plinth-data/adapters"))  # doctest: +SKIP
    [('sql', PosixPath('plinth-data/adapters/lmi-model-3f2a.../adapters/sql')), ('chat', ...)]
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from plinth.artifacts import publish_dir
from plinth.engine.lora.adapter import CONFIG_FILE, WEIGHT_FILES, AdapterError
from plinth.engine.weights import first_line, looks_like_path

__all__ = ["resolve_adapter_source"]

HUB_ALLOW_PATTERNS = [CONFIG_FILE, *WEIGHT_FILES]
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def resolve_adapter_source(source: str, cache_dir: Path, name: str | None = None) -> list[tuple[str, Path]]:
    """Local PEFT folders for ``source``, named ``name`` if given (for a multi-adapter source, ``name``
    picks one adapter), else after their folder (``adapters/<name>/``), the archive, or the hub id."""
    path, label = Path(source).expanduser(), name or source
    if path.is_dir():
        return _select(_find_adapters(path, path.name, label), name, source)
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise AdapterError(
                label, f"{source} is a file but not a .tar.gz archive; pass a PEFT folder or archive"
            )
        root = _extract(path, Path(cache_dir), label)
        return _select(_find_adapters(root, _archive_stem(path), label), name, source)
    if is_local_source(source):
        raise AdapterError(label, f"{source} does not exist (expected a PEFT folder, a .tar.gz or a hub id)")
    return [(label, _download(source, Path(cache_dir), label))]


def _find_adapters(root: Path, default_name: str, label: str) -> list[tuple[str, Path]]:
    """A PEFT folder, ``adapters/<name>/`` folders, or either one level down inside a lone wrapper folder."""
    if (root / CONFIG_FILE).is_file():
        return [(default_name, root)]
    adapters = root / "adapters"
    if adapters.is_dir():
        found = [(d.name, d) for d in sorted(adapters.iterdir()) if (d / CONFIG_FILE).is_file()]
        if found:
            return found
    children = list(root.iterdir())
    if len(children) == 1 and children[0].is_dir():
        return _find_adapters(children[0], children[0].name, label)
    raise AdapterError(label, f"no {CONFIG_FILE} in {root}, nor in adapters/<name>/ folders under it")


def _select(found: list[tuple[str, Path]], name: str | None, source: str) -> list[tuple[str, Path]]:
    if name is None:
        return found
    if len(found) == 1:
        return [(name, found[0][1])]
    chosen = [(n, p) for n, p in found if n == name]
    if not chosen:
        raise AdapterError(name, f"{source} holds adapters {[n for n, _ in found]}, none named {name!r}")
    return chosen


def _extract(archive: Path, cache_dir: Path, label: str) -> Path:
    """Extract once per archive content into ``cache_dir``; a half-extracted folder is never visible."""
    dest = cache_dir / f"{_archive_stem(archive)}-{_sha256(archive)[:16]}"
    if dest.is_dir():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive, label)
            tar.extractall(staging, members=members, filter="data")  # the filter is a second guard
        publish_dir(staging, dest)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AdapterError(label, f"cannot extract {archive.name} ({type(exc).__name__}: {exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _check_member(member: tarfile.TarInfo, archive: Path, label: str) -> None:
    """Refuse the whole archive on one unsafe member: adapters never need links or paths outside."""
    parts = PurePosixPath(member.name).parts
    if member.name.startswith(("/", "\\")) or ".." in parts or "\\" in member.name:
        raise AdapterError(
            label, f"{archive.name} member {member.name!r} points outside the archive; refused"
        )
    if not (member.isfile() or member.isdir()):
        raise AdapterError(label, f"{archive.name} member {member.name!r} is a link or special file; refused")


def _download(repo_id: str, cache_dir: Path, label: str) -> Path:
    from huggingface_hub import snapshot_download  # imported lazily: local sources never need it

    try:
        return Path(
            snapshot_download(repo_id, cache_dir=cache_dir / "hub", allow_patterns=HUB_ALLOW_PATTERNS)
        )
    except Exception as exc:  # offline, unknown repo, gated, bad id: all end the same way for the user
        raise AdapterError(
            label,
            f"{repo_id!r} is not a local folder or archive, and downloading it from the Hugging Face hub "
            f"failed ({type(exc).__name__}: {first_line(exc)}); pass a local PEFT folder or .tar.gz, or "
            "allow hub access (unset HF_HUB_OFFLINE, set HF_TOKEN for private repos)",
        ) from exc


def _archive_stem(archive: Path) -> str:
    name = archive.name
    return next((name.removesuffix(s) for s in _ARCHIVE_SUFFIXES if name.endswith(s)), archive.stem)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_local_source(source: str) -> bool:
    """A path (folder or archive) rather than a hub id: what a hub id can never look like."""
    return looks_like_path(source) or source.endswith(_ARCHIVE_SUFFIXES)
