"""Continuous batching behaviour: prefix reuse, chunked prefill, preemption, abort, limits."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import torch

from plinth.engine import (
    BATCH_PRIORITY,
    INTERACTIVE_PRIORITY,
    AsyncLLMEngine,
    EngineConfig,
    LLMEngine,
    PromptTooLongError,
    SamplingParams,
)

GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


def _prompt(n: int, seed: int) -> list[int]:
    return torch.randint(3, 500, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.fixture(scope="module")
def reference(tiny_checkpoint_factory):
    """Outputs of an unconstrained engine, to compare constrained ones against."""
    path = str(tiny_checkpoint_factory("llama"))
    prompts = [_prompt(30 + 11 * i, seed=i) for i in range(6)]
    return path, prompts, LLMEngine(EngineConfig(model=path)).generate(prompts, GREEDY)


def test_shared_prefix_is_reused_and_gives_the_same_tokens(reference):
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path, block_size=8))
    system = _prompt(40, seed=99)
    first = engine.generate([system + prompts[0]], GREEDY)
    rid = engine.add_request(system + prompts[0], GREEDY)
    outputs = []
    while engine.has_unfinished():
        outputs += [o for o in engine.step() if o.request_id == rid]
    assert outputs[0].num_cached_tokens == (len(system + prompts[0]) // 8) * 8  # every full block
    assert [t for o in outputs for t in o.new_token_ids] == first[0]


def test_chunked_prefill_gives_the_same_tokens(reference):
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path, max_num_batched_tokens=16))
    assert engine.generate(prompts, GREEDY) == expected


def test_preemption_when_the_cache_is_full_gives_the_same_tokens(reference):
    path, prompts, expected = reference
    engine = LLMEngine(
        EngineConfig(model=path, block_size=8, kv_cache_blocks=16, enable_prefix_caching=False)
    )
    assert engine.generate(prompts, GREEDY) == expected
    assert engine.stats().num_preemptions > 0
    assert engine.stats().kv_blocks_used == 0


def test_max_num_seqs_limits_the_running_batch(reference):
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path, max_num_seqs=2))
    for p in prompts:
        engine.add_request(p, GREEDY)
    engine.step()
    assert engine.stats().num_running == 2 and engine.stats().num_waiting == len(prompts) - 2


def test_prompt_longer_than_max_model_len_is_rejected_with_both_numbers(reference):
    path, _, _ = reference
    engine = LLMEngine(EngineConfig(model=path, max_model_len=64))
    with pytest.raises(PromptTooLongError) as err:
        engine.add_request(_prompt(60, seed=1), SamplingParams(max_tokens=10))
    assert "64" in str(err.value) and "60" in str(err.value)
    assert not engine.has_unfinished()


def test_abort_frees_the_cache_and_reports_abort(reference):
    path, prompts, _ = reference
    engine = LLMEngine(EngineConfig(model=path, enable_prefix_caching=False))
    rid = engine.add_request(prompts[3], SamplingParams(max_tokens=100, ignore_eos=True))
    engine.step()
    assert engine.stats().kv_blocks_used > 0
    out = engine.abort(rid)
    assert out is not None and out.finish_reason == "abort" and out.finished
    assert engine.stats().kv_blocks_used == 0 and not engine.has_unfinished()


def test_length_and_stop_token_finish_reasons(reference):
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path))
    stop_at = expected[0][4]
    rid = engine.add_request(
        prompts[0], SamplingParams(max_tokens=12, temperature=0, stop_token_ids=(stop_at,))
    )
    outs = []
    while engine.has_unfinished():
        outs += engine.step()
    tokens = [t for o in outs for t in o.new_token_ids]
    assert outs[-1].request_id == rid and outs[-1].finish_reason == "stop"
    assert tokens == expected[0][: expected[0].index(stop_at) + 1]
    rid = engine.add_request(prompts[0], SamplingParams(max_tokens=3, temperature=0, ignore_eos=True))
    outs = []
    while engine.has_unfinished():
        outs += engine.step()
    assert outs[-1].finish_reason == "length" and outs[-1].num_output_tokens == 3


async def test_async_engine_streams_concurrently_and_cancel_frees(reference):
    path, prompts, expected = reference
    aengine = AsyncLLMEngine(LLMEngine(EngineConfig(model=path, enable_prefix_caching=False)))

    async def collect(prompt):
        return [t async for out in aengine.generate(prompt, GREEDY) for t in out.new_token_ids]

    try:
        results = await asyncio.gather(*(collect(p) for p in prompts))
        assert results == expected
        stream = aengine.generate(prompts[0], SamplingParams(max_tokens=500, ignore_eos=True))
        await anext(stream)
        await stream.aclose()
        for _ in range(100):
            if not aengine.engine.has_unfinished():
                break
            await asyncio.sleep(0.02)
        assert aengine.engine.stats().kv_blocks_used == 0
    finally:
        aengine.shutdown()


def test_weightless_checkpoint_needs_dummy_load_format(tmp_path):
    """1b/7b presets are written without weights, for ``--load-format dummy`` benchmarks."""
    from plinth.engine.checkpoint import init_random

    path = init_random("llama", "tiny", tmp_path / "weightless", write_weights=False)
    with pytest.raises(ValueError, match="load-format dummy"):
        LLMEngine(EngineConfig(model=str(path)))
    engine = LLMEngine(EngineConfig(model=str(path), load_format="dummy"))
    assert len(engine.generate([_prompt(8, seed=3)], GREEDY)[0]) == GREEDY.max_tokens


def test_a_failing_request_fails_alone(reference, monkeypatch):
    """A batch whose computation raises is retried request by request: only the culprit fails."""
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path))
    run = engine.runner.run
    poisoned = engine.add_request(prompts[1], GREEDY)
    ids = {engine.add_request(p, GREEDY): i for i, p in enumerate(prompts) if i != 1}

    def flaky(batch, interrupt=None):
        if any(item.seq.request_id == poisoned for item in batch):
            raise RuntimeError("boom")
        return run(batch, interrupt)

    monkeypatch.setattr(engine.runner, "run", flaky)
    produced: dict[str, list[int]] = {}
    reasons: dict[str, str | None] = {}
    while engine.has_unfinished():
        for out in engine.step():
            produced.setdefault(out.request_id, []).extend(out.new_token_ids)
            reasons[out.request_id] = out.finish_reason
    assert reasons[poisoned] == "error" and engine.stats().kv_blocks_used == 0
    assert {rid: produced[rid] for rid in ids} == {rid: expected[i] for rid, i in ids.items()}


def test_batch_steps_given_up_for_a_newcomer_change_no_token(reference):
    """Batch-only steps interrupted after their first layer (K/V half written, prefill chunks included)
    rerun to the same greedy tokens; steps holding an interactive request are never interrupted."""
    path, prompts, expected = reference
    engine = LLMEngine(EngineConfig(model=path, max_num_batched_tokens=16))
    batch = dataclasses.replace(GREEDY, priority=BATCH_PRIORITY)
    ids = {engine.add_request(p, batch): i for i, p in enumerate(prompts[1:], start=1)}
    interactive = engine.add_request(prompts[0], dataclasses.replace(GREEDY, priority=INTERACTIVE_PRIORITY))
    asked = {"steps": 0, "layers": 0}

    def arrived() -> int:  # an interactive request "arrives" at the second layer of every other step
        asked["layers"] += 1
        return INTERACTIVE_PRIORITY if asked["steps"] % 2 == 0 and asked["layers"] == 2 else 1 << 30

    produced: dict[str, list[int]] = {}
    while engine.has_unfinished():
        asked["steps"], asked["layers"] = asked["steps"] + 1, 0
        for out in engine.step(arrived):
            produced.setdefault(out.request_id, []).extend(out.new_token_ids)
    assert engine.stats().num_interrupted_steps > 5
    assert produced[interactive] == expected[0]
    assert {rid: produced[rid] for rid in ids} == {rid: expected[i] for rid, i in ids.items()}
    assert engine.stats().kv_blocks_used == 0
