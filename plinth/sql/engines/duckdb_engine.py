"""DuckDB over a dataset's Parquet/CSV files, opened read-only and locked down.

How the tables stay visible while the engine cannot touch anything else: at open, a tiny catalog
database (views only, no data) is written to ``work_dir``, one view per table over the dataset's files::

    CREATE VIEW "cur" AS SELECT * FROM read_parquet('/data/cur/**/*.parquet', hive_partitioning = true,
        hive_types_autocast = false, union_by_name = true)

then reopened ``read_only=True`` and locked: ``allowed_directories`` = the dataset's folders,
``enable_external_access = false`` (no other file, no network, no extension install/load, no ATTACH or
COPY), extension autoloading off, and ``lock_configuration = true`` so no query can undo any of it.
This is the engine-level layer: it holds even for SQL that never went through the safety layer (a test
runs ``read_csv('/etc/passwd')`` straight at it).

Hive partition columns (``year``, ``month``) are kept as strings, as Athena types them, so the CUR
Query Library's ``year = '2024'`` compares like for like. CSV reads treat ``NULL`` and empty fields as
null (the FOCUS sample writes nulls as the literal ``NULL``).

Timeout: a timer thread calls ``interrupt()`` on the query's own cursor; DuckDB aborts the running
pipeline and the call raises, which becomes :class:`QueryTimeoutError`. Each execute uses its own
cursor, so concurrent requests on one engine do not block each other.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

from plinth.sql.engines.results import first_line, result_from_rows
from plinth.sql.types import (
    Dataset,
    QueryFailedError,
    QueryResult,
    QueryTimeoutError,
    TableSource,
    VettedQuery,
)

__all__ = ["DuckDBEngine", "allowed_roots", "build_catalog", "view_sql"]


class DuckDBEngine:
    """A locked-down read-only DuckDB whose only tables are the dataset's (as views)."""

    dialect = "duckdb"

    def __init__(
        self, dataset: Dataset, *, work_dir: Path | None = None, memory_limit: str = "1GB", threads: int = 2
    ) -> None:
        self.dataset = dataset
        directory = Path(work_dir) if work_dir is not None else Path.cwd() / ".plinth-sql"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"catalog-{uuid.uuid4().hex[:12]}.duckdb"  # one per engine: no races
        build_catalog(dataset, self.path)
        self._con = _open_locked(self.path, dataset, memory_limit, threads)

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        assert isinstance(query, VettedQuery), "engines run vetted queries only"
        cursor = self._con.cursor()
        timer = threading.Timer(timeout_s, cursor.interrupt)
        start = time.perf_counter()
        timer.start()
        try:
            cursor.execute(query.sql)
            raw = cursor.fetchall()
        except duckdb.InterruptException as exc:
            raise QueryTimeoutError(
                f"the query ran past the {timeout_s:g} s limit and was stopped", "timeout"
            ) from exc
        except duckdb.Error as exc:
            raise QueryFailedError(first_line(exc), "engine_error") from exc
        finally:
            timer.cancel()
        elapsed = (time.perf_counter() - start) * 1000
        description = cursor.description or []
        cursor.close()
        columns = [d[0] for d in description]
        types = [str(d[1]) for d in description]
        return result_from_rows(columns, types, raw, query.limit, elapsed, "duckdb")

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        cursor = self._con.cursor()
        try:
            return {
                name: [(row[0], str(row[1])) for row in cursor.execute(f'DESCRIBE "{name}"').fetchall()]
                for name in self.dataset.tables
            }
        finally:
            cursor.close()

    def close(self) -> None:
        self._con.close()
        self.path.unlink(missing_ok=True)
        Path(f"{self.path}.wal").unlink(missing_ok=True)


def build_catalog(dataset: Dataset, path: Path) -> None:
    """Write a DuckDB file holding one view per table. Binding each view reads the files' schemas, so
    an unreadable or malformed source fails here, with the table named."""
    con = duckdb.connect(str(path), config={"autoinstall_known_extensions": False})
    try:
        if any(s.path.startswith("s3://") for s in dataset.tables.values()):
            con.execute("LOAD httpfs")
        for name, source in dataset.tables.items():
            try:
                con.execute(view_sql(name, source))
            except duckdb.Error as exc:
                raise QueryFailedError(
                    f"table {name!r} ({source.path}): {first_line(exc)}", "source_unreadable"
                ) from exc
    finally:
        con.close()


def view_sql(name: str, source: TableSource) -> str:
    """``CREATE VIEW`` over ``source``: a folder means every file of its format below it."""
    pattern = source.path
    if not any(ch in pattern for ch in "*?[") and not pattern.endswith((".parquet", ".csv", ".csv.gz")):
        pattern = pattern.rstrip("/") + ("/**/*.parquet" if source.format == "parquet" else "/**/*.csv")
    literal = _quote_literal(pattern)
    if source.format == "parquet":
        reader = (
            f"read_parquet({literal}, hive_partitioning = true, hive_types_autocast = false, "
            "union_by_name = true)"
        )
    else:
        reader = (
            f"read_csv({literal}, header = true, nullstr = ['NULL', ''], union_by_name = true, "
            "hive_partitioning = false)"
        )
    return f"CREATE OR REPLACE VIEW {_quote_ident(name)} AS SELECT * FROM {reader}"


def allowed_roots(dataset: Dataset) -> list[str]:
    """The folders the engine may read: each table's folder (a file's or glob's parent)."""
    roots = []
    for source in dataset.tables.values():
        path = source.path
        if path.startswith("s3://"):
            roots.append(path.split("*")[0].rsplit("/", 1)[0] + "/")
            continue
        base = Path(path.split("*")[0])
        folder = base if base.is_dir() else base.parent
        roots.append(str(folder.resolve()) + "/")
    return sorted(set(roots))


def _open_locked(path: Path, dataset: Dataset, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": memory_limit,
        "threads": threads,
    }
    con = duckdb.connect(str(path), read_only=True, config=config)
    if any(s.path.startswith("s3://") for s in dataset.tables.values()):
        con.execute("LOAD httpfs")  # before the lock: loading is external access
    con.execute("SET allowed_directories = ?", [allowed_roots(dataset)])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
