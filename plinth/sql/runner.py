"""One path from SQL text to rows: fill placeholders -> vet -> execute. Everything that runs SQL uses it.

The ask loop calls :meth:`QueryRunner.run` for each generated attempt, ``POST /v1/sql/query`` and
``plinth sql query`` for what the user typed, the CUR Query Library test for all 111 files::

    runner = QueryRunner(dataset, open_engine("duckdb", dataset, work_dir=...), max_rows=1000)
    vetted, result = runner.run("SELECT ... FROM ${table_name} WHERE ${date_filter}", "athena")

Errors are the shared ones: :class:`UnsafeSQLError` (refused, never reached the engine),
:class:`QueryFailedError`, :class:`QueryTimeoutError`. The SQL is written for the engine's dialect by
the safety layer, so a query in Athena SQL runs on DuckDB, Spark or PostgreSQL alike.
"""

from __future__ import annotations

import threading
from datetime import date

from plinth.sql.dialects import date_filter, fill_placeholders, normalize_dialect, rewrite_for
from plinth.sql.engines import QueryEngine
from plinth.sql.safety import vet
from plinth.sql.types import Dataset, QueryResult, VettedQuery

__all__ = ["QueryRunner"]


class QueryRunner:
    """Runs SQL against one dataset on one engine, under the safety layer, a row cap and a timeout."""

    def __init__(
        self,
        dataset: Dataset,
        engine: QueryEngine,
        *,
        max_rows: int = 1000,
        timeout_s: float = 30.0,
        today: date | None = None,
    ) -> None:
        """``today`` pins the default ``${date_filter}`` window (tests and reproducible reports)."""
        assert max_rows > 0 and timeout_s > 0
        self.dataset = dataset
        self.engine = engine
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self.today = today
        self._columns: dict[str, list[tuple[str, str]]] | None = None
        self._lock = threading.Lock()

    def run(self, sql: str, dialect: str = "duckdb") -> tuple[VettedQuery, QueryResult]:
        """Fill, vet (written in the engine's dialect) and execute ``sql`` written in ``dialect``."""
        vetted = self.vet(sql, dialect)
        return vetted, self.engine.execute(vetted, timeout_s=self.timeout_s)

    def vet(self, sql: str, dialect: str = "duckdb") -> VettedQuery:
        """What :meth:`run` would execute, without executing it (raises UnsafeSQLError)."""
        read = normalize_dialect(dialect)
        filled = fill_placeholders(sql, self.dataset, date_sql=self.default_date_filter())
        return vet(
            filled,
            read_dialect=read,
            write_dialect=self.engine.dialect,
            tables=list(self.dataset.tables),
            max_rows=self.max_rows,
            rewrite=rewrite_for(read) if read != self.engine.dialect else None,
        )

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        """The engine's tables and columns, asked once (the catalog and the date filter use them)."""
        with self._lock:
            if self._columns is None:
                self._columns = self.engine.describe()
            return self._columns

    def default_date_filter(self) -> str:
        """What ``${date_filter}`` becomes: partitions when the main table has them, else its timestamp."""
        columns = [name for name, _ in self.describe().get(self.dataset.main_table, [])]
        return date_filter(self.dataset, columns=columns, today=self.today)
