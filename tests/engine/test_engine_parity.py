"""Plinth's engine against Hugging Face transformers on the same tiny random checkpoints.

Tolerance: float32 logits agree within 1e-4 absolute (both implementations compute in float32; the
differences come from fused projections and a different attention kernel order of summation).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.attention import AttentionMetadata, SeqSpan

ARCHS = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe"]
LOGIT_ATOL = 1e-4


def _hf_model(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _prompt(n: int, seed: int, vocab: int = 500) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n,), generator=gen).tolist()


def _plinth_prefill_logits(engine: LLMEngine, prompt: list[int]) -> torch.Tensor:
    """All-position logits from one prefill through the paged cache (blocks 0..n)."""
    runner = engine.runner
    blocks = list(range(-(-len(prompt) // runner.block_size)))
    meta = AttentionMetadata.build([SeqSpan(blocks, 0, len(prompt))], runner.block_size, runner.device)
    with torch.inference_mode():
        hidden = runner.model(torch.tensor(prompt), torch.arange(len(prompt)), runner.kv_caches, meta)
        return runner.model.compute_logits(hidden).float()


def _hf_greedy(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_transformers(arch, tiny_checkpoint_factory):
    path = tiny_checkpoint_factory(arch)
    engine = LLMEngine(EngineConfig(model=str(path)))
    prompt = _prompt(37, seed=1)
    ours = _plinth_prefill_logits(engine, prompt)
    with torch.inference_mode():
        theirs = _hf_model(path)(torch.tensor([prompt])).logits[0].float()
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_continuation_matches_transformers(arch, tiny_checkpoint_factory):
    path = tiny_checkpoint_factory(arch)
    engine = LLMEngine(EngineConfig(model=str(path)))
    prompt = _prompt(21, seed=2)
    params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    [ours] = engine.generate([prompt], params)
    assert ours == _hf_greedy(_hf_model(path), prompt, 24)


def test_request_is_identical_alone_and_batched_with_15_others(tiny_checkpoint_factory):
    engine = LLMEngine(EngineConfig(model=str(tiny_checkpoint_factory("llama"))))
    prompts = [_prompt(5 + 7 * i, seed=100 + i) for i in range(16)]
    params = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
    batched = engine.generate(prompts, params)
    assert engine.stats().kv_blocks_used == 0
    for i in (0, 7, 15):
        assert engine.generate([prompts[i]], params) == [batched[i]]


def test_seeded_sampling_is_identical_alone_and_batched(tiny_checkpoint_factory):
    engine = LLMEngine(EngineConfig(model=str(tiny_checkpoint_factory("qwen2"))))
    prompt = _prompt(9, seed=7)
    params = SamplingParams(max_tokens=16, temperature=0.9, top_p=0.9, seed=1234, ignore_eos=True)
    alone = engine.generate([prompt], params)[0]
    noisy = SamplingParams(max_tokens=16, temperature=1.0, ignore_eos=True)
    ids = [engine.add_request(_prompt(4 + i, seed=i), noisy) for i in range(5)]
    target = engine.add_request(prompt, params)
    produced: dict[str, list[int]] = {i: [] for i in [*ids, target]}
    while engine.has_unfinished():
        for out in engine.step():
            produced[out.request_id].extend(out.new_token_ids)
    assert produced[target] == alone


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_loads_and_tracks_float32(dtype, tiny_checkpoint_factory):
    """bf16/fp16 weights and cache: logits stay close to float32 (tolerance 0.1: half precision)."""
    path = tiny_checkpoint_factory("qwen2")
    prompt = _prompt(29, seed=5)
    half = LLMEngine(EngineConfig(model=str(path), dtype=dtype))
    assert half.runner.dtype == getattr(torch, dtype)
    exact = _plinth_prefill_logits(LLMEngine(EngineConfig(model=str(path))), prompt)
    torch.testing.assert_close(_plinth_prefill_logits(half, prompt), exact, atol=0.1, rtol=0)
    assert half.generate([prompt], SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True))[0]
