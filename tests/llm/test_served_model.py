"""The served-model seam: LocalModel, the shipped double and the adapter view all speak ServedModel."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from plinth.adapters import AdapterModel, client_name
from plinth.engine import EngineStats, SamplingParams
from plinth.llm import AdapterHost, LocalModel, ScriptedRepliesModel, ScriptedServedModel, ServedModel
from plinth.llm.scripted_served import EOS, SCRIPT

STATS = EngineStats(2, 1, 3, 8, 2, 7, 0)


def _local_model() -> LocalModel:
    engine = SimpleNamespace(engine=SimpleNamespace(stats=lambda: STATS))
    tokenizer = SimpleNamespace(eos_token_id=7)
    return LocalModel(engine, tokenizer, name="base", max_model_len=128)


def test_every_served_model_implements_the_protocol() -> None:
    base = ScriptedServedModel()
    assert isinstance(_local_model(), AdapterHost)
    assert isinstance(base, AdapterHost) and isinstance(ScriptedRepliesModel(["hi"]), AdapterHost)
    assert isinstance(AdapterModel(base, "sql", "acme:sql"), ServedModel)


def test_local_model_reports_its_engine_stats_and_eos() -> None:
    model = _local_model()
    assert model.stats() == STATS and model.eos_token_id == 7 and model.metrics_label == "base"
    assert LocalModel(SimpleNamespace(), SimpleNamespace(), name="x", max_model_len=8).stats() is None


def test_an_adapter_streams_through_its_base_with_its_engine_name() -> None:
    seen: list[str | None] = []

    class Base(ScriptedServedModel):
        def stream(self, prompt_ids, params, stop=(), request_id=None, adapter=None):  # type: ignore[no-untyped-def]
            seen.append(adapter)
            return super().stream(prompt_ids, params, stop, request_id, adapter)

    model = AdapterModel(Base(name="base"), "sql", "acme:sql")

    async def run() -> str:
        return "".join([d.text async for d in model.stream([1, 2], SamplingParams(max_tokens=8))])

    assert asyncio.run(run()) == "".join(SCRIPT[:-1]) and seen == ["acme:sql"]
    assert model.name == "sql" and model.metrics_label == "base"  # /metrics never names an adapter
    assert model.eos_token_id == EOS and model.stats() == model.base.stats()
    assert not hasattr(model, "add_adapter")  # explicit, not forwarded: it is not a base model


def test_the_client_name_of_an_engine_level_adapter_drops_its_owner() -> None:
    assert client_name("acme:sql") == "sql" and client_name("public:sql") == "sql"
