"""The safety layer, one layer at a time, then a malicious corpus that must never reach an engine."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from plinth.sql import safety
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.runner import QueryRunner
from plinth.sql.safety import (
    check_cross_joins,
    check_functions,
    check_statement_kind,
    check_tables,
    force_limit,
    parse_single,
    vet,
)
from plinth.sql.types import Dataset, QueryResult, TableSource, UnsafeSQLError, VettedQuery

TABLES = ["cur", "focus"]


def refused(fn, *args) -> str:
    with pytest.raises(UnsafeSQLError) as info:
        fn(*args)
    assert info.value.reason, "a refusal must say why"
    return info.value.rule


def tree(sql: str, dialect: str = "duckdb") -> exp.Expr:
    return sqlglot.parse_one(sql, read=dialect)


# --- layer 1: one statement ---------------------------------------------------------------------------


def test_parse_single_accepts_one_statement_and_trailing_empties() -> None:
    assert isinstance(parse_single("SELECT 1;", "duckdb"), exp.Select)
    assert isinstance(parse_single("SELECT 1; -- done", "athena"), exp.Select)  # as library files end


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("", "empty"),
        (" ; ", "empty"),
        ("SELECT 1; SELECT 2", "multiple_statements"),
        ("SELECT 1 -- hide\n; DROP TABLE cur", "multiple_statements"),
        ("SELECT (", "parse_error"),
        ("SELEC 1 FROM cur", "parse_error"),
    ],
)
def test_parse_single_refuses(sql: str, rule: str) -> None:
    assert refused(parse_single, sql, "duckdb") == rule


# --- layer 2: statement kind --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM cur", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "SELECT 1 UNION ALL SELECT 2"],
)
def test_statement_kind_allows_queries(sql: str) -> None:
    check_statement_kind(tree(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM cur",
        "UPDATE cur SET x = 1",
        "INSERT INTO cur VALUES (1)",
        "DROP TABLE cur",
        "CREATE TABLE t AS SELECT 1",
        "SELECT * INTO t FROM cur",
        "WITH d AS (DELETE FROM cur RETURNING *) SELECT * FROM d",
        "SELECT * FROM cur FOR UPDATE",
        "DESCRIBE cur",
    ],
)
def test_statement_kind_refuses_anything_but_reads(sql: str) -> None:
    dialect = "postgres" if "FOR UPDATE" in sql or "RETURNING" in sql else "duckdb"
    assert refused(check_statement_kind, tree(sql, dialect)) == "statement_kind"


# --- layer 3: tables ----------------------------------------------------------------------------------


def test_tables_allow_dataset_tables_and_ctes_in_scope() -> None:
    assert check_tables(tree("SELECT * FROM CUR JOIN focus ON TRUE"), TABLES) == {"cur", "focus"}
    assert check_tables(tree("WITH b AS (SELECT 1), a AS (SELECT * FROM b) SELECT * FROM a"), TABLES) == set()


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT * FROM secrets", "table_not_allowed"),
        ("SELECT * FROM information_schema.tables", "table_not_allowed"),
        ("SELECT * FROM main.cur", "table_not_allowed"),
        ("SELECT * FROM 'data.csv'", "table_not_allowed"),
        # a CTE is only visible after its definition: this `b` is the catalog's, not the CTE
        ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "table_not_allowed"),
        ("SELECT * FROM duckdb_settings()", "table_function"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table_function"),
    ],
)
def test_tables_refused(sql: str, rule: str) -> None:
    assert refused(check_tables, tree(sql), TABLES) == rule


# --- layer 4: functions -------------------------------------------------------------------------------


def test_functions_allow_typed_and_listed_anonymous() -> None:
    check_functions(tree("SELECT SUM(x), date_trunc('month', d), split_part(a, ':', 1) FROM cur", "athena"))


@pytest.mark.parametrize(
    "sql", ["SELECT getenv('HOME')", "SELECT current_user", "SELECT version()", "SELECT my_udf(1)"]
)
def test_functions_refused(sql: str) -> None:
    assert refused(check_functions, tree(sql)) == "function_not_allowed"


def test_every_io_looking_sqlglot_function_is_classified() -> None:
    """A sqlglot upgrade that adds a typed function named like I/O must be reviewed, not silently run."""
    looks_io = re.compile(
        r"read|file|env|glob|http|url|load|install|attach|copy|secret|write|system|"
        r"exec|shell|sleep|table|session|user|version|stage|path|query|setting"
    )
    reviewed_pure = {"ParseUrl", "JSONBPathExists", "JSONBDeleteAtPath", "Uuid", "JSONTable", "XMLTable"}
    funcs = [c for c in vars(exp).values() if isinstance(c, type) and issubclass(c, exp.Func)]
    unclassified = [
        c.__name__
        for c in funcs
        if looks_io.search(c.__name__.lower())
        and c not in safety.DENIED_FUNCTIONS
        and c.__name__ not in reviewed_pure
        and c.__name__ not in ("Func", "AggFunc", "Anonymous", "AnonymousAggFunc")
    ]
    assert unclassified == []


# --- layer 5: cross joins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM cur a JOIN cur b ON a.id = b.id",
        "SELECT * FROM cur a, cur b WHERE a.id = b.id",
        "WITH t AS (SELECT SUM(c) AS s FROM cur) SELECT cur.c / t.s FROM cur CROSS JOIN t",
        "SELECT * FROM cur CROSS JOIN UNNEST([1, 2]) AS u(x)",
    ],
)
def test_cross_join_allows_conditioned_or_aggregated(sql: str) -> None:
    check_cross_joins(tree(sql), TABLES)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM cur CROSS JOIN focus",
        "SELECT * FROM cur a, cur b",
        "SELECT * FROM cur a JOIN cur b ON TRUE",
        "WITH x AS (SELECT * FROM cur) SELECT * FROM x a, x b",
        "SELECT * FROM (SELECT * FROM cur) a CROSS JOIN cur b CROSS JOIN cur c",
    ],
)
def test_cross_join_refused(sql: str) -> None:
    assert refused(check_cross_joins, tree(sql), TABLES) == "cross_join"


# --- layer 6: forced LIMIT ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM cur", 11),  # added: cap + 1, so the engine can tell the cap cut the rows
        ("SELECT * FROM cur LIMIT 5", 5),  # smaller: kept
        ("SELECT * FROM cur LIMIT 100000", 11),  # larger: capped
        ("SELECT 1 UNION ALL SELECT 2", 11),  # a set operation as a whole
    ],
)
def test_force_limit(sql: str, expected: int) -> None:
    limited = force_limit(tree(sql), 10)
    assert int(limited.args["limit"].expression.this) == expected


def test_vet_writes_the_engine_dialect_without_comments() -> None:
    vetted = vet(
        "SELECT date_format(d, '%Y-%m') AS m /* note */ FROM cur",
        read_dialect="athena",
        write_dialect="duckdb",
        tables=TABLES,
        max_rows=10,
    )
    assert vetted.sql == "SELECT STRFTIME(d, '%Y-%m') AS m FROM cur LIMIT 11"
    assert (vetted.tables, vetted.limit, vetted.dialect) == (("cur",), 10, "duckdb")


# --- the malicious corpus -----------------------------------------------------------------------------

CANARY = "CANARY_PATH"

CORPUS: list[tuple[str, str]] = [
    ("SELECT * FROM cur; DROP TABLE cur", "multiple_statements"),
    ("SELECT 1; ATTACH 'x.db' AS x", "multiple_statements"),
    ("SELECT 1 --\n; COPY cur TO 'CANARY_PATH'", "multiple_statements"),
    ("/* harmless */ DELETE FROM cur", "statement_kind"),
    ("DROP TABLE cur", "statement_kind"),
    ("CREATE TABLE stolen AS SELECT * FROM cur", "statement_kind"),
    ("INSERT INTO cur SELECT * FROM cur", "statement_kind"),
    ("UPDATE cur SET line_item_unblended_cost = 0", "statement_kind"),
    ("COPY cur TO 'CANARY_PATH'", "statement_kind"),
    ("COPY (SELECT 1) TO 'CANARY_PATH' (FORMAT csv)", "statement_kind"),
    ("ATTACH 'CANARY_PATH' AS c", "statement_kind"),
    ("DETACH c", "statement_kind"),
    ("INSTALL httpfs", "statement_kind"),
    ("LOAD httpfs", "statement_kind"),
    ("PRAGMA database_list", "statement_kind"),
    ("SET enable_external_access = true", "statement_kind"),
    ("RESET lock_configuration", "statement_kind"),
    ("CALL pragma_version()", "statement_kind"),
    ("EXPORT DATABASE 'CANARY_PATH'", "parse_error"),
    ("SELECT * INTO stolen FROM cur", "statement_kind"),
    ("SELECT * FROM read_csv('/etc/passwd')", "table_function"),
    ("SELECT * FROM read_csv_auto('CANARY_PATH')", "table_function"),
    ("SELECT * FROM read_text('CANARY_PATH')", "table_function"),
    ("SELECT * FROM read_parquet('/data/*.parquet')", "table_function"),
    ("SELECT * FROM glob('/etc/*')", "table_function"),
    ("SELECT * FROM query_table('cur')", "table_function"),
    ("SELECT * FROM query('SELECT 1')", "table_function"),
    ("SELECT * FROM duckdb_settings()", "table_function"),
    ("SELECT * FROM duckdb_secrets()", "table_function"),
    ("SELECT * FROM range(100000000000)", "table_function"),
    ("SELECT * FROM cur WHERE x IN (SELECT path FROM read_text('CANARY_PATH'))", "table_function"),
    ("SELECT * FROM 'CANARY_PATH'", "table_not_allowed"),
    ("SELECT * FROM information_schema.tables", "table_not_allowed"),
    ("SELECT * FROM duckdb_tables", "table_not_allowed"),
    ("SELECT * FROM sqlite_master", "table_not_allowed"),
    ("SELECT * FROM pg_catalog.pg_user", "table_not_allowed"),
    ("SELECT getenv('AWS_SECRET_ACCESS_KEY')", "function_not_allowed"),
    ("SELECT current_setting('enable_external_access')", "function_not_allowed"),
    ("SELECT read_blob('CANARY_PATH')", "function_not_allowed"),
    ("SELECT sleep_ms(100000)", "function_not_allowed"),
    ("SELECT COUNT(*) FROM cur a CROSS JOIN cur b CROSS JOIN cur c", "cross_join"),
    ("SELECT COUNT(*) FROM cur a, cur b, cur c", "cross_join"),
]


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.csv"
    path.write_text("secret\n42\n")
    return path


@pytest.mark.parametrize(("sql", "rule"), CORPUS)
def test_malicious_sql_is_refused_with_its_rule(sql: str, rule: str, canary: Path) -> None:
    with pytest.raises(UnsafeSQLError) as info:
        vet(sql.replace(CANARY, str(canary)), read_dialect="duckdb", write_dialect="duckdb", tables=TABLES)
    assert info.value.rule == rule, info.value.reason


class SpyEngine:
    """Records every call; a refused query must leave it untouched."""

    dialect = "duckdb"

    def __init__(self, inner: DuckDBEngine) -> None:
        self.inner = inner
        self.executed: list[VettedQuery] = []

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        self.executed.append(query)
        return self.inner.execute(query, timeout_s=timeout_s)

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def test_no_malicious_query_reaches_the_engine(tmp_path: Path, canary: Path) -> None:
    data = tmp_path / "cur"
    data.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1.5 AS line_item_unblended_cost) TO '{data}/part.parquet' (FORMAT parquet)")
    dataset = Dataset("d", "cur", {"cur": TableSource(str(data))})
    spy = SpyEngine(DuckDBEngine(dataset, work_dir=tmp_path / "work"))
    runner = QueryRunner(dataset, spy)
    before = (canary.read_bytes(), canary.stat().st_mtime_ns)
    try:
        for sql, rule in CORPUS:
            with pytest.raises(UnsafeSQLError) as info:
                runner.run(sql.replace(CANARY, str(canary)), "duckdb")
            assert info.value.rule == rule
        assert spy.executed == []
        _, result = runner.run("SELECT SUM(line_item_unblended_cost) AS total FROM cur")  # the spy works
        assert result.rows == [[1.5]] and len(spy.executed) == 1
    finally:
        spy.close()
    assert (canary.read_bytes(), canary.stat().st_mtime_ns) == before
    assert sorted(p.name for p in canary.parent.iterdir()) == sorted(["canary.csv", "cur", "work"])
