"""Any SQLAlchemy database -- PostgreSQL, Trino, Athena (PyAthena), SQLite -- as a query engine.

The dataset's table names are tables (or views) in that database: registering the CUR table of an
Athena database as dataset ``costs`` with table ``cur`` lets the same vetted query run there. The
safety layer writes the SQL in the URL's dialect (:func:`sqlglot_dialect`).

Defence in depth, as far as each backend allows: every query runs in a transaction that is rolled back,
PostgreSQL's is ``READ ONLY`` with a ``statement_timeout``, SQLite's connection is ``query_only``. The
portable timeout is a timer that cancels the running statement through the DBAPI connection
(``cancel()`` in psycopg, ``interrupt()`` in sqlite3); backends with neither rely on their own limits.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from plinth.sql.engines.results import first_line, result_from_rows
from plinth.sql.types import Dataset, QueryFailedError, QueryResult, QueryTimeoutError, VettedQuery

__all__ = ["SQLAlchemyEngine", "sqlglot_dialect"]

# SQLAlchemy backend name -> sqlglot dialect
_DIALECTS = {
    "postgresql": "postgres",
    "redshift": "redshift",
    "trino": "trino",
    "presto": "presto",
    "awsathena": "athena",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "databricks": "databricks",
    "hive": "hive",
    "duckdb": "duckdb",
    "clickhouse": "clickhouse",
}


def sqlglot_dialect(url: str) -> str:
    """The sqlglot dialect for a SQLAlchemy URL (``postgresql+psycopg://…`` -> ``postgres``)."""
    backend = make_url(url).get_backend_name()
    if backend not in _DIALECTS:
        raise ValueError(f"no SQL dialect known for database backend {backend!r} in the URL")
    return _DIALECTS[backend]


class SQLAlchemyEngine:
    """Vetted SQL in the URL's dialect, each query in a rolled-back (read-only where possible) transaction."""

    def __init__(self, dataset: Dataset, url: str) -> None:
        self.dataset = dataset
        self.dialect = sqlglot_dialect(url)
        self._backend = make_url(url).get_backend_name()
        self._engine = sa.create_engine(_with_driver(url), pool_pre_ping=True)

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        assert isinstance(query, VettedQuery), "engines run vetted queries only"
        fired = threading.Event()
        start = time.perf_counter()
        try:
            with self._engine.connect() as conn:
                dbapi = conn.connection.dbapi_connection
                self._lock_down(conn, timeout_s)

                def cancel() -> None:
                    fired.set()
                    _cancel(dbapi)

                timer = threading.Timer(timeout_s, cancel)
                timer.start()
                try:
                    cursor = conn.exec_driver_sql(query.sql)
                    columns = list(cursor.keys())
                    raw = [list(row) for row in cursor.fetchall()]
                    types = _type_names(cursor, raw, len(columns))
                finally:
                    timer.cancel()
                    conn.rollback()
        except sa.exc.DBAPIError as exc:
            if fired.is_set() or _is_timeout(exc):
                raise QueryTimeoutError(
                    f"the query ran past the {timeout_s:g} s limit and was stopped", "timeout"
                ) from exc
            raise QueryFailedError(first_line(exc.orig or exc), "engine_error") from exc
        elapsed = (time.perf_counter() - start) * 1000
        return result_from_rows(columns, types, raw, query.limit, elapsed, f"sqlalchemy:{self._backend}")

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        inspector = sa.inspect(self._engine)
        return {
            name: [(c["name"], str(c["type"])) for c in inspector.get_columns(name)]
            for name in self.dataset.tables
        }

    def close(self) -> None:
        self._engine.dispose()

    def _lock_down(self, conn: sa.Connection, timeout_s: float) -> None:
        if self._backend == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
        elif self._backend == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver Plinth ships), not the absent psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _cancel(dbapi: Any) -> None:
    for method in ("cancel", "interrupt"):
        if callable(getattr(dbapi, method, None)):
            getattr(dbapi, method)()
            return


def _is_timeout(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "statement timeout" in text or "interrupted" in text or "canceling statement" in text


def _type_names(cursor: Any, raw: list[list[Any]], width: int) -> list[str]:
    """DBAPI type codes are driver-specific; the first non-null value's Python type is portable."""
    names = []
    for i in range(width):
        sample = next((row[i] for row in raw if row[i] is not None), None)
        names.append(_python_type_name(sample))
    return names


def _python_type_name(value: Any) -> str:
    import datetime as dt
    import decimal

    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float | decimal.Decimal):
        return "DOUBLE"
    if isinstance(value, dt.date | dt.datetime | dt.time | dt.timedelta):
        return "TIMESTAMP"
    return "VARCHAR"
