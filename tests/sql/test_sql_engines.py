"""The engines: DuckDB's lock-down as a layer of its own (SQL that never went through vet), timeouts that
interrupt, and the same vetted Athena query on DuckDB, Spark, SQLite and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import duckdb
import pytest

from plinth.sql.engines import open_engine
from plinth.sql.engines.duckdb_engine import DuckDBEngine, view_sql
from plinth.sql.runner import QueryRunner
from plinth.sql.types import (
    Dataset,
    QueryFailedError,
    QueryTimeoutError,
    TableSource,
    VettedQuery,
)

# Four line items; the expected totals below are worked out by hand from these rows.
ROWS = [
    ("AmazonEC2", "Usage", 10.0, "2024", "7"),
    ("AmazonEC2", "Tax", 1.0, "2024", "7"),
    ("AmazonS3", "Usage", 2.5, "2024", "7"),
    ("AmazonS3", "Usage", 4.0, "2024", "8"),
]
EXPECTED = [["AmazonEC2", 10.0], ["AmazonS3", 6.5]]
ATHENA_SQL = """
SELECT line_item_product_code, SUM(line_item_unblended_cost) AS cost
FROM ${table_name}
WHERE line_item_line_item_type NOT IN ('Tax', 'Refund', 'Credit') AND year = '2024'
GROUP BY 1 ORDER BY 1;
"""
COLUMNS = "line_item_product_code, line_item_line_item_type, line_item_unblended_cost, year, month"


def raw(sql: str, limit: int = 100) -> VettedQuery:
    """SQL wrapped as if vetted -- to test the engine's own layer, bypassing the safety layer."""
    return VettedQuery(sql, sql, "duckdb", ("cur",), limit)


@pytest.fixture(scope="module")
def cur_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cur") / "cur"
    folder.mkdir()
    values = ", ".join(f"('{p}', '{t}', {c}::DOUBLE, '{y}', '{m}')" for p, t, c, y, m in ROWS)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM (VALUES {values}) AS t({COLUMNS})) TO '{folder}/p.parquet' (FORMAT parquet)"
    )
    return folder


@pytest.fixture
def duck(cur_dir: Path, tmp_path: Path) -> DuckDBEngine:
    engine = DuckDBEngine(Dataset("d", "cur", {"cur": TableSource(str(cur_dir))}), work_dir=tmp_path / "w")
    yield engine
    engine.close()


# --- DuckDB ---------------------------------------------------------------------------------------


def test_duckdb_runs_athena_sql(duck: DuckDBEngine) -> None:
    _, result = QueryRunner(duck.dataset, duck).run(ATHENA_SQL, "athena")
    assert result.rows == EXPECTED
    assert result.columns == ["line_item_product_code", "cost"]
    assert result.types == ["string", "number"]
    assert duck.describe()["cur"][2] == ("line_item_unblended_cost", "DOUBLE")


def test_duckdb_reports_truncation(duck: DuckDBEngine) -> None:
    _, result = QueryRunner(duck.dataset, duck, max_rows=3).run("SELECT * FROM cur")
    assert (len(result.rows), result.truncated) == (3, True)
    _, result = QueryRunner(duck.dataset, duck, max_rows=4).run("SELECT * FROM cur")
    assert (len(result.rows), result.truncated) == (4, False)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "COPY (SELECT 1) TO 'OUT/leak.csv'",
        "ATTACH 'OUT/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW cur",
    ],
)
def test_duckdb_lockdown_holds_without_the_safety_layer(duck: DuckDBEngine, tmp_path: Path, sql: str) -> None:
    with pytest.raises(QueryFailedError):
        duck.execute(raw(sql.replace("OUT", str(tmp_path))), timeout_s=10)
    assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "other.duckdb").exists()
    assert duck.execute(raw("SELECT COUNT(*) FROM cur"), timeout_s=10).rows == [[4]]  # still intact


def test_duckdb_timeout_interrupts_a_slow_query(duck: DuckDBEngine) -> None:
    start = time.perf_counter()
    with pytest.raises(QueryTimeoutError) as info:
        duck.execute(raw("SELECT COUNT(*) FROM range(1000000000000) a WHERE a.range % 7 = 3"), timeout_s=0.5)
    assert info.value.rule == "timeout"
    assert time.perf_counter() - start < 10
    assert duck.execute(raw("SELECT 1"), timeout_s=5).rows == [[1]]  # the engine survives


def test_duckdb_engine_error_is_a_query_failure(duck: DuckDBEngine) -> None:
    with pytest.raises(QueryFailedError) as info:
        QueryRunner(duck.dataset, duck).run("SELECT no_such_column FROM cur")
    assert "no_such_column" in info.value.reason and info.value.rule == "engine_error"


def test_s3_views_go_through_httpfs_paths() -> None:
    sql = view_sql("cur", TableSource("s3://bucket/cur/", "parquet"))
    assert "read_parquet('s3://bucket/cur/**/*.parquet'" in sql and sql.startswith(
        'CREATE OR REPLACE VIEW "cur"'
    )
    assert "read_csv('s3://b/focus.csv'" in view_sql("focus", TableSource("s3://b/focus.csv", "csv"))


# --- Spark ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark_local():
    from plinth.sql.engines.spark_engine import spark_session

    session = spark_session("local[1]")
    yield session
    session.stop()


def test_spark_runs_the_same_vetted_query(spark_local, cur_dir: Path) -> None:
    from plinth.sql.engines.spark_engine import SparkEngine

    engine = SparkEngine(Dataset("d", "cur", {"cur": TableSource(str(cur_dir))}), master="local[1]")
    try:
        vetted, result = QueryRunner(engine.dataset, engine).run(ATHENA_SQL, "athena")
        assert vetted.dialect == "spark"
        assert result.rows == EXPECTED and result.types == ["string", "number"]
        with pytest.raises(QueryTimeoutError):
            engine.execute(
                VettedQuery("SELECT SUM(id % 7) FROM range(0, 1000000000000)", "", "spark", (), 1),
                timeout_s=1.0,
            )
    finally:
        engine.close()


# --- SQLAlchemy: SQLite and PostgreSQL --------------------------------------------------------------


def _sqlalchemy_dataset() -> Dataset:
    return Dataset("d", "cur", {"cur": TableSource("cur")})  # the table lives in the database


def test_sqlalchemy_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE cur ({COLUMNS})")
        con.executemany("INSERT INTO cur VALUES (?, ?, ?, ?, ?)", ROWS)
    engine = open_engine("sqlalchemy", _sqlalchemy_dataset(), url=f"sqlite:///{path}")
    try:
        vetted, result = QueryRunner(engine.dataset, engine).run(ATHENA_SQL, "athena")
        assert vetted.dialect == "sqlite" and result.rows == EXPECTED
        with pytest.raises(QueryFailedError):  # query_only: a write fails even unvetted
            engine.execute(raw("DELETE FROM cur"), timeout_s=5)
        slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT MAX(n) FROM c"
        with pytest.raises(QueryTimeoutError):
            engine.execute(raw(slow), timeout_s=0.5)
    finally:
        engine.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM cur").fetchone() == (4,)


def test_sqlalchemy_postgres(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS cur")
        con.execute(
            "CREATE TABLE cur (line_item_product_code text, line_item_line_item_type text, "
            "line_item_unblended_cost double precision, year text, month text)"
        )
        for row in ROWS:
            con.execute("INSERT INTO cur VALUES (%s, %s, %s, %s, %s)", row)
    engine = open_engine("sqlalchemy", _sqlalchemy_dataset(), url=pg_dsn)
    try:
        vetted, result = QueryRunner(engine.dataset, engine).run(ATHENA_SQL, "athena")
        assert vetted.dialect == "postgres" and result.rows == EXPECTED
        with pytest.raises(QueryFailedError) as info:  # a READ ONLY transaction, even unvetted
            engine.execute(raw("DELETE FROM cur"), timeout_s=5)
        assert "read-only" in info.value.reason
        with pytest.raises(QueryTimeoutError):
            engine.execute(raw("SELECT pg_sleep(5)"), timeout_s=0.5)
        assert engine.describe()["cur"][0][0] == "line_item_product_code"
    finally:
        engine.close()
