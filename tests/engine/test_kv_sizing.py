"""The KV cache is sized by need (``max_num_seqs`` full-length sequences), capped by the budget."""

from __future__ import annotations

from plinth.engine import EngineConfig, LLMEngine, model_runner


def test_unset_budget_sizes_the_cache_for_max_num_seqs_full_sequences(tiny_llama) -> None:
    engine = LLMEngine(
        EngineConfig(model=str(tiny_llama), dtype="float32", max_num_seqs=3, max_model_len=100)
    )
    assert engine.runner.num_blocks == 3 * 7  # ceil(100 / 16) blocks per sequence
    assert engine.model_config.max_model_len == 100


def test_budget_caps_the_cache(tiny_llama, monkeypatch) -> None:
    cfg = EngineConfig(model=str(tiny_llama), dtype="float32", max_num_seqs=64, max_model_len=2048)
    per_block = 2 * 2 * 2 * 32 * 4 * 16  # K and V, 2 layers, 2 KV heads, head_dim 32, float32, 16 tokens
    capped = LLMEngine(EngineConfig(**{**_fields(cfg), "kv_cache_memory_gb": 40 * per_block / 2**30}))
    assert capped.runner.num_blocks == 40
    monkeypatch.setattr(model_runner, "available_host_memory", lambda: 4 * 50 * per_block)
    assert LLMEngine(cfg).runner.num_blocks == 50  # a quarter of what is free


def _fields(cfg: EngineConfig) -> dict:
    return {name: getattr(cfg, name) for name in cfg.__slots__}
