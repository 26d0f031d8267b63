"""Which KV cache blocks a sequence gets under each ``kv_cache_policy``: ``keep`` takes never-used blocks
first (every finished prefix stays cached until the cache is full), ``lean`` reuses freed ones first.

The CPU cache's pages become resident as they are first written, so the blocks ever handed out are the
server's resident cache: under ``lean`` a run of one stream at a time stays on the same blocks."""

from __future__ import annotations

import pytest

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.block_manager import BlockManager
from plinth.engine.sampler import SamplingState
from plinth.engine.sequence import Sequence

BLOCK = 4


def _seq(name: str, ids: list[int]) -> Sequence:
    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    return Sequence(name, ids, params, SamplingState.create(params, ids, ()))


def _run(blocks: BlockManager, name: str, ids: list[int]) -> Sequence:
    """Allocate ``ids``, compute them all (publishing their full blocks) and free them; the sequence,
    with the blocks it had in ``block_table`` and its prefix hit in ``num_cached_tokens``."""
    seq = _seq(name, ids)
    assert blocks.allocate(seq)
    table = list(seq.block_table)
    seq.num_computed = seq.num_tokens
    blocks.register_full_blocks(seq)
    blocks.free_sequence(seq)
    seq.block_table = table
    return seq


def _distinct(i: int) -> list[int]:
    return [100 * i + t for t in range(3 * BLOCK)]  # three full blocks, no prefix shared with another i


@pytest.mark.parametrize(("lean", "written"), [(True, 3), (False, 30)])
def test_one_request_at_a_time_writes_one_requests_blocks_when_lean_and_new_ones_when_keeping(
    lean: bool, written: int
) -> None:
    blocks = BlockManager(64, BLOCK, reuse_freed_first=lean)
    touched: set[int] = set()
    for i in range(10):
        touched |= set(_run(blocks, f"r{i}", _distinct(i)).block_table)
    assert len(touched) == written
    assert blocks.num_free_blocks == 64 and blocks.num_used_blocks == 0


@pytest.mark.parametrize("lean", [True, False])
def test_every_block_is_handed_out_once_before_the_cache_is_full(lean: bool) -> None:
    blocks = BlockManager(8, BLOCK, reuse_freed_first=lean)
    first = _run(blocks, "a", list(range(2 * BLOCK)))
    held = _seq("held", list(range(50, 50 + 3 * BLOCK)))
    assert blocks.allocate(held) and blocks.num_free_blocks == 5
    # lean: the two freed blocks, then one never used; keep: three never used
    assert len(set(first.block_table) & set(held.block_table)) == (2 if lean else 0)
    assert not blocks.allocate(_seq("too long", list(range(200, 200 + 6 * BLOCK))))
    assert blocks.num_free_blocks == 5  # a refused allocation takes nothing
    rest = _seq("rest", list(range(300, 300 + 5 * BLOCK)))
    assert blocks.allocate(rest) and blocks.num_free_blocks == 0
    assert sorted(held.block_table + rest.block_table) == list(range(8))


@pytest.mark.parametrize("lean", [True, False])
def test_lean_evicts_the_prefix_freed_longest_ago_and_keep_holds_it(lean: bool) -> None:
    blocks = BlockManager(4, BLOCK, reuse_freed_first=lean)
    hot, cold = list(range(1, 1 + BLOCK)), list(range(500, 500 + BLOCK))  # one full block each
    running = [_seq("cold", cold), _seq("hot", hot)]  # at once: two blocks written
    for seq in running:
        assert blocks.allocate(seq)
        seq.num_computed = seq.num_tokens
        blocks.register_full_blocks(seq)
    for seq in running:
        blocks.free_sequence(seq)  # cold first: the least recently freed
    assert _run(blocks, "hot again", hot).num_cached_tokens > 0  # a hit moves it to the back
    _run(blocks, "other", list(range(900, 900 + BLOCK)))  # lean: takes cold's block; keep: a new one
    assert _run(blocks, "hot third", hot).num_cached_tokens > 0
    assert (_run(blocks, "cold again", cold).num_cached_tokens > 0) is not lean


def test_keep_holds_every_finished_prefix_while_never_used_blocks_remain() -> None:
    blocks = BlockManager(64, BLOCK, reuse_freed_first=False)
    for i in range(10):
        _run(blocks, f"r{i}", _distinct(i))
    assert all(_run(blocks, f"again {i}", _distinct(i)).num_cached_tokens > 0 for i in range(10))


def test_the_engine_takes_the_policy_from_its_config_and_refuses_an_unknown_one(
    tiny_checkpoint_factory,
) -> None:
    path = str(tiny_checkpoint_factory("llama"))
    greedy = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    prompts = [_distinct(i) for i in range(4)]
    engines = {p: LLMEngine(EngineConfig(model=path, kv_cache_policy=p)) for p in ("keep", "lean")}
    assert (
        engines["lean"].block_manager.reuse_freed_first
        and not engines["keep"].block_manager.reuse_freed_first
    )
    outputs = {p: [e.generate([prompt], greedy)[0] for prompt in prompts] for p, e in engines.items()}
    assert outputs["lean"] == outputs["keep"]  # the policy moves blocks, never tokens
    with pytest.raises(ValueError, match="kv_cache_policy"):
        LLMEngine(EngineConfig(model=path, kv_cache_policy="greedy"))


def test_lean_under_preemption_and_shared_prefixes_gives_keeps_tokens(tiny_checkpoint_factory) -> None:
    """A cache too small for the batch (sequences preempted and recomputed) and prompts sharing a prefix:
    which free block comes first must not change a token."""
    path = str(tiny_checkpoint_factory("llama"))
    greedy = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
    shared = _distinct(7)
    prompts = [shared + _distinct(i)[: 5 + 3 * i] for i in range(6)]
    outputs = {}
    for policy in ("keep", "lean"):
        config = EngineConfig(model=path, block_size=8, kv_cache_blocks=16, kv_cache_policy=policy)
        engine = LLMEngine(config)
        outputs[policy] = engine.generate(prompts, greedy)
        assert engine.scheduler.num_preemptions > 0  # the case this test is for
        assert engine.block_manager.num_used_blocks == 0  # every block back once all finished
    assert outputs["lean"] == outputs["keep"]


def test_the_setting_reaches_the_engine_config_and_a_wrong_value_is_refused(tmp_path) -> None:
    from pydantic import ValidationError

    from plinth.config import Settings

    assert Settings(data_dir=tmp_path).engine_config("m").kv_cache_policy == "keep"
    assert Settings(data_dir=tmp_path, kv_cache_policy="lean").engine_config("m").kv_cache_policy == "lean"
    with pytest.raises(ValidationError, match="kv_cache_policy"):
        Settings(data_dir=tmp_path, kv_cache_policy="greedy")
