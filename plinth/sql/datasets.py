"""From a path a user gives to a :class:`Dataset`: find the tables, their format, and the dataset's kind.

Layouts understood (local, or ``s3://`` with an explicit kind)::

    costs.parquet | export.csv                one table
    cur/  (files, maybe year=/month= folders)  one table: hive partition folders are not tables
    exports/cur/  exports/focus/              one table per subfolder, named after it

A one-table dataset's table is named after its kind's main table (``cur``, ``cur2``, ``focus``), so the
CUR Query Library's ``${table_name}`` and the catalogs work unchanged; a custom table keeps its
folder's or file's name. The kind is inferred from the columns: FOCUS has ``BilledCost`` and
``ChargePeriodStart``; CUR 2.0 has the ``product`` map or account *names*; legacy CUR has the flattened
``line_item_*`` columns and neither. Explicit ``kind=`` or ``tables=`` override inference.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq

from plinth.sql.types import DATASET_KINDS, MAIN_TABLES, Dataset, DatasetError, DatasetKind, TableSource

__all__ = ["DatasetError", "infer_kind", "resolve_dataset", "table_columns"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")  # a table: a plain SQL identifier
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".gz": "csv"}


def resolve_dataset(
    name: str,
    path: str,
    *,
    kind: str | None = None,
    tables: Mapping[str, str | TableSource] | None = None,
    description: str = "",
) -> Dataset:
    """A Dataset for ``path`` (or for explicit ``tables``: table name -> path), validated on disk."""
    if not _DATASET_NAME.match(name):
        message = f"invalid dataset name {name!r}: use up to 64 letters, digits, '_', '.', '-'"
        raise DatasetError(message, param="name")
    if kind is not None and kind not in DATASET_KINDS:
        message = f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}"
        raise DatasetError(message, param="kind")
    found = _explicit(tables) if tables else _discover(path)
    if not found:
        raise DatasetError(f"{path}: no Parquet or CSV files found")
    resolved: DatasetKind = kind or infer_kind(found)  # type: ignore[assignment]
    if len(found) == 1 and resolved in MAIN_TABLES and not tables:
        found = {MAIN_TABLES[resolved]: next(iter(found.values()))}
    return Dataset(name, resolved, found, description)


def infer_kind(tables: Mapping[str, TableSource]) -> str:
    """``cur``, ``cur2`` or ``focus`` from the first table whose columns say so, else ``custom``."""
    for source in tables.values():
        if source.path.startswith("s3://"):
            raise DatasetError(f"{source.path}: the kind of an s3:// dataset cannot be inferred offline; "
                               "pass --kind cur|cur2|focus|custom", param="kind")  # fmt: skip
        columns = {c.lower() for c in table_columns(source)}
        if {"billedcost", "chargeperiodstart"} <= columns:
            return "focus"
        if "line_item_unblended_cost" in columns:
            cur2 = "product" in columns or "bill_payer_account_name" in columns
            return "cur2" if cur2 else "cur"
    return "custom"


def table_columns(source: TableSource) -> list[str]:
    """Column names of the table's first file (a Parquet footer or a CSV header; nothing else read)."""
    first = _first_file(Path(source.path), source.format)
    try:
        if source.format == "parquet":
            return list(pq.read_schema(first).names)
        with first.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pyarrow raises ArrowInvalid(ValueError)
        raise DatasetError(f"{first}: cannot read it as {source.format}: {exc}") from exc


def _explicit(tables: Mapping[str, str | TableSource]) -> dict[str, TableSource]:
    found = {}
    for table, spec in tables.items():
        _check_name(table, "table")
        if isinstance(spec, TableSource):
            found[table] = _checked(spec)
        else:
            found[table] = _single(spec)
    return found


def _discover(path: str) -> dict[str, TableSource]:
    if path.startswith("s3://"):
        fmt = "csv" if path.rstrip("/").endswith((".csv", ".csv.gz")) else "parquet"
        return {_table_name(path.rstrip("/").rsplit("/", 1)[-1]): TableSource(path, fmt)}  # type: ignore[arg-type]
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if root.is_file() or _data_files(root, recursive=False):
        return {_table_name(root.name): _single(str(root))}
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if subfolders and all("=" in p.name for p in subfolders):  # hive partitions of one table
        return {_table_name(root.name): _single(str(root))}
    tables = {_table_name(p.name): _single(str(p)) for p in subfolders if _data_files(p, recursive=True)}
    return tables


def _single(path: str) -> TableSource:
    """One table at ``path`` (file, folder or glob); its format from its files."""
    if path.startswith("s3://"):
        return TableSource(path, "csv" if ".csv" in path else "parquet")
    target = Path(path).expanduser().absolute()
    if not target.exists():
        raise DatasetError(f"{path}: no such file or folder")
    files = [target] if target.is_file() else _data_files(target, recursive=True)
    formats = {_FORMATS.get(f.suffix.lower()) for f in files} - {None}
    if not formats:
        raise DatasetError(f"{path}: no Parquet or CSV files found")
    if len(formats) > 1:
        raise DatasetError(f"{path}: mixes Parquet and CSV files; register each format as its own table")
    return _checked(TableSource(str(target), formats.pop()))  # type: ignore[arg-type]


def _checked(source: TableSource) -> TableSource:
    if not source.path.startswith("s3://"):
        table_columns(source)  # readable, and really of that format
    return source


def _data_files(folder: Path, *, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in _FORMATS and _visible(p, folder)
    )


def _visible(path: Path, root: Path) -> bool:
    """Spark and Hive write ``_SUCCESS``/``.crc`` files; hidden and underscore names are not data."""
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _first_file(path: Path, fmt: str) -> Path:
    if path.is_file():
        return path
    suffixes = (".parquet",) if fmt == "parquet" else (".csv", ".gz")
    for candidate in _data_files(path, recursive=True):
        if candidate.suffix.lower() in suffixes:
            return candidate
    raise DatasetError(f"{path}: no {fmt} files found")


def _table_name(raw: str) -> str:
    """A folder or file name as a SQL identifier (``cost-export.csv`` -> ``cost_export``)."""
    stem = raw.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem).lower() or "data"
    return name if not name[0].isdigit() else f"t_{name}"


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise DatasetError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, starting with a letter"
        )
