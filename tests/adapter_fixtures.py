"""Shared pieces of the adapter-serving tests: tiny LoRA-enabled models, tenants' keys, references.

``lora_model(base)`` loads a tiny checkpoint with adapter slots (rank <= 8, 2 slots, so slot eviction
happens in tests); ``reference(base, adapter, prompt)`` is the engine's own greedy output with that
adapter, computed on a separate synchronous engine, the ground truth the HTTP layer must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plinth.control import ControlPlane, create_key, open_control_plane
from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.llm.local import LocalModel

PROMPT = [5, 17, 42, 9, 33, 61]
MAX_TOKENS = 8


def engine_config(base: Path, **overrides) -> EngineConfig:
    cfg = EngineConfig(model=str(base), device="cpu", dtype="float32", enable_lora=True)
    cfg.kv_cache_memory_gb, cfg.max_num_seqs, cfg.max_loras, cfg.max_lora_rank = 0.05, 40, 2, 8
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def lora_model(base: Path, name: str = "base", **overrides) -> LocalModel:
    return LocalModel.load(engine_config(base, **overrides), name=name)


def greedy(max_tokens: int = MAX_TOKENS) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)


def reference(
    base: Path, adapter: Path | None, prompt: list[int] = PROMPT, max_tokens: int = MAX_TOKENS
) -> list[int]:
    """Greedy token ids from a fresh engine, with ``adapter`` (None: the base model)."""
    engine = LLMEngine(engine_config(base))
    name = None
    if adapter is not None:
        engine.add_lora("ref", adapter)
        name = "ref"
    rid = engine.add_request(list(prompt), greedy(max_tokens), adapter=name)
    out: list[int] = []
    while engine.has_unfinished():
        for o in engine.step():
            if o.request_id == rid:
                out += o.new_token_ids
    return out


@dataclass
class Keys:
    admin: str  # tenant acme, admin key
    acme: str  # tenant acme
    beta: str  # tenant beta

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


def control_plane(path: Path) -> tuple[ControlPlane, Keys]:
    cp = open_control_plane(f"sqlite:///{path / 'plinth.db'}")
    return cp, Keys(create_key(cp, "acme", admin=True), create_key(cp, "acme"), create_key(cp, "beta"))
