"""The shared vocabulary of ``plinth.sql``: datasets, vetted queries, results and the errors between them.

Every layer speaks these types, so the safety layer, the engines, the ask loop and the HTTP routes never
reach into each other's modules::

    dataset = Dataset("costs", "cur", {"cur": TableSource("/data/cur", "parquet")})
    vetted = vet(sql, read_dialect="athena", write_dialect="duckdb", tables=dataset.tables)  # or raises
    result = engine.execute(vetted, timeout_s=10)                                            # QueryResult
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AskAttempt",
    "AskResult",
    "DATASET_KINDS",
    "MAIN_TABLES",
    "Dataset",
    "DatasetError",
    "DatasetKind",
    "DatasetNotFoundError",
    "QueryFailedError",
    "QueryResult",
    "QueryTimeoutError",
    "RefusedError",
    "SQLError",
    "TableSource",
    "UnsafeSQLError",
    "VettedQuery",
]

DatasetKind = Literal["cur", "cur2", "focus", "custom"]
DATASET_KINDS: tuple[str, ...] = ("cur", "cur2", "focus", "custom")
# The contract: a CUR dataset's main table is `cur`, CUR 2.0's `cur2`, FOCUS's `focus`.
MAIN_TABLES: dict[str, str] = {"cur": "cur", "cur2": "cur2", "focus": "focus"}


@dataclass(frozen=True, slots=True)
class TableSource:
    """Where one table's rows live: a folder, file or glob (local or ``s3://``) of Parquet or CSV."""

    path: str
    format: Literal["parquet", "csv"] = "parquet"


@dataclass(frozen=True, slots=True)
class Dataset:
    """A tenant's named set of tables. ``kind`` says which catalog (column docs, examples) applies."""

    name: str
    kind: DatasetKind
    tables: dict[str, TableSource]
    description: str = ""

    @property
    def main_table(self) -> str:
        """``${table_name}`` in Athena SQL is filled with this table."""
        main = MAIN_TABLES.get(self.kind)
        return main if main in self.tables else next(iter(self.tables))


@dataclass(frozen=True, slots=True)
class VettedQuery:
    """A query the safety layer passed: exactly one read-only SELECT over allow-listed tables, in the
    engine's dialect, with a forced LIMIT. Engines accept only this type, never a raw string."""

    sql: str  # what the engine runs (write dialect, LIMIT applied)
    source_sql: str  # what the caller gave, after placeholders were filled
    dialect: str  # sqlglot dialect of ``sql``: "duckdb", "spark", "postgres", "trino", ...
    tables: tuple[str, ...]  # the dataset tables it reads
    limit: int


@dataclass(slots=True)
class QueryResult:
    """Rows as JSON-safe values (dates as ISO strings, decimals as floats).

    ``types`` has one entry per column: ``"number"``, ``"string"``, ``"temporal"`` or ``"boolean"``
    (what a chart needs to know); ``truncated`` says the forced LIMIT cut the result.
    """

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    elapsed_ms: float = 0.0
    engine: str = "duckdb"


class SQLError(Exception):
    """Base of every error the SQL layer reports to a user: ``reason`` is the plain-words message and
    ``rule`` a stable code (tests and the API's ``code`` use it)."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule


class UnsafeSQLError(SQLError):
    """The safety layer refused the SQL; it never reached an engine."""


class QueryFailedError(SQLError):
    """The engine ran the vetted query and failed (unknown column, bad cast, ...); the ask loop feeds
    ``reason`` back to the model."""


class QueryTimeoutError(SQLError):
    """The engine was interrupted at the time limit."""


class RefusedError(SQLError):
    """The question itself asks for something the ask loop will not do (modify data, read files)."""


@dataclass(slots=True)
class AskAttempt:
    sql: str
    error: str | None = None
    rule: str | None = None


@dataclass(slots=True)
class AskResult:
    """What ``POST /v1/sql/ask`` returns; ``attempts`` counts generations, ``history`` lists each one."""

    question: str
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    chart: dict[str, Any] | None
    answer: str
    attempts: int
    history: list[AskAttempt] = field(default_factory=list)
    truncated: bool = False
    types: list[str] = field(default_factory=list)


class DatasetError(ValueError):
    """The path, name or layout cannot make a dataset; the message says what to fix and ``param`` which
    input it is about (the HTTP route names it in its 400)."""

    def __init__(self, message: str, param: str = "path") -> None:
        super().__init__(message)
        self.param = param


class DatasetNotFoundError(LookupError):
    """No such dataset for this tenant (another tenant's counts as none)."""
