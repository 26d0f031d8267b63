"""Plinth's LoRA decode operator (``torch.ops.plinth.lora_add_``): each token's delta from its own slot,
to one bf16 rounding of the exact sum, for ranks and widths that are and are not multiples of the
kernel's blocks, into a column slice of a fused output; the engine's bf16 decode tokens take it and
agree with the torch paths; bad operands are refused."""

from __future__ import annotations

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter

from plinth.engine import EngineConfig, LLMEngine, native
from plinth.engine.lora import TARGETS
from plinth.engine.lora import layers as lora_layers
from plinth.engine.lora.layers import LoraBatch, LoraContext, LoraLinear

pytestmark = pytest.mark.skipif(not native.has("lora_add_"), reason="built for CPUs with AVX512-BF16 or AVX2")
BF16_STEP = 2.0**-8  # one rounding to bf16: at most half of 2^-7 relative


def _operands(rank: int, fan_in: int, width: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = (torch.randn(6, rank, fan_in, generator=gen) * 0.1).bfloat16()
    bt = (torch.randn(6, rank, width, generator=gen) * 0.1).bfloat16()
    x = torch.randn(7, fan_in, generator=gen).bfloat16()
    fused = torch.randn(7, width + 24, generator=gen).bfloat16()  # the sub-projection is columns 8..
    return a, bt, x, fused


@pytest.mark.parametrize(
    ("rank", "fan_in", "width"), [(16, 768, 256), (20, 100, 200), (3, 64, 300), (8, 2048, 16)]
)
def test_each_token_gets_its_own_slots_delta_rounded_once(rank, fan_in, width) -> None:
    a, bt, x, fused = _operands(rank, fan_in, width)
    before = fused.clone()
    out = fused[:, 8 : 8 + width]
    rows, slots = torch.tensor([0, 2, 3, 6]), torch.tensor([5, 1, 5, 0])
    torch.ops.plinth.lora_add_(out, x, rows, slots, a, bt)
    want = before[:, 8 : 8 + width].double()
    for row, slot in zip(rows.tolist(), slots.tolist(), strict=True):
        want[row] += (a[slot].double() @ x[row].double()) @ bt[slot].double()
    err = (out.double() - want).abs()
    assert bool((err <= BF16_STEP * want.abs() + 1e-4).all()), float(err.max())
    untouched = [1, 4, 5]
    assert torch.equal(fused[untouched], before[untouched])  # rows without an adapter token
    assert torch.equal(fused[:, :8], before[:, :8]) and torch.equal(
        fused[:, 8 + width :], before[:, 8 + width :]
    )


def test_bad_operands_are_refused_with_a_reason() -> None:
    a, bt, x, fused = _operands(4, 64, 32)
    out, rows = fused[:, :32], torch.tensor([0])
    with pytest.raises(RuntimeError, match="out of range"):
        torch.ops.plinth.lora_add_(out, x, rows, torch.tensor([6]), a, bt)
    with pytest.raises(RuntimeError, match="out of range"):
        torch.ops.plinth.lora_add_(out, x, torch.tensor([7]), torch.tensor([0]), a, bt)
    with pytest.raises(RuntimeError, match="shapes disagree"):
        torch.ops.plinth.lora_add_(fused[:, :31], x, rows, torch.tensor([0]), a, bt)
    with pytest.raises(RuntimeError, match="bf16"):
        torch.ops.plinth.lora_add_(out.float(), x.float(), rows, torch.tensor([0]), a, bt)


def test_bf16_decode_tokens_take_it_and_agree_with_the_gathered_path(monkeypatch) -> None:
    torch.manual_seed(0)
    ctx = LoraContext(max_rank=16, num_slots=4)
    layer = LoraLinear(96, [64, 32], bias=False, ctx=ctx, names=("q_proj", "k_proj")).bfloat16()
    for slot in range(4):
        layer.set_slot(slot, [(torch.randn(16, 96) * 0.1, torch.randn(64, 16) * 0.1, 2.0), None])
    x = torch.randn(5, 96).bfloat16()
    spans = [(row, 1, slot) for row, slot in enumerate([2, None, 0, 2, 3])]
    ctx.batch = LoraBatch.build(spans, x.device, torch.bfloat16)
    assert ctx.batch.native and ctx.batch.dense is None
    got = layer(x)
    monkeypatch.setattr(lora_layers, "_native", lambda device, dtype: False)
    ctx.batch = LoraBatch.build(spans, x.device, torch.bfloat16, invariant=True)  # gathered
    assert not ctx.batch.native
    want = layer(x)
    assert torch.equal(got[:, 64:], want[:, 64:]) and torch.equal(got[1], want[1])
    # the torch path rounds the shrunk sums and the delta to bf16 before adding; the operator once
    torch.testing.assert_close(got.float(), want.float(), atol=0.05, rtol=2**-6)


def test_a_bf16_engine_serves_the_same_tokens_on_it_as_on_the_torch_paths(
    tiny_checkpoint_factory, tmp_path, monkeypatch
) -> None:
    base = tiny_checkpoint_factory("llama")
    specs = {"qv": (8, ("q_proj", "v_proj")), "all": (16, TARGETS)}
    paths = {name: make_peft_adapter(base, tmp_path / name, seed=i + 1, r=r, alpha=2 * r, targets=t)
             for i, (name, (r, t)) in enumerate(specs.items())}  # fmt: skip
    gen = torch.Generator().manual_seed(3)
    prompts = {
        name: torch.randint(3, 200, (9 + 4 * i,), generator=gen).tolist()
        for i, name in enumerate([None, *specs])
    }

    def run() -> dict:
        config = EngineConfig(
            model=str(base), dtype="bfloat16", enable_lora=True, max_loras=2, max_lora_rank=16
        )
        engine = LLMEngine(config)
        for name, path in paths.items():
            engine.add_lora(name, path)
        return dict(
            zip(prompts, greedy_tokens_and_logprobs(engine, [*prompts.values()], 6, [*prompts]), strict=True)
        )

    with torch.profiler.profile() as prof:
        got = run()
    assert any(e.key == "plinth::lora_add_" for e in prof.key_averages())  # decode steps took the operator
    monkeypatch.setattr(lora_layers, "_native", lambda device, dtype: False)
    want = run()
    for name in prompts:
        assert got[name][0] == want[name][0], name
        torch.testing.assert_close(torch.tensor(got[name][1]), torch.tensor(want[name][1]), atol=0.05, rtol=0)
