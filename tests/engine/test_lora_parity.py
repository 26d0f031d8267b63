"""Mixed batches of LoRA adapters against PEFT running each adapter alone.

One engine batch holds the base model and four adapters with different ranks, alphas, target modules
(and rsLoRA, and per-module rank patterns). Each request must produce the same greedy tokens as PEFT
with that adapter alone, and the same log-probabilities within 1e-4 (float32 on both sides). The
same holds when slots are scarce (adapters evicted to host memory or disk and reloaded mid-stream,
requests preempted and resumed in another slot).
"""

from __future__ import annotations

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, live_peft_model, make_peft_adapter
from transformers import AutoModelForCausalLM

from plinth.engine import EngineConfig, LLMEngine, SamplingParams, UnknownAdapterError
from plinth.engine.lora import TARGETS
from plinth.engine.lora import layers as lora_layers

ARCHS = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe"]
LOGPROB_ATOL = 1e-4
STEPS = 8
ADAPTERS = {
    "qv-r8": {"r": 8, "alpha": 16, "targets": ("q_proj", "v_proj")},
    "all-r4-rslora": {"r": 4, "alpha": 8, "rslora": True, "targets": TARGETS},
    "mlp-r16": {"r": 16, "alpha": 8, "targets": ("gate_proj", "up_proj", "down_proj", "o_proj")},
    "qk-pattern": {"r": 2, "alpha": 4, "targets": ("q_proj", "k_proj"),
                   "rank_pattern": {"k_proj": 6}, "alpha_pattern": {"q_proj": 10}},
}  # fmt: skip


def _adapters(arch: str) -> dict:
    """On a mixture-of-experts model the adapters keep their attention targets only: LoRA on experts is
    refused (``lora/adapter.py``; PEFT targets them as raw parameters)."""
    if arch not in ("mixtral", "qwen3_moe"):
        return ADAPTERS
    attention = ("q_proj", "k_proj", "v_proj", "o_proj")
    return {
        name: {**spec, "targets": [t for t in spec["targets"] if t in attention]}
        for name, spec in ADAPTERS.items()
    }


@pytest.fixture(scope="module", params=ARCHS)
def setup(request, tiny_checkpoint_factory, tmp_path_factory):
    base = tiny_checkpoint_factory(request.param)
    root = tmp_path_factory.mktemp(f"lora-{request.param}")
    paths = {
        name: make_peft_adapter(base, root / name, seed=i + 1, **spec)
        for i, (name, spec) in enumerate(_adapters(request.param).items())
    }
    prompts = {name: _prompt(6 + 5 * i, seed=i) for i, name in enumerate([None, *ADAPTERS])}
    expected = {name: _reference(base, paths.get(name), prompt) for name, prompt in prompts.items()}
    return base, paths, prompts, expected


def _prompt(n: int, seed: int) -> list[int]:
    return torch.randint(3, 1000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _reference(base, adapter_path, prompt: list[int]) -> tuple[list[int], list[float]]:
    """Greedy tokens and their log-probabilities from transformers (+ PEFT with that one adapter)."""
    model = (
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
        if adapter_path is None
        else live_peft_model(base, adapter_path)
    )
    ids, logprobs = list(prompt), []
    with torch.inference_mode():
        for _ in range(STEPS):
            scores = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            ids.append(int(scores.argmax()))
            logprobs.append(float(scores.max()))
    return ids[len(prompt) :], logprobs


def _run(engine: LLMEngine, prompts: dict) -> dict:
    outputs = greedy_tokens_and_logprobs(engine, [*prompts.values()], STEPS, [*prompts])
    return dict(zip(prompts, outputs, strict=True))


def _assert_matches(got: dict, expected: dict) -> None:
    for name, (tokens, logprobs) in expected.items():
        assert got[name][0] == tokens, f"adapter {name}"
        ours, theirs = torch.tensor(got[name][1]), torch.tensor(logprobs)
        torch.testing.assert_close(ours, theirs, atol=LOGPROB_ATOL, rtol=0)


def _engine(base, paths, **overrides) -> LLMEngine:
    settings = {"max_loras": 8, "max_lora_rank": 16, **overrides}
    config = EngineConfig(model=str(base), enable_lora=True, **settings)
    engine = LLMEngine(config)
    for name, path in paths.items():
        engine.add_lora(name, path)
    return engine


@pytest.mark.parametrize("batched", [True, False], ids=["dense-and-padded", "gathered-and-segments"])
def test_mixed_batch_matches_peft_per_adapter(setup, batched, monkeypatch):
    if not batched:  # decode tokens never on the dense path, prefill chunks never on the padded one
        monkeypatch.setattr(lora_layers, "DENSE_MAX_SPAN", 0)
        monkeypatch.setattr(lora_layers, "MAX_PADDING", 0.0)
    base, paths, prompts, expected = setup
    engine = _engine(base, paths)
    _assert_matches(_run(engine, prompts), expected)
    assert engine.lora_stats().resident == 4


def test_evicted_and_reloaded_adapters_still_match(setup):
    base, paths, prompts, expected = setup
    # Two slots for four adapters, one adapter in host memory, a cache so small requests get preempted.
    engine = _engine(base, paths, max_loras=2, max_cpu_loras=1, kv_cache_blocks=6, block_size=8)
    _assert_matches(_run(engine, prompts), expected)
    stats = engine.lora_stats()
    assert stats.evictions >= 2 and stats.disk_loads >= 1
    assert engine.stats().num_preemptions > 0 and engine.stats().kv_blocks_used == 0


def test_adapters_left_on_disk_load_at_first_use_and_match(setup):
    """Registered without preload (as at start-up), adapters hold no host memory until a request needs
    one; then each is read from disk once and serves the same tokens."""
    base, paths, prompts, expected = setup
    engine = LLMEngine(EngineConfig(model=str(base), enable_lora=True, max_loras=8, max_lora_rank=16))
    for name, path in paths.items():
        engine.add_lora(name, path, preload=False)
    assert {engine.lora.tier(name) for name in paths} == {"disk"}
    assert engine.lora_stats().in_memory == 0
    _assert_matches(_run(engine, prompts), expected)
    assert engine.lora_stats().disk_loads == len(paths)


def test_unknown_and_removed_adapters_are_refused(setup):
    base, paths, prompts, _ = setup
    engine = _engine(base, {"qv-r8": paths["qv-r8"]})
    with pytest.raises(UnknownAdapterError):
        engine.add_request(prompts[None], SamplingParams(), adapter="nope")
    greedy = SamplingParams(max_tokens=STEPS, temperature=0, ignore_eos=True)
    rid = engine.add_request(prompts["qv-r8"], greedy, adapter="qv-r8")
    engine.step()
    assert engine.remove_lora("qv-r8")
    with pytest.raises(UnknownAdapterError):
        engine.add_request(prompts[None], SamplingParams(), adapter="qv-r8")
    outputs = []
    while engine.has_unfinished():
        outputs += engine.step()
    assert outputs[-1].request_id == rid and outputs[-1].num_output_tokens == STEPS
