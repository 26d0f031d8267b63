"""``--merge-lora``: an adapter folded into its base's weights serves what the unmerged adapter does,
under the adapter's name with the base as ``parent``; ``load_models`` picks the base it fits."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from adapter_fixtures import PROMPT, control_plane, greedy, reference
from fastapi.testclient import TestClient
from lora_fixtures import make_peft_adapter

from plinth.config import Settings
from plinth.llm.loading import load_models
from plinth.server import create_app

pytestmark = pytest.mark.slow


async def _ids(model) -> list[int]:
    return [t async for d in model.stream(PROMPT, greedy()) for t in d.token_ids]


def test_merged_adapter_matches_unmerged_and_is_served_under_its_name(tiny_checkpoint_factory, tmp_path):
    llama, qwen3 = tiny_checkpoint_factory("llama"), tiny_checkpoint_factory("qwen3")
    adapters = tmp_path / "adapters"
    make_peft_adapter(llama, adapters / "sql", r=4, targets=("q_proj", "v_proj", "gate_proj", "down_proj"))
    settings = Settings(
        models=[str(qwen3), str(llama)], adapters=[adapters], merge_lora="sql", device="cpu",
        dtype="float32", kv_cache_memory_gb=0.05, data_dir=tmp_path / "data",
    )  # fmt: skip
    models = load_models(settings)
    try:
        by_name = {m.name: m for m in models}
        assert set(by_name) == {str(qwen3), "sql"}  # the llama base is served only merged
        merged = by_name["sql"]
        assert merged.parent == str(llama) and not merged.lora_enabled
        assert asyncio.run(_ids(merged)) == reference(llama, adapters / "sql")
        assert reference(llama, adapters / "sql") != reference(llama, None)
        cp, keys = control_plane(tmp_path)
        with TestClient(create_app(settings, models, cp)) as client:
            cards = {m["id"]: m for m in client.get("/v1/models", headers=keys.auth("acme")).json()["data"]}
            assert cards["sql"]["parent"] == str(llama)
            adapters_listed = client.get("/v1/adapters", headers=keys.auth("acme")).json()["data"]
            assert adapters_listed == []  # not also registered unmerged (it fits no LoRA-enabled base)
        cp.close()
    finally:
        for model in models:
            model.shutdown()


def test_merge_lora_must_name_an_adapters_folder(tmp_path):
    with pytest.raises(ValueError, match="--adapters"):
        Settings(merge_lora="sql")
    (tmp_path / "a").mkdir()
    settings = Settings(models=["x"], adapters=[tmp_path / "a"], merge_lora="sql")
    with pytest.raises(ValueError, match="no folder 'sql'"):
        load_models(settings)
    shutil.rmtree(tmp_path / "a")
