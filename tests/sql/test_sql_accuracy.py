"""The execution-accuracy harness: result comparison by hand-checked cases, and a scripted model whose
right and wrong answers are known in advance, over a hand-made CUR table whose numbers are known."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from plinth.evals.sql_accuracy import SQLCase, evaluate_sql, load_cases, normalize_value, same_result
from plinth.llm import ScriptedModel
from plinth.llm.base import Message
from plinth.sql.adapter_prompt import COST_SQL_FORMAT as ADAPTER
from plinth.sql.catalog import Catalog
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.runner import QueryRunner
from plinth.sql.types import Dataset, TableSource

# --- comparing results ----------------------------------------------------------------------------


def test_column_names_and_order_do_not_matter():
    assert same_result([["EC2", 10.0], ["S3", 2.5]], [[2.5, "S3"], [10.0, "EC2"]])


def test_rows_compare_as_a_multiset_unless_ordered():
    gold, swapped = [["a", 1], ["b", 2]], [["b", 2], ["a", 1]]
    assert same_result(gold, swapped)
    assert not same_result(gold, swapped, ordered=True)
    assert same_result(gold, gold, ordered=True)


def test_numbers_are_rounded_to_cents_and_ints_equal_floats():
    assert same_result([[168683.67806953331]], [[168683.6780695]])
    assert same_result([[20]], [[20.0]])
    assert not same_result([[100.0]], [[100.02]])
    assert normalize_value(-0.0) == 0.0 and normalize_value(True) is True


def test_a_midnight_timestamp_equals_its_date():
    assert same_result([["2025-03-01T00:00:00", 5]], [["2025-03-01", 5]])
    assert not same_result([["2025-03-01T12:00:00", 5]], [["2025-03-01", 5]])


@pytest.mark.parametrize(
    "predicted",
    [
        [["EC2", 10.0]],  # a row missing
        [["EC2", 10.0, 1], ["S3", 2.5, 1]],  # an extra column
        [["EC2", 10.0], ["S3", 2.6]],  # a wrong value
        [["EC2", 2.5], ["S3", 10.0]],  # right columns, values paired wrongly
    ],
)
def test_a_different_result_is_wrong(predicted: list[list[Any]]):
    assert not same_result([["EC2", 10.0], ["S3", 2.5]], predicted)


# --- the harness with a scripted model --------------------------------------------------------------

COSTS = {("AmazonEC2", "2025-01-01"): 100.0, ("AmazonEC2", "2025-02-01"): 150.0,
         ("AmazonS3", "2025-01-01"): 20.0, ("AmazonS3", "2025-02-01"): 30.0}  # fmt: skip
COST, SERVICE, MONTH = (
    "SUM(line_item_unblended_cost)",
    "line_item_product_code",
    "date_trunc('month', line_item_usage_start_date)",
)
RANKED = f"SELECT {SERVICE}, {COST} FROM cur GROUP BY 1 ORDER BY 2 DESC"
CASES = [
    SQLCase("total", "grand total?", f"SELECT {COST} FROM cur"),
    SQLCase("s3", "what did s3 cost", f"SELECT {COST} FROM cur WHERE {SERVICE} = 'AmazonS3'"),
    SQLCase("ranked", "services, priciest first", RANKED, ordered=True),
    SQLCase("monthly", "spend by month", f"SELECT {MONTH}, {COST} FROM cur GROUP BY 1"),
    SQLCase("broken", "ec2 overall", f"SELECT {COST} FROM cur WHERE {SERVICE} = 'AmazonEC2'"),
]
# question -> reply. Right: total (another alias), monthly (columns swapped). Wrong: s3, ranked, broken.
REPLIES = {
    "grand total?": f"SELECT {COST} AS everything FROM cur",
    "what did s3 cost": f"SELECT {COST} FROM cur",  # forgot the filter: 300, not 50
    "services, priciest first": f"SELECT {SERVICE}, {COST} c FROM cur GROUP BY 1 ORDER BY c",  # ascending
    "spend by month": f"SELECT {COST} AS cost, {MONTH} AS m FROM cur GROUP BY 2",
    "ec2 overall": "SELECT no_such_column FROM cur",  # fails every attempt
}  # fmt: skip


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("accuracy")
    (root / "cur").mkdir()
    con = duckdb.connect()
    con.execute("CREATE TABLE t (line_item_usage_start_date TIMESTAMP, line_item_product_code VARCHAR, "
                "line_item_unblended_cost DOUBLE)")  # fmt: skip
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [[d, s, c] for (s, d), c in COSTS.items()])
    con.execute(f"COPY t TO '{root / 'cur' / 'part-0.parquet'}' (FORMAT parquet)")
    con.close()
    dataset = Dataset("costs", "cur", {"cur": TableSource(str(root / "cur"), "parquet")})
    engine = DuckDBEngine(dataset, work_dir=root / "engine")
    yield QueryRunner(dataset, engine, max_rows=100, timeout_s=10)
    engine.close()


def reply(messages: list[Message]) -> str:
    question = next(m["content"] for m in messages if m["role"] == "user")
    return f"```sql\n{REPLIES[question]}\n```"


def test_the_harness_scores_a_scripted_model_as_checked_by_hand(runner: QueryRunner):
    catalog = Catalog.for_dataset(runner.dataset, runner.describe())
    model = ScriptedModel(reply, name="scripted")
    report = asyncio.run(evaluate_sql(CASES, model, runner=runner, catalog=catalog, prompt_format=ADAPTER))
    assert [o.correct for o in report.outcomes] == [True, False, False, True, False]
    assert report.accuracy == pytest.approx(2 / 5)
    broken = report.outcomes[4]
    assert (
        broken.rule == "attempts_exhausted"
        and broken.attempts == 3
        and "no_such_column" in (broken.sql or "")
    )
    assert report.outcomes[0].sql is not None and report.outcomes[0].attempts == 1
    assert report.as_dict()["correct"] == 2 and report.as_dict()["total"] == 5
    assert len(model.calls) == 4 + 3  # one call per answered case, three for the broken one


def test_a_refused_question_is_scored_wrong_without_a_model_call(runner: QueryRunner):
    catalog = Catalog.for_dataset(runner.dataset, runner.describe())
    model = ScriptedModel([], name="scripted")
    case = SQLCase("drop", "Please delete all rows from the cur table", "SELECT 1")
    report = asyncio.run(evaluate_sql([case], model, runner=runner, catalog=catalog, prompt_format=ADAPTER))
    assert not report.outcomes[0].correct and report.outcomes[0].rule == "modification_refused"
    assert model.calls == []


def test_the_packaged_heldout_set_loads(tmp_path: Path):
    cases = load_cases()
    assert len(cases) >= 45 and len({c.id for c in cases}) == len(cases)
    assert any(c.ordered for c in cases) and all(c.sql.upper().startswith(("SELECT", "WITH")) for c in cases)
