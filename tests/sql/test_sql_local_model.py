"""The ask loop through the real in-process engine with a random-weight tiny llama.

The model writes gibberish, so the point is the failure mode: every attempt is used and recorded, the
loop ends in AskFailedError (no crash, no hang, nothing executed that was not vetted), and the prompt
fits the 2k-token context -- shrinking its selection when the full one does not.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from plinth.engine import EngineConfig
from plinth.llm.local import LocalModel
from plinth.samples import generate
from plinth.sql.ask import AskFailedError, ask
from plinth.sql.catalog import Catalog
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.prompts import sql_messages
from plinth.sql.runner import QueryRunner
from plinth.sql.types import AskAttempt, Dataset, TableSource


@pytest.mark.slow
def test_random_model_fails_cleanly_with_every_attempt_recorded(tiny_llama: Path, tmp_path: Path):
    folder = generate("cur", tmp_path / "data", rows=2000, months=2, seed=5)
    dataset = Dataset("costs", "cur", {"cur": TableSource(str(folder), "parquet")})
    engine = DuckDBEngine(dataset, work_dir=tmp_path / "engine")
    model = LocalModel.load(EngineConfig(model=str(tiny_llama), device="cpu", kv_cache_memory_gb=0.05))
    try:
        assert model.is_random
        catalog = Catalog.for_dataset(dataset, engine.describe())
        question = "What is our amortized cost per month?"
        full = sql_messages(question, catalog.select(question), "duckdb")
        assert len(model.encode_chat(full)) > model.max_model_len, "the full prompt overflows this model"
        runner = QueryRunner(dataset, engine, max_rows=100, timeout_s=10)
        chat = model.as_chat_model()
        with pytest.raises(AskFailedError) as err:
            asyncio.run(ask(question, dataset, chat, runner=runner, catalog=catalog, max_attempts=2))
        assert err.value.rule == "attempts_exhausted" and len(err.value.history) == 2
        assert all(a.rule and a.error for a in err.value.history)
        assert str(err.value).startswith("No working query after 2 attempt(s)")
    finally:
        model.shutdown()
        engine.close()


def _names_problems(sql: str, catalog: Catalog) -> list[str]:
    """What in ``sql`` (possibly cut short) the grammar promises cannot be there: it does not start a
    SELECT or WITH, a word in a schema column's namespace (``line_item_...``) that is no column, a FROM
    or JOIN of something that is neither a table, a subquery nor the CTE the query defined."""
    columns = {c.name for cols in catalog.schema.values() for c in cols}
    namespaces = tuple(f"{c.split('_', 1)[0]}_" for c in columns if "_" in c)
    bare = re.sub(r"'[^']*'?", "''", sql)  # string literals (the last one maybe unterminated) say nothing
    problems = [] if re.match(r"(SELECT|WITH) ", bare) else [f"starts {bare[:12]!r}"]
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", bare))
    problems += [f"misspelt {w}" for w in words if w.startswith(namespaces) and w not in columns]
    defined = set(re.findall(r"^WITH ([a-z_]+) AS", bare))
    for source in re.findall(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", bare):
        if source not in catalog.schema and source not in defined:
            problems.append(f"reads {source}")
    return problems


@pytest.mark.slow
def test_under_the_grammar_a_random_model_writes_only_the_datasets_names(tiny_llama: Path, tmp_path: Path):
    """The real path -- ask loop, grammar compiled for the model's tokenizer, the engine's bitmask --
    with random weights: the replies are nonsense, but every attempt is a SELECT (or WITH) whose
    schema-shaped names are the dataset's own and whose FROM is a table, a subquery or its CTE, and no
    attempt fails a rule the grammar rules out. Without the grammar the same model writes no SQL."""
    folder = generate("cur", tmp_path / "data", rows=500, months=1, seed=5)
    dataset = Dataset("costs", "cur", {"cur": TableSource(str(folder), "parquet")})
    engine = DuckDBEngine(dataset, work_dir=tmp_path / "engine")
    model = LocalModel.load(EngineConfig(model=str(tiny_llama), device="cpu", kv_cache_memory_gb=0.05))
    try:
        catalog = Catalog.for_dataset(dataset, engine.describe())
        runner = QueryRunner(dataset, engine, max_rows=100, timeout_s=10)
        chat = model.as_chat_model()

        def attempts(question: str, grammar: bool) -> list[AskAttempt]:
            try:
                result = asyncio.run(ask(question, dataset, chat, runner=runner, catalog=catalog,
                                         max_attempts=2, grammar=grammar))  # fmt: skip
            except AskFailedError as exc:
                return exc.history
            return result.history

        ruled_out = {"no_sql", "statement_kind", "multiple_statements", "table_not_allowed",
                     "table_function", "function_not_allowed", "empty"}  # fmt: skip
        questions = ["What is our total cost?", "Cost per service last month?", "Which region costs most?"]
        constrained = [a for q in questions for a in attempts(q, grammar=True)]
        assert len(constrained) >= len(questions)
        for attempt in constrained:
            assert attempt.rule not in ruled_out, attempt
            assert _names_problems(attempt.sql, catalog) == [], attempt.sql
        free = attempts(questions[0], grammar=False)
        assert any(a.rule == "no_sql" or _names_problems(a.sql, catalog) for a in free)
    finally:
        model.shutdown()
        engine.close()
