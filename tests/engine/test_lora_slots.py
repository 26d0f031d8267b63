"""LoRA slot buffers cost no memory until an adapter is written, and work as before once one is; decode
tokens get the same delta on the dense and the gathered path."""

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
    assert layer.lora_a(0).shape == (8, 4, 16) and layer.lora_b(1).shape == (8, 4, 6)
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


def _filled_layer(slots: list[int]) -> tuple[LoraLinear, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    layer = _layer()
    weights = {}
    for slot in slots:
        a, b = torch.randn(3, 16), torch.randn(12, 3)  # rank 3 of max 4, on q_proj only
        layer.set_slot(slot, [(a, b, 2.0), None])
        weights[slot] = (a, b)
    return layer, weights


def _expected(
    layer: LoraLinear, weights: dict, x: torch.Tensor, token_slots: list[int | None]
) -> torch.Tensor:
    expected = torch.nn.functional.linear(x, layer.weight)
    for row, slot in enumerate(token_slots):
        if slot is not None:
            a, b = weights[slot]
            expected[row, :12] += 2.0 * (b @ (a @ x[row]))
    return expected


def test_decode_tokens_get_their_own_slots_delta_on_the_dense_and_the_gathered_path():
    layer, weights = _filled_layer([1, 2, 4, 5])
    x = torch.randn(6, 16)
    token_slots = [5, None, 1, 2, 5, 4]  # one decode token per row; row 1 on the base model
    spans = [(row, 1, slot) for row, slot in enumerate(token_slots)]
    for invariant in (False, True):
        batch = LoraBatch.build(spans, x.device, x.dtype, invariant=invariant)
        assert (batch.dense is None) == invariant  # slots 1-5: a span of 5 over 5 adapter tokens
        layer.ctx.batch = batch
        torch.testing.assert_close(layer(x), _expected(layer, weights, x, token_slots))


def test_a_span_wider_than_the_tokens_takes_the_gathered_path():
    layer, weights = _filled_layer([0, 7])
    x = torch.randn(2, 16)
    batch = LoraBatch.build([(0, 1, 0), (1, 1, 7)], x.device, x.dtype)
    assert batch.dense is None  # 8 slots' products for 2 tokens would cost more than gathering 2
    layer.ctx.batch = batch
    torch.testing.assert_close(layer(x), _expected(layer, weights, x, [0, 7]))


def test_decode_tokens_that_are_every_row_of_the_step_add_in_place():
    layer, weights = _filled_layer([2, 3])
    x = torch.randn(3, 16)
    batch = LoraBatch.build([(0, 1, 3), (1, 1, 2), (2, 1, 3)], x.device, x.dtype)
    assert batch.dense is not None and batch.dense.every_row
    layer.ctx.batch = batch
    torch.testing.assert_close(layer(x), _expected(layer, weights, x, [3, 2, 3]))


def test_prefill_chunks_side_by_side_match_one_by_one():
    layer, weights = _filled_layer([0, 5, 6])
    x = torch.randn(12, 16)
    chunks = [(0, 4, 6), (4, 3, None), (7, 5, 0)]  # rows 0-3 on slot 6, 4-6 base, 7-11 on slot 0
    token_slots = [6] * 4 + [None] * 3 + [0] * 5
    for invariant in (False, True):
        batch = LoraBatch.build(chunks, x.device, x.dtype, invariant=invariant)
        assert (batch.padded is None) == invariant and len(batch.segments) == 2 * invariant
        layer.ctx.batch = batch
        torch.testing.assert_close(layer(x), _expected(layer, weights, x, token_slots))
    even = LoraBatch.build([(0, 4, 6), (4, 4, 0)], x.device, x.dtype)
    assert even.padded is not None and even.padded.valid is None  # equal chunks: nothing to drop
    assert even.padded.slot_range is None  # slots 6, 0: gathered
    layer.ctx.batch = even
    torch.testing.assert_close(layer(x[:8]), _expected(layer, weights, x[:8], [6] * 4 + [0] * 4))
    in_a_row = LoraBatch.build([(0, 4, 5), (4, 4, 6)], x.device, x.dtype)
    assert in_a_row.padded is not None and in_a_row.padded.slot_range == (5, 7)  # a view of slots 5, 6
    layer.ctx.batch = in_a_row
    torch.testing.assert_close(layer(x[:8]), _expected(layer, weights, x[:8], [5] * 4 + [6] * 4))
    uneven = LoraBatch.build([(0, 20, 6), (20, 2, 0), (22, 2, 6)], x.device, x.dtype)
    assert uneven.padded is None and len(uneven.segments) == 3  # 60 padded rows for 24: one by one


def _half_ulps(y: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|y - exact| in halves of a bf16 unit in the last place at ``exact``: at most 1 for a rounding."""
    binade = torch.floor(torch.log2(exact.abs().clamp_min(1e-30)))
    return (y.double() - exact).abs() / torch.exp2(binade - 8)


def test_float32_products_round_a_bf16_prefill_once():
    """Where bf16 matmuls are slow (an AVX2 CPU) prefill products run in float32: each output is its
    bf16 base plus the exact delta, rounded once; bf16 products round the rank-sized inner product too."""
    layer, weights = _filled_layer([0, 5, 6])
    layer.to(torch.bfloat16)
    x = torch.randn(12, 16).to(torch.bfloat16)
    base = torch.nn.functional.linear(x, layer.weight).double()
    exact = base.clone()
    token_slots = [6] * 4 + [None] * 4 + [0] * 4
    for row, slot in enumerate(token_slots):
        if slot is not None:
            a, b = (w.to(torch.bfloat16).double() for w in weights[slot])
            exact[row, :12] += 2.0 * (b @ (a @ x[row].double()))
    chunks = [(0, 4, 6), (4, 4, None), (8, 4, 0)]
    for invariant in (False, True):  # the padded path, then one chunk at a time
        layer.ctx.float32_products = True
        layer.ctx.batch = LoraBatch.build(chunks, x.device, x.dtype, invariant=invariant)
        assert _half_ulps(layer(x), exact).max() <= 1.01
        layer.ctx.float32_products = False
        assert _half_ulps(layer(x), exact).max() > 1.01
