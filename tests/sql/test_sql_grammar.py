"""The SELECT grammar of :mod:`plinth.sql.grammar`, checked by llguidance itself: each text is fed, as token
ids of the tiny llama's tokenizer, to a matcher compiled for that tokenizer (what the engine does while
decoding), so "parses" means "a model could have generated it under the constraint".

Gold queries (the held-out set and every template, slots filled) must parse over the real generated CUR
schema; what the safety layer refuses (DDL, COPY, file functions, two statements, unknown tables,
misspelt columns) must not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from plinth.evals.sql_accuracy import load_cases
from plinth.llm.grammar import GrammarCompiler, grammar_definition
from plinth.samples import generate
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.grammar import reply_grammar, sql_grammar
from plinth.sql.training_set import load_shapes
from plinth.sql.types import Dataset, TableSource

SLOTS = {
    "service": "EC2", "service_code": "AmazonEC2", "month": "March 2025", "month_date": "2025-03-01",
    "region": "us-east-1", "account": "123456789012", "instance_type": "m5.large", "n": 5, "amount": 1000,
    "tag_key": "team", "tag_col": "resource_tags_user_team", "tag_alias": "team", "tag_value": "data",
    "charge": "tax", "line_type": "Tax",
}  # fmt: skip


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The columns DuckDB reports for generated CUR data (what the ask loop's catalog holds)."""
    root = tmp_path_factory.mktemp("cur-grammar")
    folder = generate("cur", root / "data", rows=200, months=1, seed=3)
    engine = DuckDBEngine(
        Dataset("c", "cur", {"cur": TableSource(str(folder), "parquet")}), work_dir=root / "e"
    )
    try:
        return {table: [name for name, _ in cols] for table, cols in engine.describe().items()}
    finally:
        engine.close()


@pytest.fixture(scope="module")
def accepts(schema, tiny_llama: Path):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    compiler = GrammarCompiler(tokenizer, 1820, [tokenizer.eos_token_id])
    grammar = compiler.compile(reply_grammar(schema))

    def check(sql: str) -> bool:
        """Whether the reply ```sql block holding ``sql`` is in the grammar, whole, then EOS."""
        matcher = grammar.new_matcher()
        ids = tokenizer.encode(f"```sql\n{sql}\n```", add_special_tokens=False) + [tokenizer.eos_token_id]
        return all(matcher.accept_token(t) for t in ids) and matcher.is_terminated()

    return check


def test_every_held_out_gold_query_parses(accepts):
    cases = load_cases()
    assert len(cases) == 56
    assert [c.id for c in cases if not accepts(c.sql)] == []


def test_every_template_query_parses(accepts):
    shapes = load_shapes()
    assert [s.name for s in shapes if not accepts(s.sql.format(**SLOTS))] == []


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE cur",
        "DELETE FROM cur",
        "COPY cur TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT getenv('HOME') FROM cur",
        "SELECT 1 FROM cur; DROP TABLE cur",
        "SELECT * FROM cur; SELECT * FROM cur",
        "SELECT * FROM cur -- a comment",
        "SELECT SUM(line_item_unblended_cost) FROM costs",
        "SELECT SUM(line_item_unblended_cots) FROM cur",
        "SELECT product_regoin FROM cur",
        "SELECT SUM(line_item_unblended_cost) AS c FROM cur ORDER BY line_item_unblended_cots",
        "WITH d AS (SELECT 1 AS x FROM cur) SELECT line_item_unblended_cots FROM d",
        "WITH q AS (SELECT 1 AS x FROM cur) SELECT x FROM q",
        "WITH d AS (SELECT 1 AS x FROM cur) SELECT x FROM t",
    ],
)
def test_what_the_safety_layer_refuses_does_not_parse(accepts, sql):
    assert not accepts(sql)


def test_names_come_from_the_schema_and_odd_ones_are_quoted():
    text = sql_grammar({"cur": ["cost", "Weird Name", "select"]})
    assert 'column: "\\"Weird Name\\"" | "cost" | "\\"select\\""' in text
    assert '"`Weird Name`"' in sql_grammar({"cur": ["Weird Name"]}, quote="`")
    assert reply_grammar({"cur": ["x"]}).param == "grammar"
    grammar_definition(reply_grammar({"cur": ["Weird Name", "a_b"]}))  # llguidance accepts it
