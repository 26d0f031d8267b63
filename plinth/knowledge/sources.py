"""Source specs -> ``Document``s, plus a report of everything skipped and why.

Two kinds of source:

- :class:`FileSource`: a folder (walked recursively) or a glob of files; each file is one document,
  parsed by ``parsers.py``. A Bedrock-style sidecar ``<file>.metadata.json`` holding
  ``{"metadataAttributes": {...}}`` gives its metadata. ``doc_id`` is the path relative to the source root
  (the folder, or the glob's fixed prefix), with ``/`` separators.
- :class:`RecordSource`: JSONL, CSV or JSON-array files; each record is one document whose text is built
  from ``text_fields`` and whose metadata is ``metadata_fields``. ``doc_id`` is the ``id_field`` value, or
  ``<relative file>:<record index>`` without one.

Contract of :func:`read_source`: it never raises for one bad file or record: it returns it in the skipped
list with a reason (unreadable, unsupported type, empty text, bad sidecar JSON, bad metadata value,
missing or duplicate id, ...). Metadata values are str, int, float, bool or list[str]; anything else is a
skip, not a silent coercion, so a filter never meets a value it cannot compare. ``content_hash`` covers
title, text, metadata and location (canonical JSON), which is what incremental sync compares.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from plinth.knowledge.parsers import SUPPORTED_SUFFIXES, ParseError, UnsupportedType, parse_file
from plinth.knowledge.types import Document, Metadata

SIDECAR_SUFFIX = ".metadata.json"
RECORD_SUFFIXES = (".jsonl", ".csv", ".json")
FieldType = Literal["string", "number", "boolean", "string_list"]


class SkipError(Exception):
    """Raised inside this module for one file or record that must be skipped; the message is the reason."""


@dataclass(slots=True)
class Skipped:
    """A file (or ``file:record``) that produced no document, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class FileSource:
    """A folder (recursive) or a glob; only files whose suffix is in ``include`` are documents."""

    path: str
    include: list[str] = field(default_factory=lambda: list(SUPPORTED_SUFFIXES))


@dataclass(slots=True)
class RecordSource:
    """Record files (.jsonl/.csv/.json array, or a glob of them): one document per record."""

    path: str
    text_fields: list[str]
    metadata_fields: list[str] = field(default_factory=list)
    id_field: str | None = None
    title_field: str | None = None


def read_source(
    spec: FileSource | RecordSource, base_dir: Path | None = None
) -> tuple[list[Document], list[Skipped]]:
    """Every document of ``spec`` (relative paths resolve against ``base_dir``) and every skip."""
    root, paths = _expand(spec.path, base_dir)
    if not paths:
        return [], [Skipped(spec.path, "no files match")]
    documents: list[Document] = []
    skipped: list[Skipped] = []
    reader = _read_file if isinstance(spec, FileSource) else _read_records
    for path in paths:
        reader(spec, root, path, documents, skipped)  # type: ignore[arg-type]
    return documents, skipped


def content_hash(text: str, metadata: Metadata, location: dict[str, Any], title: str | None = None) -> str:
    """sha256 over title, text, metadata and location as canonical JSON (sorted keys, no spaces)."""
    payload = [title, text, metadata, location]
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


def infer_schema(documents: Iterable[Document]) -> dict[str, FieldType]:
    """The metadata field types seen across ``documents``.

    Mixed types resolve to the most general *sensible* type: ``string`` + ``string_list`` is
    ``string_list`` (a string is a one-item list). Any other mix (e.g. number and string) is excluded,
    because no filter operator would mean the same thing on both kinds of value.
    """
    seen: dict[str, set[FieldType]] = {}
    for document in documents:
        for name, value in document.metadata.items():
            seen.setdefault(name, set()).add(_field_type(value))
    schema: dict[str, FieldType] = {}
    for name, types in seen.items():
        if len(types) == 1:
            schema[name] = types.pop()
        elif types == {"string", "string_list"}:
            schema[name] = "string_list"
    return schema


# --- files ------------------------------------------------------------------------------------------


def _read_file(
    spec: FileSource, root: Path, path: Path, documents: list[Document], skipped: list[Skipped]
) -> None:
    rel = _relative(path, root)
    if path.name.endswith(SIDECAR_SUFFIX):  # part of its document, not a document
        if not path.with_name(path.name.removesuffix(SIDECAR_SUFFIX)).exists():
            skipped.append(Skipped(rel, "sidecar without its file"))
        return
    if path.suffix.lower() not in {s.lower() for s in spec.include}:
        skipped.append(Skipped(rel, f"unsupported file type {path.suffix or '(no suffix)'!r}"))
        return
    try:
        documents.append(_file_document(path, rel))
    except (SkipError, UnsupportedType, ParseError) as exc:
        skipped.append(Skipped(rel, str(exc)))
    except Exception as exc:  # a parser library's bug must not stop the other files
        skipped.append(Skipped(rel, f"unexpected error: {exc!r}"))


def _file_document(path: Path, rel: str) -> Document:
    metadata = _sidecar_metadata(path)
    parsed = parse_file(path)
    if not parsed.text.strip():
        raise SkipError("empty text")
    location: dict[str, Any] = {"type": "FILE", "uri": str(path)}
    if parsed.page_offsets is not None:
        location["page_offsets"] = parsed.page_offsets
    title = parsed.title or path.stem
    return Document(
        rel, parsed.text, metadata, location, content_hash(parsed.text, metadata, location, title), title
    )


def _sidecar_metadata(path: Path) -> Metadata:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkipError(f"bad sidecar {sidecar.name}: {exc}") from exc
    attributes = data.get("metadataAttributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        raise SkipError(f"bad sidecar {sidecar.name}: no 'metadataAttributes' object")
    return {str(name): _metadata_value(name, value) for name, value in attributes.items()}


# --- records ----------------------------------------------------------------------------------------


def _read_records(
    spec: RecordSource, root: Path, path: Path, documents: list[Document], skipped: list[Skipped]
) -> None:
    rel = _relative(path, root)
    seen = {d.doc_id for d in documents}
    try:
        records = list(_load_records(path))
    except SkipError as exc:
        skipped.append(Skipped(rel, str(exc)))
        return
    for index, record in records:
        where = f"{rel}:{index}"
        try:
            document = _record_document(spec, record, rel, index, path)
            if document.doc_id in seen:
                raise SkipError(f"duplicate id {document.doc_id!r}")
        except SkipError as exc:
            skipped.append(Skipped(where, str(exc)))
            continue
        seen.add(document.doc_id)
        documents.append(document)


def _load_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(index, record) pairs; a bad JSONL line is yielded as a SkipError record so it gets its own skip."""
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise SkipError(f"unsupported record file type {path.suffix or '(no suffix)'!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkipError(f"unreadable: {exc}") from exc
    if suffix == ".csv":
        yield from enumerate(_csv_row(row) for row in csv.DictReader(text.splitlines()))
    elif suffix == ".jsonl":
        lines = [line for line in text.splitlines() if line.strip()]
        yield from enumerate(_json_or_error(line) for line in lines)
    else:
        data = _json_or_error(text)
        if not isinstance(data, list):
            raise SkipError("JSON file is not an array of records")
        yield from enumerate(data)


def _record_document(spec: RecordSource, record: Any, rel: str, index: int, path: Path) -> Document:
    if isinstance(record, SkipError):
        raise record
    if not isinstance(record, dict):
        raise SkipError("record is not an object")
    key = _record_key(spec, record, rel, index)
    text = "\n".join(t for t in (_as_text(record.get(f)) for f in spec.text_fields) if t)
    if not text.strip():
        raise SkipError("empty text")
    metadata = {f: _metadata_value(f, record[f]) for f in spec.metadata_fields if _present(record.get(f))}
    title = _as_text(record.get(spec.title_field)) or None if spec.title_field else None
    location = {"type": "FILE", "uri": str(path), "record": key}
    return Document(key, text, metadata, location, content_hash(text, metadata, location, title), title)


def _record_key(spec: RecordSource, record: dict[str, Any], rel: str, index: int) -> str:
    if spec.id_field is None:
        return f"{rel}:{index}"
    value = record.get(spec.id_field)
    if not _present(value) or isinstance(value, dict | list):
        raise SkipError(f"missing id field {spec.id_field!r}")
    return str(value)


def _csv_row(row: dict[str | None, Any]) -> dict[str, Any]:
    """CSV cells are strings: empty means absent, numeric strings become numbers."""
    return {k: _number_or_text(v) for k, v in row.items() if k is not None and v not in (None, "")}


def _number_or_text(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _json_or_error(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return SkipError(f"invalid JSON: {exc}")


# --- values -----------------------------------------------------------------------------------------


def _metadata_value(name: str, value: Any) -> Any:
    """Validate one metadata value: str, finite number, bool, or list of str/number (kept as strings)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and value == value and abs(value) != float("inf"):
        return value
    if isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return [str(v) for v in value]
    raise SkipError(f"metadata {name!r}: unsupported value type {type(value).__name__}")


def _field_type(value: Any) -> FieldType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string_list" if isinstance(value, list) else "string"


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if _present(v))
    return "" if value is None else str(value).strip()


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _expand(pattern: str, base_dir: Path | None) -> tuple[Path, list[Path]]:
    """(root, sorted files): a folder is walked recursively; otherwise ``pattern`` is a glob."""
    path = Path(pattern).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir():
        return path, sorted(p for p in path.rglob("*") if p.is_file())
    if not glob.has_magic(str(path)):
        return path.parent, [path] if path.is_file() else []
    root = Path(*_fixed_prefix(path.parts))
    return root, sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())


def _fixed_prefix(parts: tuple[str, ...]) -> list[str]:
    prefix: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix or ["."]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
