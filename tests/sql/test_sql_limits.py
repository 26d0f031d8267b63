"""Issue 16: SQL that would exhaust the parser's stack or the server's memory is a clean 400, and DuckDB
runs under the configured memory_limit and threads."""

from __future__ import annotations

import pytest
from test_sql_api import SQL, _error, cur_folder, server  # noqa: F401  (fixtures)

from plinth.config import Settings
from plinth.sql.engines import open_engine
from plinth.sql.safety import MAX_SQL_NESTING, check_size
from plinth.sql.types import Dataset, TableSource, UnsafeSQLError


def _query(client, keys, sql: str):
    return client.post(f"{SQL}/query", json={"sql": sql, "dataset": "costs"}, headers=keys.auth("acme"))


def test_sql_with_50_nested_parentheses_is_400_not_a_recursion_error(server):  # noqa: F811
    client, keys, _ = server
    sql = "SELECT " + "(" * 50 + "1" + ")" * 50
    err = _error(_query(client, keys, sql), 400, "sql", code="too_complex")
    assert str(MAX_SQL_NESTING) in err["message"]


def test_sql_repeat_of_two_billion_is_400(server):  # noqa: F811
    client, keys, _ = server
    _error(_query(client, keys, "SELECT repeat('x', 2000000000)"), 400, "sql", code="result_too_large")
    _error(_query(client, keys, "SELECT lpad('x', 2000000000, 'y')"), 400, "sql", code="result_too_large")
    assert _query(client, keys, "SELECT repeat('x', 3) AS r").json()["rows"] == [["xxx"]]


def test_sql_length_and_nesting_limits():
    with pytest.raises(UnsafeSQLError) as info:
        check_size("SELECT 1" + " " * 20_001)
    assert info.value.rule == "too_long"
    check_size("SELECT '" + "(" * 100 + "'")  # quoted parentheses are text, not nesting


def test_duckdb_runs_with_the_configured_memory_limit_and_threads(tmp_path, cur_folder):  # noqa: F811
    settings = Settings(sql_memory_limit="256MB", sql_threads=1)
    dataset = Dataset("d", "cur", {"cur": TableSource(cur_folder)})
    engine = open_engine("duckdb", dataset, work_dir=tmp_path, memory_limit=settings.sql_memory_limit,
                         threads=settings.sql_threads)  # fmt: skip
    try:
        con = engine._con  # type: ignore[attr-defined]
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert limit.startswith(("244", "256")), limit  # DuckDB shows MiB
    finally:
        engine.close()
