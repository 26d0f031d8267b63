"""Every query of the AWS CUR Query Library, as Athena SQL, through the runner ``plinth sql query`` uses,
over synthetic CUR data from the generator. The lists below name each query that does not return rows
and why; the test fails when a query outside them fails, and when one inside them starts working, so the
lists stay true."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from plinth.samples import generate
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.runner import QueryRunner
from plinth.sql.types import Dataset, SQLError, TableSource

LIBRARY = Path(__file__).resolve().parents[3] / "shared" / "data" / "cost" / "cur_query_library"

# Upstream bugs: these fail on any engine, Athena included (path -> why).
BROKEN_UPSTREAM: dict[str, str] = {
    "Compute/ec2runninghours.sql": "ORDER BY usage_quantity, a column no SELECT defines",
    "Container/ecs_eks.sql": "typo: ine_item_unblended_cost",
    "Cost_Optimization/amazon-workspaces-auto-stop.sql": "'$ {table_name}' (a space) is no placeholder",
    "End_User_Computing/amazon-workspaces-auto-stop.sql": "'$ {table_name}' (a space) is no placeholder",
    "End_User_Computing/workspaces_autostop_wrid.sql": "'$ {table_name}' (a space) is no placeholder",
    "Storage/ebs_gp2_to_gp3.sql": "'${table}' is no documented placeholder",
    "Cost_Optimization/aurora_io_optimized.sql": "a subquery with no FROM before its alias (syntax error)",
    "Database/rds-w-id.sql": "'AS alias' inside GROUP BY (syntax error)",
    "Global/spendaccount.sql": "'line_item_unblended_costELSE': a missing space breaks CASE",
    "Security_Identity_&_Compliance/shield.sql": "${date_filter} placed after AND conditions with no AND",
    "Container/ecs-split-cost-allocation.sql": "compares the numeric split_line_item_* columns with '' "
    "(written for string-typed columns; the CUR Parquet schema types them double)",
}

# They run, but cannot return rows by design of the query (path -> why).
NO_ROWS: dict[str, str] = {
    "Database/auroraglobaldb.sql": "filters on user-supplied ${primary_cluster_id}-style parameters",
}

# Fixed calendar dates in the SQL: run over data generated for that window (path -> first month).
FIXED_DATES: dict[str, date] = {
    "Storage/s3costusagetypegroupwrid.sql": date(2020, 7, 1),
    "Storage/s3costusagetypewrid.sql": date(2020, 7, 1),
    "Global/premiumsupport.sql": date(2020, 7, 1),
    "Cost_Optimization/ec2-instance-cost-by-pricing-term.sql": date(2022, 11, 1),
}

# Upstream hard-codes its own table names in 8 files; a user would edit them, so does the test.
_HARD_CODED_TABLE = re.compile(r'("?customer_cur_data"?\.)?"?\b(customer_all|cur_table|mybillingreport)\b"?')


def all_queries() -> list[str]:
    assert LIBRARY.is_dir(), f"the shared data is missing: {LIBRARY}"
    return sorted(str(p.relative_to(LIBRARY)) for p in LIBRARY.rglob("*.sql"))


@pytest.fixture(scope="module")
def runners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, QueryRunner]:
    """A runner over recent data, and one per fixed-date window the library hard-codes."""
    root = tmp_path_factory.mktemp("library")
    made: dict[str, QueryRunner] = {}
    # "recent": the current month (as an export has it, so "3 days ago" exists) and the 3 before it
    windows = {
        "recent": _month_after(date.today()),
        **{d.isoformat(): _month_after(d, 3) for d in FIXED_DATES.values()},
    }
    for key, start in windows.items():
        path = generate("cur", root / key, rows=20_000, months=4, seed=7, start=start)
        dataset = Dataset(f"lib-{key}", "cur", {"cur": TableSource(str(path))})
        made[key] = QueryRunner(dataset, DuckDBEngine(dataset, work_dir=root / "work"), timeout_s=60)
    yield made
    for runner in made.values():
        runner.engine.close()


def _month_after(day: date, months: int = 1) -> date:
    """The first day of the month ``months`` after ``day``'s (the generator's exclusive end)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def run_library_query(runners: dict[str, QueryRunner], rel: str) -> tuple[str, int]:
    """``("ok", rows)`` or ``("error", 0)`` with the reason printed for the failure listing."""
    sql = _HARD_CODED_TABLE.sub("cur", (LIBRARY / rel).read_text())
    window = FIXED_DATES.get(rel)
    runner = runners["recent" if window is None else window.isoformat()]
    try:
        _, result = runner.run(sql, "athena")
    except SQLError as exc:
        print(f"FAILED {rel}: [{exc.rule}] {exc.reason}")
        return "error", 0
    return "ok", len(result.rows)


def test_the_library_is_complete() -> None:
    queries = all_queries()
    assert len(queries) == 111
    listed = set(BROKEN_UPSTREAM) | set(NO_ROWS) | set(FIXED_DATES)
    assert listed <= set(queries), listed - set(queries)


def test_every_library_query(runners: dict[str, QueryRunner]) -> None:
    unexpected_fail, unexpected_pass, no_rows = [], [], []
    for rel in all_queries():
        status, rows = run_library_query(runners, rel)
        if rel in BROKEN_UPSTREAM:
            if status == "ok":
                unexpected_pass.append(rel)
        elif status == "error":
            unexpected_fail.append(rel)
        elif rel in NO_ROWS:
            if rows:
                unexpected_pass.append(rel)
        elif rows == 0:
            no_rows.append(rel)
    assert unexpected_fail == [], f"should run, failed (reasons printed above): {unexpected_fail}"
    assert no_rows == [], f"should return rows, returned none: {no_rows}"
    assert unexpected_pass == [], f"listed as not working, yet they work now: {unexpected_pass}"
