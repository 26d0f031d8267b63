"""LoRA slot buffers cost no memory until an adapter is written, and work as before once one is."""

from __future__ import annotations

import torch

from plinth.engine.lora.layers import LoraBatch, LoraContext, LoraLinear


def _layer() -> LoraLinear:
    torch.manual_seed(0)
    ctx = LoraContext(max_rank=4, num_slots=8)
    return LoraLinear(16, [12, 6], bias=False, ctx=ctx, names=("q_proj", "k_proj"))


def _slot_bytes(layer: LoraLinear) -> int:
    return sum(b.untyped_storage().nbytes() for n, b in layer.named_buffers() if n.startswith("lora_"))


def test_slots_hold_no_storage_before_an_adapter_is_written():
    layer = _layer()
    assert layer.lora_a(0).shape == (8, 4, 16) and layer.lora_b(1).shape == (8, 6, 4)
    assert _slot_bytes(layer) <= 4 * 4  # one broadcast zero per buffer, not 8 slots x rank x width


def test_the_first_adapter_allocates_the_slots_and_applies_its_delta():
    layer = _layer()
    a, b = torch.randn(2, 16), torch.randn(12, 2)  # rank 2 < max rank 4, on q_proj only
    layer.set_slot(3, [(a, b, 0.5), None])
    assert _slot_bytes(layer) == 4 * (8 * 4 * 16 * 2 + 8 * 12 * 4 + 8 * 6 * 4)
    x = torch.randn(2, 16)
    base = torch.nn.functional.linear(x, layer.weight)
    layer.ctx.batch = LoraBatch.build([(0, 1, 3), (1, 1, None)], x.device)  # row 0 on slot 3, row 1 base
    y = layer(x)
    expected_q = base[0, :12] + 0.5 * (b @ (a @ x[0]))
    torch.testing.assert_close(y[0, :12], expected_q)
    torch.testing.assert_close(y[0, 12:], base[0, 12:])  # k_proj: not targeted
    torch.testing.assert_close(y[1], base[1])
    assert layer.lora_a(0)[[0, 1, 2, 4, 5, 6, 7]].abs().sum() == 0  # other slots stay zero
