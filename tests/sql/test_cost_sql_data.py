"""The cost-sql training set and the held-out set: every gold query runs, the two never overlap, the
set is reproducible, and the adapter prompts fit a small model's budget."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from plinth.evals.sql_accuracy import EVAL_DATA, evaluate_sql, load_cases
from plinth.llm import ScriptedModel
from plinth.llm.catalog import DEFAULT_MODEL, PACKAGED
from plinth.samples import generate
from plinth.sql.adapter_prompt import COST_SQL_FORMAT, SYSTEM
from plinth.sql.catalog import Catalog
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.extract import extract_sql
from plinth.sql.runner import QueryRunner
from plinth.sql.training_set import TRAIN_DATA, DataSpec, build_training_set, load_shapes, normalize_question
from plinth.sql.types import Dataset, TableSource

SMOLLM2 = PACKAGED[DEFAULT_MODEL].path()  # the packaged GGUF (`make install`), None when absent


def open_runner(spec: DataSpec, root: Path) -> tuple[QueryRunner, DuckDBEngine]:
    folder = generate(
        "cur", root / "data", rows=spec.rows, months=spec.months, seed=spec.seed, start=spec.start
    )
    dataset = Dataset("costs", "cur", {"cur": TableSource(str(folder), "parquet")})
    engine = DuckDBEngine(dataset, work_dir=root / "engine")
    return QueryRunner(dataset, engine, max_rows=1000, timeout_s=30), engine


@pytest.fixture(scope="module")
def train_runner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    runner, engine = open_runner(TRAIN_DATA, tmp_path_factory.mktemp("train"))
    yield runner
    engine.close()


@pytest.fixture(scope="module")
def training_set(train_runner: QueryRunner) -> Any:
    return build_training_set(train_runner, seed=0)


def test_normalized_questions_ignore_case_punctuation_and_spacing():
    assert normalize_question("  What's the TOTAL cost? ") == normalize_question("whats the total  cost")
    assert normalize_question("team=ml") != normalize_question("team ml")


@pytest.mark.slow
def test_every_heldout_gold_query_runs_and_returns_a_value(tmp_path: Path):
    runner, engine = open_runner(EVAL_DATA, tmp_path)
    try:
        for case in load_cases():
            rows = runner.run(case.sql)[1].rows
            assert rows and any(v is not None for row in rows for v in row), case.id
    finally:
        engine.close()


@pytest.mark.slow
def test_no_heldout_question_is_in_the_training_set(training_set: Any):
    examples, _ = training_set
    trained = {normalize_question(e["messages"][1]["content"]) for e in examples}
    template_texts = {normalize_question(q) for shape in load_shapes() for q in shape.questions}
    for case in load_cases():
        assert normalize_question(case.question) not in trained, case.id
        assert normalize_question(case.question) not in template_texts, case.id


@pytest.mark.slow
def test_the_training_set_is_large_varied_and_in_the_adapter_format(
    training_set: Any, train_runner: QueryRunner
):
    examples, stats = training_set
    assert 1500 <= len(examples) <= 3000 and len(stats.kept) >= 30
    assert sum(stats.failed.values()) == 0, stats.failed  # a template that never runs is a bug
    assert len({e["messages"][1]["content"] for e in examples}) == len(examples)
    for example in examples[::97]:  # the gold query in every reply is extractable and runs
        system, user, assistant = example["messages"]
        assert (system["role"], user["role"], assistant["role"]) == ("system", "user", "assistant")
        assert system["content"] == SYSTEM and assistant["content"].startswith("```sql\n")
        assert train_runner.run(extract_sql(assistant["content"]))[1].rows


@pytest.mark.slow
def test_the_training_set_is_reproducible(train_runner: QueryRunner):
    first, _ = build_training_set(train_runner, seed=3, per_shape=2)
    again, _ = build_training_set(train_runner, seed=3, per_shape=2)
    other, _ = build_training_set(train_runner, seed=4, per_shape=2)
    assert first == again and first != other


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="the packaged SmolLM2 GGUF is not installed")
def test_adapter_prompts_are_short_for_the_smollm2_tokenizer(training_set: Any):
    from transformers import AutoTokenizer

    assert SMOLLM2 is not None
    tokenizer = AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)
    examples, _ = training_set
    texts = [tokenizer.apply_chat_template(e["messages"][:2], tokenize=False, add_generation_prompt=True)
             for e in examples[::25]]  # fmt: skip
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    assert min(lengths) > 200 and max(lengths) < 350, (min(lengths), max(lengths))


@pytest.mark.slow
def test_an_oracle_that_answers_with_the_gold_sql_scores_every_heldout_question(tmp_path: Path):
    """The harness end to end on the real held-out set: gold in, 100% out (and a model that always
    answers the grand total gets exactly the questions whose gold result is that total)."""
    runner, engine = open_runner(EVAL_DATA, tmp_path)
    cases = load_cases()
    gold = {c.question: c.sql for c in cases}

    def oracle(messages: list[Any]) -> str:
        return f"```sql\n{gold[messages[1]['content']]}\n```"

    try:
        catalog = Catalog.for_dataset(runner.dataset, runner.describe())
        report = asyncio.run(evaluate_sql(cases, ScriptedModel(oracle), runner=runner, catalog=catalog,
                                      prompt_format=COST_SQL_FORMAT))  # fmt: skip
        assert report.accuracy == 1.0, [o.id for o in report.outcomes if not o.correct]
        total = ScriptedModel(lambda _: "```sql\nSELECT SUM(line_item_unblended_cost) FROM cur\n```")
        report = asyncio.run(
            evaluate_sql(cases, total, runner=runner, catalog=catalog, prompt_format=COST_SQL_FORMAT)
        )
        assert [o.id for o in report.outcomes if o.correct] == ["grand_total"]
    finally:
        engine.close()
