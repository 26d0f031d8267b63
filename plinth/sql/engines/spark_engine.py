"""Spark SQL over the same Parquet/CSV files: the scale-out twin of the DuckDB engine.

Each engine gets its own ``SparkSession.newSession()`` (its own temp views, shared SparkContext), with
one temp view per dataset table. The vetted SQL arrives already written in the ``spark`` dialect by the
safety layer. Spark has no read-only switch; what keeps it safe is the safety layer (one SELECT over the
allow-listed views, no table functions) -- there is no path from a vetted query to a file Spark would
read besides the views.

Partition columns stay strings (``partitionColumnTypeInference`` off), as Athena and the DuckDB engine
type them. Timeout: the query runs under a job group and a timer thread cancels that group, which
interrupts the running tasks; the ``collect`` then raises and becomes :class:`QueryTimeoutError`.

The session defaults to ``local[*]``; set ``spark.master`` (e.g. with ``PYSPARK_SUBMIT_ARGS``) to run on
a cluster instead.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from plinth.sql.engines.results import first_line, result_from_rows
from plinth.sql.types import (
    Dataset,
    QueryFailedError,
    QueryResult,
    QueryTimeoutError,
    TableSource,
    VettedQuery,
)

__all__ = ["SparkEngine", "spark_session"]

_lock = threading.Lock()


def spark_session(master: str = "local[*]") -> Any:
    """The process's SparkSession (created once; no UI, UTC, string partition columns)."""
    from pyspark.sql import SparkSession

    with _lock:
        return (
            SparkSession.builder.master(master)
            .appName("plinth-sql")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )


class SparkEngine:
    """Temp views over the dataset's files in a session of their own."""

    dialect = "spark"

    def __init__(self, dataset: Dataset, *, master: str = "local[*]") -> None:
        self.dataset = dataset
        self.spark = spark_session(master).newSession()
        for name, source in dataset.tables.items():
            try:
                _read(self.spark, source).createOrReplaceTempView(name)
            except Exception as exc:  # AnalysisException and friends: path missing, no files
                raise QueryFailedError(
                    f"table {name!r} ({source.path}): {first_line(exc)}", "source_unreadable"
                ) from exc

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        assert isinstance(query, VettedQuery), "engines run vetted queries only"
        context = self.spark.sparkContext
        group = f"plinth-{uuid.uuid4().hex[:12]}"
        fired = threading.Event()

        def cancel() -> None:
            fired.set()
            context.cancelJobGroup(group)

        timer = threading.Timer(timeout_s, cancel)
        start = time.perf_counter()
        context.setJobGroup(group, "plinth vetted query", interruptOnCancel=True)
        timer.start()
        try:
            frame = self.spark.sql(query.sql)
            raw = frame.collect()
        except Exception as exc:
            if fired.is_set():
                raise QueryTimeoutError(
                    f"the query ran past the {timeout_s:g} s limit and was stopped", "timeout"
                ) from exc
            raise QueryFailedError(first_line(exc), "engine_error") from exc
        finally:
            timer.cancel()
        elapsed = (time.perf_counter() - start) * 1000
        fields = frame.schema.fields
        columns = [f.name for f in fields]
        types = [f.dataType.simpleString() for f in fields]
        return result_from_rows(columns, types, [list(r) for r in raw], query.limit, elapsed, "spark")

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        return {
            name: [(f.name, f.dataType.simpleString()) for f in self.spark.table(name).schema.fields]
            for name in self.dataset.tables
        }

    def close(self) -> None:
        for name in self.dataset.tables:
            self.spark.catalog.dropTempView(name)


def _read(spark: Any, source: TableSource) -> Any:
    path = source.path.replace("s3://", "s3a://", 1)  # Hadoop's S3 connector scheme
    if source.format == "csv":
        reader = spark.read.option("header", True).option("inferSchema", True).option("nullValue", "NULL")
        return reader.option("recursiveFileLookup", not path.endswith(".csv")).csv(path)
    return spark.read.option("mergeSchema", True).parquet(path)
