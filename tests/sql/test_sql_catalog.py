"""The catalogs: every example runs on generated data; selection picks relevant examples and columns.

Data comes from the real generator (small: 20k rows over 3 months ending last month, so "last month"
examples find rows too) and runs through the real runner (safety layer + locked-down DuckDB).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from plinth.samples import generate
from plinth.sql.catalog import Catalog, load_docs
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.runner import QueryRunner
from plinth.sql.types import Dataset, TableSource

KINDS = ("cur", "cur2", "focus")


def schema_columns(kind: str) -> dict[str, str]:
    text = resources.files("plinth.samples").joinpath("schemas", f"{kind}.json").read_text("utf-8")
    return {c["name"]: c["type"] for c in json.loads(text)["columns"]}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    """kind -> (dataset, runner, catalog) over freshly generated data."""
    root = tmp_path_factory.mktemp("costgen")
    out, engines = {}, []
    for kind in KINDS:
        folder = generate(kind, root / kind, rows=20_000, months=3, seed=1)
        dataset = Dataset(f"{kind}-test", kind, {kind: TableSource(str(folder), "parquet")})
        engine = DuckDBEngine(dataset, work_dir=root / "engines")
        engines.append(engine)
        runner = QueryRunner(dataset, engine, max_rows=1000, timeout_s=30)
        out[kind] = (dataset, runner, Catalog.for_dataset(dataset, engine.describe()))
    yield out
    for engine in engines:
        engine.close()


@pytest.mark.parametrize("kind", KINDS)
def test_docs_describe_only_real_columns(kind: str):
    """Each doc file's own column entries name real columns (CUR 2.0 inherits the legacy ones it shares)."""
    raw = yaml.safe_load(resources.files("plinth.sql").joinpath("catalog_docs", f"{kind}.yaml").read_text())
    docs, columns = load_docs(kind), schema_columns(kind)
    assert set(raw["columns"]) <= set(columns), "a documented column is missing from the schema"
    assert len(set(docs["columns"]) & set(columns)) >= 40
    assert set(docs["key_columns"]) <= set(columns)
    assert 15 <= len(docs["examples"]) <= 25
    assert len({e["question"] for e in docs["examples"]}) == len(docs["examples"]), "duplicate questions"


@pytest.mark.parametrize("kind", KINDS)
def test_every_example_runs_on_generated_data_and_finds_rows(kind: str, generated):
    dataset, runner, catalog = generated[kind]
    assert len(catalog.examples) == len(load_docs(kind)["examples"]), "no example was dropped"
    for example in catalog.examples:
        vetted, result = runner.run(example.sql, "duckdb")
        assert result.rows, f"{kind}: no rows for {example.question!r}"
        assert vetted.tables == (kind,)


RETRIEVAL = [
    ("cur", "Which are our most expensive AWS services?", "Which services cost the most in the latest"),
    ("cur", "amortised cost trend including RI and SP fees", "What is our amortized cost per month"),
    ("cur", "How much are we wasting on unused reservations?", "How much did unused Reserved Instances"),
    ("cur2", "spend per team tag", "How much does each team spend according to the team tag?"),
    ("focus", "how much did we save versus list price", "How much have we saved compared with list"),
    ("focus", "What did each environment cost?", "Which environments cost the most by the environment"),
]


@pytest.mark.parametrize(("kind", "question", "expected"), RETRIEVAL)
def test_selection_retrieves_the_relevant_example(kind: str, question: str, expected: str, generated):
    selection = generated[kind][2].select(question, k_examples=4)
    assert any(e.question.startswith(expected) for e in selection.examples)
    assert len(selection.examples) == 4


def test_selection_shows_a_few_relevant_columns_never_the_whole_schema(generated):
    catalog = generated["cur"][2]
    assert len(catalog.schema["cur"]) > 100
    selection = catalog.select("Which EC2 instance types cost the most?", max_columns=30)
    names = [c.name for c in selection.columns["cur"]]
    assert 5 <= len(names) <= 30 and selection.tables == ["cur"]
    for needed in ("product_instance_type", "line_item_unblended_cost", "line_item_usage_start_date"):
        assert needed in names
    assert all(c.description for c in selection.columns["cur"] if c.name == "line_item_unblended_cost")
    assert names == [c.name for c in catalog.schema["cur"] if c.name in names], "kept in schema order"


def test_question_words_select_matching_columns(generated):
    catalog = generated["cur"][2]
    names = catalog.select("What does the cost_center tag owner spend by availability zone?").column_names()
    assert {
        "resource_tags_user_cost_center",
        "resource_tags_user_owner",
        "line_item_availability_zone",
    } <= names


def test_example_columns_come_with_the_example(generated):
    catalog = generated["cur"][2]
    selection = catalog.select("NAT gateway hours versus data processed", k_examples=1)
    assert selection.examples[0].question.startswith("How much do NAT gateways cost")
    assert {"line_item_usage_type", "line_item_usage_account_id"} <= selection.column_names()


def test_examples_that_need_a_missing_column_are_dropped(generated, tmp_path: Path):
    """A CUR export without tag columns keeps the examples it can run and loses the tag ones."""
    dataset, runner, _ = generated["cur"]
    described = {"cur": [(n, t) for n, t in runner.describe()["cur"] if not n.startswith("resource_tags_")]}
    catalog = Catalog.for_dataset(dataset, described)
    questions = [e.question for e in catalog.examples]
    assert "How much does each team spend, by the team tag?" not in questions
    assert "What is our total cost?" in questions and len(questions) == len(load_docs("cur")["examples"]) - 2


def test_map_examples_are_dropped_when_tags_are_text():
    """The FOCUS CSV sample stores Tags as JSON text: Tags['team'] cannot run there."""
    columns = [
        (n, "VARCHAR" if t.startswith("map") else t.upper()) for n, t in schema_columns("focus").items()
    ]
    dataset = Dataset("f", "focus", {"focus": TableSource("/nowhere", "csv")})
    questions = [e.question for e in Catalog.for_dataset(dataset, {"focus": columns}).examples]
    assert (
        not any("tag" in q for q in questions) and len(questions) == len(load_docs("focus")["examples"]) - 2
    )


def test_custom_dataset_has_columns_and_no_docs():
    columns = [("invoice_month", "DATE"), ("team", "VARCHAR"), ("amount_usd", "DOUBLE")]
    dataset = Dataset("budget", "custom", {"budget": TableSource("/nowhere", "parquet")})
    catalog = Catalog.for_dataset(dataset, {"budget": columns})
    selection = catalog.select("How much did each team spend per month?")
    assert selection.examples == [] and selection.notes == {}
    assert {c.name for c in selection.columns["budget"]} >= {"team", "amount_usd"}
    assert all(c.description == "" for c in selection.columns["budget"])


def test_a_renamed_main_table_is_renamed_in_the_examples():
    columns = [(n, t.upper()) for n, t in schema_columns("cur").items()]
    dataset = Dataset("legacy", "cur", {"billing": TableSource("/nowhere", "parquet")})
    catalog = Catalog.for_dataset(dataset, {"billing": columns})
    assert catalog.main_table == "billing"
    assert all("FROM billing" in e.sql and "FROM cur" not in e.sql for e in catalog.examples)


def _columns(spec: str) -> list[tuple[str, str]]:
    return [tuple(item.split(":")) for item in spec.split()]  # type: ignore[misc]


FINANCE = {
    "invoices": _columns(
        "invoice_id:VARCHAR invoice_date:DATE team:VARCHAR amount_usd:DOUBLE vendor:VARCHAR"
    ),
    "budgets": _columns("team:VARCHAR fiscal_month:DATE budget_usd:DOUBLE owner_email:VARCHAR"),
    "support_tickets": _columns(
        "ticket_id:VARCHAR opened_at:TIMESTAMP severity:VARCHAR assignee:VARCHAR status:VARCHAR"
    ),
}


@pytest.mark.parametrize(
    ("question", "tables"),
    [
        ("Compare each team's budget with what they were invoiced", ["invoices", "budgets"]),
        ("How many high severity support tickets were opened per week?", ["support_tickets"]),
    ],
)
def test_custom_dataset_shows_the_tables_the_question_needs(question: str, tables: list[str]):
    dataset = Dataset("fin", "custom", {t: TableSource("/nowhere", "parquet") for t in FINANCE})
    selection = Catalog.for_dataset(dataset, FINANCE).select(question)
    assert selection.tables == tables
    for table in tables:  # narrow tables are shown whole
        assert [c.name for c in selection.columns[table]] == [name for name, _ in FINANCE[table]]
