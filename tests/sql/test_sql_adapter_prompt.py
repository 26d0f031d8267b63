"""An SQL adapter is asked in the prompt format it was trained on, read from its folder's data card;
every other model keeps the few-shot prompt. The model is the scripted double; SQL runs on real DuckDB."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adapter_fixtures import control_plane
from fastapi.testclient import TestClient

from plinth.adapters import AdapterEntry
from plinth.config import Settings
from plinth.guard import GuardResult
from plinth.llm import ScriptedModel
from plinth.llm import ScriptedRepliesModel as ScriptedChatModel
from plinth.samples import generate
from plinth.server import create_app
from plinth.sql.adapter_prompt import (
    CARD_FILE,
    COST_SQL_FORMAT,
    SYSTEM,
    adapter_messages,
    read_prompt_format,
)
from plinth.sql.ask import ask
from plinth.sql.catalog import Catalog
from plinth.sql.engines.duckdb_engine import DuckDBEngine
from plinth.sql.runner import QueryRunner
from plinth.sql.types import Dataset, TableSource

TOTAL = "SELECT SUM(line_item_unblended_cost) AS cost FROM cur"


class WordEmbedder:
    """A stand-in for MiniLM: bag of hashed words, so the few-shot path runs without a model."""

    name = "words"

    def embed(self, texts: list[str]) -> np.ndarray:
        vecs = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                vecs[i, sum(map(ord, word)) % 64] += 1.0
        return vecs + 1e-3


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("adapter-prompt")
    folder = generate("cur", root / "data", rows=2000, months=2, seed=4)
    dataset = Dataset("costs", "cur", {"cur": TableSource(str(folder), "parquet")})
    engine = DuckDBEngine(dataset, work_dir=root / "engine")
    catalog = Catalog.for_dataset(dataset, engine.describe(), embedder=WordEmbedder())
    yield dataset, QueryRunner(dataset, engine, max_rows=100, timeout_s=10), catalog
    engine.close()


def card_folder(tmp_path: Path, card: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / CARD_FILE).write_text(card if isinstance(card, str) else json.dumps(card))
    return tmp_path


def test_the_card_names_the_format(tmp_path: Path):
    folder = card_folder(tmp_path, {"plinth_task": "cost-sql", "prompt_format": "cost-sql-v1"})
    assert read_prompt_format(folder) == "cost-sql-v1"


@pytest.mark.parametrize("card", [None, "{not json", {"prompt_format": "cost-sql-v0"}, ["cost-sql-v1"]])
def test_no_card_or_an_unknown_format_means_the_few_shot_prompt(tmp_path: Path, card: Any):
    folder = card_folder(tmp_path, card) if card is not None else tmp_path
    assert read_prompt_format(folder) is None


class Registry:
    """The server's adapter registry as the ask route uses it: ``resolve`` (the entry, with its
    folder) and ``model_for`` (the served model), for one adapter that every tenant sees."""

    def __init__(self, model: ScriptedChatModel, folder: Path) -> None:
        self.model = model
        self.entry = AdapterEntry(
            "cost-sql", "public", None, "base", "public:cost-sql", str(folder), folder, 8, ()
        )

    def resolve(self, tenant: Any, name: str) -> AdapterEntry | None:
        return self.entry if name == self.entry.name else None

    def model_for(self, tenant: Any, name: str) -> ScriptedChatModel | None:
        return self.model if name == self.entry.name else None


@pytest.mark.slow  # the base model's few-shot prompt loads the real embedder
@pytest.mark.parametrize("card", [{"plinth_task": "cost-sql", "prompt_format": COST_SQL_FORMAT}, None])
def test_the_ask_route_asks_an_sql_adapter_in_the_format_its_card_names(
    tmp_path: Path, setup: Any, card: Any
):
    """Over HTTP: an adapter whose folder holds the card gets the adapter prompt; the base model
    beside it, and an adapter without a card, get the few-shot prompt."""
    dataset, _, _ = setup
    base = ScriptedChatModel([f"```sql\n{TOTAL}\n```"], name="base")
    adapter = ScriptedChatModel([f"```sql\n{TOTAL}\n```"], name="cost-sql")
    folder = card_folder(tmp_path / "adapter", card) if card else tmp_path
    cp, keys = control_plane(tmp_path / "cp")
    app = create_app(Settings(data_dir=tmp_path / "data"), [base], cp)
    try:
        with TestClient(app) as client:
            state = app.state.plinth
            real, state.adapters = state.adapters, Registry(adapter, folder)
            body = {"name": "costs", "path": str(Path(dataset.tables["cur"].path).parent)}
            made = client.post("/v1/sql/datasets", json=body, headers=keys.auth("admin"))
            assert made.status_code == 201, made.text
            for name in ("cost-sql", "base"):
                body = {"question": "total spend?", "dataset": "costs", "model": name}
                response = client.post("/v1/sql/ask", json=body, headers=keys.auth("acme"))
                assert response.status_code == 200, response.text
            state.adapters = real
    finally:
        app.state.sql.close()
        cp.close()
    assert (adapter.messages[0] == adapter_messages("total spend?")) == (card is not None)
    assert adapter.messages[0][0]["content"].startswith("You are a FinOps analyst") == (card is None)
    assert base.messages[0][0]["content"] != SYSTEM


def run(question: str, model: ScriptedModel, setup: Any, **kw: Any) -> Any:
    dataset, runner, catalog = setup
    return asyncio.run(ask(question, dataset, model, runner=runner, catalog=catalog, **kw))


def test_an_sql_adapter_is_asked_in_its_own_format(setup: Any):
    model = ScriptedModel([f"```sql\n{TOTAL}\n```"])
    result = run("total spend?", model, setup, prompt_format=COST_SQL_FORMAT)
    assert model.calls[0].messages == adapter_messages("total spend?")
    assert model.calls[0].messages[0]["content"] == SYSTEM and result.columns == ["cost"]


def test_a_repair_keeps_the_adapter_format_as_its_first_turns(setup: Any):
    model = ScriptedModel(["```sql\nSELECT nope FROM cur\n```", f"```sql\n{TOTAL}\n```"])
    result = run("total spend?", model, setup, prompt_format=COST_SQL_FORMAT)
    assert result.attempts == 2
    assert model.calls[1].messages[:2] == adapter_messages("total spend?")
    assert "That query failed" in model.calls[1].messages[3]["content"]


def test_other_models_keep_the_few_shot_prompt(setup: Any):
    model = ScriptedModel([f"```sql\n{TOTAL}\n```"])
    run("total spend?", model, setup)
    system, user = model.calls[0].messages
    assert system["content"] != SYSTEM and "Examples of questions" in user["content"]


def test_a_format_for_another_kind_of_dataset_is_ignored(setup: Any):
    dataset, runner, catalog = setup
    focus_like = Dataset("costs", "custom", dataset.tables)
    model = ScriptedModel([f"```sql\n{TOTAL}\n```"])
    asyncio.run(
        ask("total?", focus_like, model, runner=runner, catalog=catalog, prompt_format=COST_SQL_FORMAT)
    )
    assert model.calls[0].messages[0]["content"] != SYSTEM


class AllowAll:
    """A guard hook that lets everything through (the ask loop's GuardHook shape)."""

    async def input(self, text: str) -> GuardResult:
        return GuardResult("NONE", text, False, [], [])

    async def data(self, texts: Any, context: Any = None) -> list[GuardResult]:
        return [GuardResult("NONE", t, False, [], []) for t in texts]

    async def output(self, text: str, context: Any = None) -> GuardResult:
        return GuardResult("NONE", text, False, [], [])


def test_under_a_guard_the_adapter_prompt_is_spotlighted(setup: Any):
    model = ScriptedModel([f"```sql\n{TOTAL}\n```"])
    run("total spend?", model, setup, prompt_format=COST_SQL_FORMAT, guard=AllowAll())
    system = model.calls[0].messages[0]["content"]
    assert system.startswith(SYSTEM) and len(system) > len(SYSTEM)
