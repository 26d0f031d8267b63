"""Query engines: run a :class:`VettedQuery` over a dataset and return JSON-safe rows.

One protocol, three implementations, chosen by name::

    engine = open_engine("duckdb", dataset, work_dir=Path("plinth-data/sql/local/costs"))
    result = engine.execute(vet(...), timeout_s=10)     # QueryResult, or QueryFailedError/QueryTimeoutError
    engine.describe()                       # {"cur": [("line_item_unblended_cost", "DOUBLE"), ...]}
    engine.close()

- ``duckdb`` (the default): the dataset's files through views in a read-only, locked-down database.
- ``spark``: a local (or configured) SparkSession with temp views over the same files.
- ``sqlalchemy``: any SQLAlchemy URL (PostgreSQL, Trino, Athena, SQLite); the dataset's table names are
  tables in that database.

Engines accept only a ``VettedQuery`` -- a raw string cannot reach one -- and each owns its timeout.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from pathlib import Path
from typing import Any, Literal, Protocol

from plinth.sql.types import Dataset, QueryResult, VettedQuery

__all__ = ["ENGINE_KINDS", "EngineKind", "QueryEngine", "column_kind", "json_value", "open_engine"]

EngineKind = Literal["duckdb", "spark", "sqlalchemy"]
ENGINE_KINDS: tuple[str, ...] = ("duckdb", "spark", "sqlalchemy")


class QueryEngine(Protocol):
    """Where vetted SQL runs. ``dialect`` is the sqlglot dialect the safety layer must write."""

    dialect: str

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        """Run ``query``; raise QueryFailedError (engine error) or QueryTimeoutError (interrupted)."""
        ...

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        """Each table's columns and engine types (the catalog of a custom dataset)."""
        ...

    def close(self) -> None:
        """Release the connection or session."""
        ...


def open_engine(
    kind: str, dataset: Dataset, *, url: str | None = None, work_dir: Path | None = None
) -> QueryEngine:
    """An engine of ``kind`` over ``dataset``; ``url`` is required for ``sqlalchemy``.

    ``work_dir`` holds the DuckDB engine's small catalog database (views only, no data).
    """
    if kind == "duckdb":
        from plinth.sql.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(dataset, work_dir=work_dir)
    if kind == "spark":
        from plinth.sql.engines.spark_engine import SparkEngine

        return SparkEngine(dataset)
    if kind == "sqlalchemy":
        if not url:
            raise ValueError("engine 'sqlalchemy' needs a database URL (--url), e.g. postgresql://host/db")
        from plinth.sql.engines.sqlalchemy_engine import SQLAlchemyEngine

        return SQLAlchemyEngine(dataset, url)
    raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")


def column_kind(type_name: str) -> str:
    """An engine type name as what a chart needs: ``number``, ``temporal``, ``boolean`` or ``string``."""
    name = type_name.upper()
    if name.startswith("BOOL"):
        return "boolean"
    if any(t in name for t in ("DATE", "TIME", "INTERVAL")):
        return "temporal"
    numeric = ("INT", "DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL", "LONG", "SHORT", "BYTE", "NUMBER")
    if any(t in name for t in numeric) and not name.startswith(("STRUCT", "MAP", "ARRAY", "LIST")):
        return "number"
    return "string"


def json_value(value: Any) -> Any:
    """A value as JSON can carry it: decimals as floats, times as ISO strings, NaN/inf as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    if hasattr(value, "asDict"):  # a Spark Row (struct column)
        return json_value(value.asDict(recursive=True))
    return str(value)


def result_from_rows(
    columns: list[str], type_names: list[str], raw: list[Any], limit: int, elapsed_ms: float, engine: str
) -> QueryResult:
    """Rows fetched with the vetted ``LIMIT limit + 1``: more than ``limit`` means the cap cut them."""
    rows = [[json_value(v) for v in row] for row in raw[:limit]]
    kinds = [column_kind(t) for t in type_names]
    return QueryResult(columns, kinds, rows, len(raw) > limit, elapsed_ms, engine)


def first_line(exc: BaseException) -> str:
    """An engine error's message without its stack or context dump (what the user and model see)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
