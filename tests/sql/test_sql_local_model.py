"""The ask loop through the real in-process engine with a random-weight tiny llama.

The model writes gibberish, so the point is the failure mode: every attempt is used and recorded, the
loop ends in AskFailedError (no crash, no hang, nothing executed that was not vetted), and the prompt
fits the 2k-token context -- shrinking its selection when the full one does not.
"""

from __future__ import annotations

import asyncio
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
from plinth.sql.types import Dataset, TableSource


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
