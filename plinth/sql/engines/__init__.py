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

from pathlib import Path
from typing import Literal, Protocol

from plinth.sql.engines.results import column_kind, json_value
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
    kind: str,
    dataset: Dataset,
    *,
    url: str | None = None,
    work_dir: Path | None = None,
    memory_limit: str = "1GB",
    threads: int = 2,
) -> QueryEngine:
    """An engine of ``kind`` over ``dataset``; ``url`` is required for ``sqlalchemy``.

    ``work_dir`` holds the DuckDB engine's small catalog database (views only, no data);
    ``memory_limit`` and ``threads`` bound each DuckDB query (other engines have their own settings).
    """
    if kind == "duckdb":
        from plinth.sql.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(dataset, work_dir=work_dir, memory_limit=memory_limit, threads=threads)
    if kind == "spark":
        from plinth.sql.engines.spark_engine import SparkEngine

        return SparkEngine(dataset)
    if kind == "sqlalchemy":
        if not url:
            raise ValueError("engine 'sqlalchemy' needs a database URL (--url), e.g. postgresql://host/db")
        from plinth.sql.engines.sqlalchemy_engine import SQLAlchemyEngine

        return SQLAlchemyEngine(dataset, url)
    raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")
