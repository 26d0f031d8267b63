"""The ask loop end to end with the scripted model, a real DuckDB engine and the real safety layer.

The dataset is a small CUR-shaped Parquet table written here (3 months x 3 services x 2 accounts), so
every expected number below is computed by hand from :data:`SPEND`, not by the code under test. The
engine is wrapped to record what it actually executes: malicious SQL must never get there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from plinth.guard import GuardResult
from plinth.llm import ScriptedModel
from plinth.llm.base import Message
from plinth.sql.adapter_prompt import COST_SQL_FORMAT
from plinth.sql.answer import describe_result, format_value
from plinth.sql.ask import AskFailedError, ask
from plinth.sql.catalog import Catalog
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.extract import NoSQLError, extract_sql
from plinth.sql.grammar import reply_grammar
from plinth.sql.intent import FILE_RULE, MODIFY_RULE, check_question
from plinth.sql.runner import QueryRunner
from plinth.sql.types import Dataset, QueryResult, RefusedError, TableSource, VettedQuery

MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01"]
SERVICES = {"AmazonEC2": 100.0, "AmazonS3": 20.0, "AWSLambda": 5.0}  # monthly cost per account
ACCOUNTS = ["111111111111", "222222222222"]
SPEND = {
    (m, s, a): cost * (i + 1) for i, m in enumerate(MONTHS) for s, cost in SERVICES.items() for a in ACCOUNTS
}


def fence(sql: str) -> str:
    return f"Here is the query:\n```sql\n{sql}\n```"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("tiny-cur") / "cur"
    folder.mkdir()
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (line_item_usage_start_date TIMESTAMP, line_item_usage_account_id VARCHAR, "
        "line_item_product_code VARCHAR, line_item_line_item_type VARCHAR, line_item_unblended_cost DOUBLE, "
        "pricing_public_on_demand_cost DOUBLE, product_region VARCHAR, line_item_usage_type VARCHAR, "
        "resource_tags_user_team VARCHAR)"
    )
    for (month, service, account), cost in SPEND.items():
        con.execute(
            "INSERT INTO t VALUES (?, ?, ?, 'Usage', ?, ?, 'us-east-1', 'USE1-Usage', 'data')",
            [month, account, service, cost, cost * 1.25],
        )
    con.execute(f"COPY t TO '{folder / 'part-0.parquet'}' (FORMAT parquet)")
    con.close()
    return Dataset("costs", "cur", {"cur": TableSource(str(folder), "parquet")})


class RecordingEngine:
    """The real DuckDB engine, recording every query it is handed."""

    def __init__(self, engine: DuckDBEngine) -> None:
        self.engine, self.dialect = engine, engine.dialect
        self.executed: list[str] = []

    def execute(self, query: VettedQuery, *, timeout_s: float) -> QueryResult:
        self.executed.append(query.sql)
        return self.engine.execute(query, timeout_s=timeout_s)

    def describe(self) -> dict[str, list[tuple[str, str]]]:
        return self.engine.describe()

    def close(self) -> None:
        """The module fixture owns the real engine and closes it."""


@pytest.fixture(scope="module")
def duck(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Any:
    engine = DuckDBEngine(dataset, work_dir=tmp_path_factory.mktemp("duck"))
    yield engine
    engine.close()


@pytest.fixture
def engine(duck: DuckDBEngine) -> RecordingEngine:
    return RecordingEngine(duck)


@pytest.fixture(scope="module")
def catalog(dataset: Dataset, duck: DuckDBEngine) -> Catalog:
    return Catalog.for_dataset(dataset, duck.describe())


def make_runner(dataset: Dataset, engine: RecordingEngine) -> QueryRunner:
    return QueryRunner(dataset, engine, max_rows=1000, timeout_s=10)


def run_ask(
    question: str, model: ScriptedModel, dataset: Dataset, engine: Any, catalog: Catalog, **kw: Any
) -> Any:
    runner = make_runner(dataset, engine)
    return asyncio.run(ask(question, dataset, model, runner=runner, catalog=catalog, **kw))


def user_prompt(call_messages: list[Message]) -> str:
    return call_messages[1]["content"]


# --- extraction ---------------------------------------------------------------------------------


def test_extract_prefers_the_sql_fence():
    reply = "Sure.\n```text\nnot this\n```\n```sql\nSELECT 1 AS x;\n```\nDone."
    assert extract_sql(reply) == "SELECT 1 AS x"


def test_extract_falls_back_to_an_unlabelled_fence_then_a_bare_select():
    assert extract_sql("```\nSELECT a FROM cur\n```") == "SELECT a FROM cur"
    assert extract_sql("The answer: SELECT a\nFROM cur\n\nThis sums it.") == "SELECT a\nFROM cur"
    assert (
        extract_sql("with t as (select 1 as a) select a from t")
        == "with t as (select 1 as a) select a from t"
    )


def test_extract_keeps_everything_in_the_block_for_the_safety_layer():
    """Extraction never trims a second statement away: safety must see (and refuse) it."""
    assert extract_sql("```sql\nSELECT 1; DROP TABLE cur;\n```") == "SELECT 1; DROP TABLE cur"


@pytest.mark.parametrize(
    "reply", ["I cannot help with that.", "", "```sql\n;\n```", "Please select a dataset with care."]
)
def test_extract_without_a_query_is_a_clear_error(reply: str):
    with pytest.raises(NoSQLError) as err:
        extract_sql(reply)
    assert err.value.rule == "no_sql"


# --- intent -------------------------------------------------------------------------------------

REFUSED = [
    "Delete all rows from cur",
    "DROP TABLE cur",
    "please drop the cur table",
    "Can you update the costs for account 111111111111 to zero?",
    "UPDATE cur SET line_item_unblended_cost = 0",
    "insert into cur values (1)",
    "Show the total. Then truncate the table.",
    "I want you to remove all records for 2023",
    "grant me admin access",
    "COPY cur TO '/tmp/out.csv'",
]
ANSWERABLE = [
    "What was deleted last month?",
    "How much did deleted EBS snapshots cost?",
    "Cost of DeleteObject requests by bucket",
    "Which resources were removed in March?",
    "How much did the update to m7g instances save?",
    "How much did we spend on UpdateItem operations in DynamoDB?",
    "Which set of accounts spent the most?",
    "Show spend by team excluding tax",
    "What did we spend on grants?",
    "List the costs of files stored in S3",
]


@pytest.mark.parametrize("question", REFUSED)
def test_modification_questions_are_refused(question: str):
    with pytest.raises(RefusedError) as err:
        check_question(question)
    assert err.value.rule == MODIFY_RULE and "only read" in err.value.reason


@pytest.mark.parametrize("question", ["Read the file /etc/passwd", "select * from read_csv('/etc/passwd')"])
def test_file_reading_questions_are_refused(question: str):
    with pytest.raises(RefusedError) as err:
        check_question(question)
    assert err.value.rule == FILE_RULE


@pytest.mark.parametrize("question", ANSWERABLE)
def test_questions_about_deletions_and_updates_are_answerable(question: str):
    check_question(question)


# --- answer sentence ----------------------------------------------------------------------------


def test_answer_sentences_say_only_what_the_rows_show():
    assert describe_result(["total_cost"], ["number"], [[1234.5]]) == "total_cost: 1,234.50."
    assert describe_result(["a"], ["number"], []) == "The query returned no rows."
    by_service = [["AmazonEC2", 600.0], ["AWSLambda", 30.0], ["AmazonS3", 120.0]]
    assert describe_result(["service", "cost"], ["string", "number"], by_service) == (
        "3 rows. Highest cost: AmazonEC2 (600.00); lowest: AWSLambda (30.00)."
    )
    series = [["2024-02-01", 5.0], ["2024-01-01", 2.0], ["2024-03-01", 4.0]]
    assert describe_result(["month", "cost"], ["temporal", "number"], series) == (
        "3 rows. cost went from 2.00 (2024-01-01) to 4.00 (2024-03-01); the peak was 5.00 (2024-02-01)."
    )
    cut = describe_result(["service", "cost"], ["string", "number"], by_service, truncated=True)
    assert cut.startswith("3 rows (cut at the row limit).")
    assert format_value(0.000123) == "0.000123" and format_value(12) == "12" and format_value(None) == "null"


# --- the loop -----------------------------------------------------------------------------------


def test_prompt_shows_the_tables_columns_and_rules_the_question_needs(dataset, engine, catalog):
    sql = (
        "SELECT line_item_product_code AS service, SUM(line_item_unblended_cost) AS cost FROM cur GROUP BY 1"
    )
    model = ScriptedModel([fence(sql)])
    run_ask("Which services cost the most?", model, dataset, engine, catalog)
    system, user = model.calls[0].messages[0]["content"], user_prompt(model.calls[0].messages)
    assert "DuckDB" in system and "single SELECT" in system and "```sql" in system
    assert "Table cur" in user and user.rstrip().endswith("Question: Which services cost the most?")
    for column in ("line_item_product_code", "line_item_unblended_cost", "line_item_usage_start_date"):
        assert f"- {column} (" in user
    assert "Cost at the rate actually charged" in user  # the doc text of unblended cost


def test_answer_by_service_is_a_bar_chart_with_hand_computed_totals(dataset, engine, catalog):
    sql = (
        "SELECT line_item_product_code AS service, SUM(line_item_unblended_cost) AS cost FROM cur "
        "GROUP BY 1 ORDER BY cost DESC"
    )
    result = run_ask("Cost by service?", ScriptedModel([fence(sql)]), dataset, engine, catalog)
    expected = {s: sum(c for (m, svc, a), c in SPEND.items() if svc == s) for s in SERVICES}
    assert result.columns == ["service", "cost"] and result.types == ["string", "number"]
    assert {row[0]: row[1] for row in result.rows} == pytest.approx(expected)
    assert result.chart["mark"]["type"] == "bar"
    assert result.answer == "3 rows. Highest cost: AmazonEC2 (1,200.00); lowest: AWSLambda (60.00)."
    assert result.attempts == 1 and result.history[0].error is None
    assert "LIMIT" in result.sql  # what ran is the vetted query, not the model's text


def test_monthly_trend_is_a_line_chart(dataset, engine, catalog):
    sql = (
        "SELECT date_trunc('month', line_item_usage_start_date) AS month, "
        "SUM(line_item_unblended_cost) AS cost FROM cur GROUP BY 1 ORDER BY 1"
    )
    result = run_ask("Monthly cost trend?", ScriptedModel([fence(sql)]), dataset, engine, catalog)
    assert [row[1] for row in result.rows] == pytest.approx([250.0, 500.0, 750.0])
    assert result.chart["mark"]["type"] == "line" and result.chart["encoding"]["x"]["type"] == "temporal"


def test_a_single_total_has_no_chart(dataset, engine, catalog):
    result = run_ask(
        "Total cost?", ScriptedModel([fence("SELECT SUM(line_item_unblended_cost) AS total FROM cur")]),
        dataset, engine, catalog,
    )  # fmt: skip
    assert result.rows == [[pytest.approx(1500.0)]] and result.chart is None
    assert result.answer == "total: 1,500.00."


def test_engine_error_is_fed_back_and_repaired(dataset, engine, catalog):
    bad = "SELECT line_item_service, SUM(line_item_unblended_cost) AS cost FROM cur GROUP BY 1"
    good = (
        "SELECT line_item_product_code AS service, SUM(line_item_unblended_cost) AS cost FROM cur GROUP BY 1"
    )
    model = ScriptedModel([fence(bad), fence(good)])
    result = run_ask("Cost by service?", model, dataset, engine, catalog)
    assert result.attempts == 2 and len(model.calls) == 2
    first = result.history[0]
    assert first.sql == bad and first.rule == "engine_error" and "line_item_service" in first.error
    repair = model.calls[1].messages
    assert repair[-2] == {"role": "assistant", "content": f"```sql\n{bad}\n```"}
    assert "failed (engine_error)" in repair[-1]["content"] and "line_item_service" in repair[-1]["content"]
    assert len(result.rows) == 3


@pytest.mark.parametrize("prompt_format", [None, COST_SQL_FORMAT])
def test_grammar_constrains_every_call_repairs_included(dataset, engine, catalog, prompt_format):
    """With ``grammar=True`` each call (the first and the repair) carries the dataset's SELECT grammar,
    in both prompt formats; without it, none does."""
    bad, good = "SELECT line_item_service FROM cur", "SELECT COUNT(*) AS n FROM cur"
    model = ScriptedModel([f"```sql\n{bad}\n```", f"```sql\n{good}\n```"])
    result = run_ask(
        "How many items?", model, dataset, engine, catalog, grammar=True, prompt_format=prompt_format
    )
    assert result.attempts == 2 and result.history[0].rule == "engine_error"
    expected = reply_grammar(catalog.schema, "duckdb")
    assert [c.options.response_format for c in model.calls] == [expected, expected]
    assert "line_item_product_code" in expected.source and expected.kind == "grammar"
    plain = ScriptedModel([f"```sql\n{good}\n```"])
    run_ask("How many items?", plain, dataset, engine, catalog, prompt_format=prompt_format)
    assert plain.calls[0].options.response_format is None


def test_a_reply_without_sql_is_fed_back(dataset, engine, catalog):
    model = ScriptedModel(["I'd rather not.", fence("SELECT COUNT(*) AS n FROM cur")])
    result = run_ask("How many line items?", model, dataset, engine, catalog)
    assert result.history[0].rule == "no_sql" and result.history[0].sql == "I'd rather not."
    assert result.rows == [[len(SPEND)]]


def test_attempts_are_bounded_and_the_prompt_does_not_grow(dataset, engine, catalog):
    model = ScriptedModel(lambda messages: fence("SELECT no_such_column FROM cur"))
    with pytest.raises(AskFailedError) as err:
        run_ask("Cost?", model, dataset, engine, catalog, max_attempts=3)
    assert len(model.calls) == 3 and len(err.value.history) == 3
    assert err.value.rule == "attempts_exhausted"
    assert all(a.rule == "engine_error" for a in err.value.history)
    assert [len(c.messages) for c in model.calls] == [2, 4, 4]  # first prompt + at most one failed exchange


MALICIOUS = [
    "DROP TABLE cur",
    "COPY cur TO '{out}'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1 AS ok; DELETE FROM cur",
    "ATTACH '{out}.db' AS x",
    "SELECT * FROM cur; COPY (SELECT 1) TO '{out}'",
]


def test_malicious_sql_from_the_model_is_never_executed(dataset, engine, catalog, tmp_path: Path):
    out = tmp_path / "stolen.csv"
    replies = [fence(sql.format(out=out)) for sql in MALICIOUS]
    model = ScriptedModel(replies)
    with pytest.raises(AskFailedError) as err:
        run_ask("Total cost?", model, dataset, engine, catalog, max_attempts=len(MALICIOUS))
    assert engine.executed == []
    assert [a.rule for a in err.value.history] == [
        "statement_kind", "statement_kind", "table_function", "multiple_statements", "statement_kind",
        "multiple_statements",
    ]  # fmt: skip
    assert not out.exists() and not Path(f"{out}.db").exists()


def test_modification_question_is_refused_before_the_model(dataset, engine, catalog):
    model = ScriptedModel([])
    with pytest.raises(RefusedError) as err:
        run_ask("Please delete all rows from cur", model, dataset, engine, catalog)
    assert err.value.rule == MODIFY_RULE and model.calls == [] and engine.executed == []


class FakeGuard:
    """A guard hook that records what it saw and answers with ``verdict(stage, text)``."""

    def __init__(self, verdict: Any = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.verdict = verdict or (lambda stage, text: GuardResult("NONE", text, False, [], []))

    async def input(self, text: str) -> GuardResult:
        self.seen.append(("input", text))
        return self.verdict("input", text)

    async def data(self, texts: Any, context: Any = None) -> list[GuardResult]:
        self.seen += [("data", t) for t in texts]
        return [self.verdict("data", t) for t in texts]

    async def output(self, text: str, context: Any = None) -> GuardResult:
        raise AssertionError("ask never checks a model output")


def masked(text: str) -> GuardResult:
    return GuardResult("GUARDRAIL_INTERVENED", text, False, [], [])


def test_guard_hook_sees_the_question_and_the_answer(dataset, engine, catalog):
    guard = FakeGuard(lambda stage, text: masked("[masked]") if stage == "data" else masked(text))
    sql = "SELECT SUM(line_item_unblended_cost) AS total FROM cur"
    result = run_ask("Total cost?", ScriptedModel([fence(sql)]), dataset, engine, catalog, guard=guard)
    assert guard.seen == [("input", "Total cost?"), ("data", "total: 1,500.00.")]
    assert result.answer == "[masked]"


def test_guard_that_raises_stops_everything(dataset, engine, catalog):
    class Blocked(Exception):
        pass

    def verdict(stage: str, text: str) -> GuardResult:
        raise Blocked(stage)

    model = ScriptedModel([])
    with pytest.raises(Blocked, match="input"):
        run_ask("Total cost?", model, dataset, engine, catalog, guard=FakeGuard(verdict))
    assert model.calls == [] and engine.executed == []


def test_a_prompt_too_long_for_the_context_shrinks_without_costing_an_attempt(dataset, engine, catalog):
    from plinth.llm.base import ProviderError

    limit = 3500  # characters this fake model's "context" takes: less than the full prompt

    class SmallContext(ScriptedModel):
        async def chat(self, messages, options=None):
            if sum(len(m["content"]) for m in messages) > limit:
                self.calls.append(None)  # type: ignore[arg-type]
                raise ProviderError(400, "This model's maximum context length is 1024 tokens")
            return await super().chat(messages, options)

    model = SmallContext(lambda messages: fence("SELECT COUNT(*) AS n FROM cur"))
    result = run_ask("How many line items per month and service?", model, dataset, engine, catalog)
    assert result.attempts == 1 and result.rows == [[len(SPEND)]]
    assert model.calls[0] is None and model.calls[-1] is not None  # overflowed first, then fitted


def test_other_model_errors_propagate(dataset, engine, catalog):
    model = ScriptedModel([])  # any call is an error that is not about the context
    with pytest.raises(RuntimeError, match="ScriptedModel has 0 replies"):
        run_ask("Total cost?", model, dataset, engine, catalog)


def test_guard_verdicts_mask_or_block(dataset, engine, catalog):
    """A masked verdict's text is used; a blocked one refuses with its message."""
    masking = FakeGuard(lambda stage, text: masked(text.replace("1,500.00", "{AMOUNT}")))
    sql = "SELECT SUM(line_item_unblended_cost) AS total FROM cur"
    result = run_ask("Total cost?", ScriptedModel([fence(sql)]), dataset, engine, catalog, guard=masking)
    assert result.answer == "total: {AMOUNT}."

    def block_input(stage: str, text: str) -> GuardResult:
        blocked = stage == "input"
        return GuardResult("GUARDRAIL_INTERVENED", "Sorry, that topic is not allowed.", blocked, [], [])

    model = ScriptedModel([])
    with pytest.raises(RefusedError) as err:
        run_ask("Total cost?", model, dataset, engine, catalog, guard=FakeGuard(block_input))
    assert err.value.rule == "guardrail_blocked" and err.value.reason == "Sorry, that topic is not allowed."
    assert model.calls == []


def test_examples_are_shown_in_the_dialect_the_model_must_write(catalog):
    from plinth.sql.prompts import sql_messages

    selection = catalog.select("Monthly cost trend?", k_examples=2)
    assert any(
        "date_trunc('month'" in e.sql.lower() or "date_trunc('MONTH'" in e.sql for e in selection.examples
    )
    spark = sql_messages("Monthly cost trend?", selection, "spark")
    assert "Spark SQL" in spark[0]["content"] and "DATE_TRUNC('MONTH'" in spark[1]["content"]
