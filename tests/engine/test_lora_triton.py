"""The Triton LoRA kernels (``lora/triton_ops.py``), run on CPU tensors by Triton's interpreter: each
token gets its own slot's delta, whatever mix of decode tokens, prefill chunks and base tokens a step
holds, and a LoRA layer fed a grouped batch gives what the torch paths give."""

from __future__ import annotations

import pytest
import torch

from plinth.engine.lora import triton_ops as ops
from plinth.engine.lora.layers import LoraBatch, LoraContext, LoraLinear

# (first row, tokens, slot or None): decode tokens of one slot apart and together, a base token, a
# prefill chunk longer than a program's 16 rows, one shorter, and a slot that two requests share
SPANS = [(0, 1, 2), (1, 1, None), (2, 1, 2), (3, 1, 4), (4, 17, 1), (21, 9, 2), (30, 2, None)]
ROWS = 32


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the interpreter on a CPU


def _reference(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
    """``out`` plus each adapter token's ``x · Aᵀ · Bt`` of its own slot, in float64."""
    expected = out.double().clone()
    for start, count, slot in SPANS:
        if slot is not None:
            rows = slice(start, start + count)
            expected[rows] += (x[rows].double() @ a[slot].double().T) @ bt[slot].double()
    return expected


def test_grouping_puts_each_slots_rows_together_in_slot_order() -> None:
    grouped = ops.Grouped.build(SPANS, DEVICE)
    assert grouped.slots.tolist() == [1, 2, 4]
    assert grouped.starts.tolist() == [0, 17, 17 + 11, 17 + 11 + 1]
    assert grouped.order.tolist() == [*range(4, 21), 0, 2, *range(21, 30), 3]
    assert grouped.longest == 17
    assert ops.Grouped.build([(0, 3, None), (3, 1, None)], DEVICE) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_each_token_gets_its_own_slots_delta_and_nothing_else_changes(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    slots, rank, inputs, outputs = 5, 8, 40, 50  # rank and widths off the kernels' 16-wide tiles
    a = torch.randn(slots, rank, inputs, generator=gen).to(DEVICE, dtype)
    bt = torch.randn(slots, rank, outputs, generator=gen).to(DEVICE, dtype) / 8
    x = torch.randn(ROWS, inputs, generator=gen).to(DEVICE, dtype)
    y = torch.randn(ROWS, outputs + 7, generator=gen).to(DEVICE, dtype)
    out = y[:, 3 : 3 + outputs]  # a fused projection's columns: rows strided
    before = y.clone()
    expected = _reference(out, x, a, bt)

    ops.add_(out, x, a, bt, ops.Grouped.build(SPANS, x.device))

    # float32 products and sums, rounded once to the output's dtype: in float16 within its ulp, in
    # float32 within the sums' own rounding
    tolerance = {torch.float16: torch.finfo(torch.float16).eps, torch.float32: 1e-5}[dtype]
    assert ((out.double() - expected).abs() <= tolerance * expected.abs().clamp(min=1.0)).all()
    assert torch.equal(y[:, :3], before[:, :3]) and torch.equal(y[:, 3 + outputs :], before[:, 3 + outputs :])
    assert torch.equal(y[1], before[1]) and torch.equal(y[30:], before[30:])  # base tokens


def test_a_lora_layer_fed_a_grouped_batch_matches_the_torch_paths() -> None:
    torch.manual_seed(0)
    ctx = LoraContext(max_rank=8, num_slots=6)
    layer = LoraLinear(48, [32, 16, 16], bias=False, ctx=ctx, names=("q_proj", "k_proj", "v_proj")).to(DEVICE)
    for slot, rank in ((1, 8), (2, 4), (4, 2)):  # q and v targeted, k by none
        q = (torch.randn(rank, 48, device=DEVICE), torch.randn(32, rank, device=DEVICE), 0.5)
        v = (torch.randn(rank, 48, device=DEVICE), torch.randn(16, rank, device=DEVICE), 2.0)
        layer.set_slot(slot, [q, None, v])
    x = torch.randn(ROWS, 48, device=DEVICE)

    ctx.batch = LoraBatch.build(SPANS, x.device, x.dtype, invariant=True)  # the torch paths, chunk by chunk
    assert ctx.batch.grouped is None
    expected = layer(x)
    ctx.batch = LoraBatch(None, None, [], grouped=ops.Grouped.build(SPANS, x.device))
    got = layer(x)

    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, torch.nn.functional.linear(x, layer.weight))  # the adapters did add
