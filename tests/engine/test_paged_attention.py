"""Paged attention reads a run of consecutive blocks in place and gives the gathered path's bits."""

from __future__ import annotations

import pytest
import torch

from plinth.engine.attention import AttentionMetadata, SeqSpan, paged_attention

BLOCK, KV_HEADS, HEADS, DIM = 4, 2, 4, 8


def _attend(tables: list[list[int]], starts: list[int], num_new: list[int], dtype: torch.dtype, gather: bool):
    """Write a step's K/V for requests with these block tables and attend; ``gather`` forces the copy."""
    gen = torch.Generator().manual_seed(0)
    slots = 16 * BLOCK
    k_cache = torch.randn(slots, KV_HEADS, DIM, generator=gen).to(dtype)
    v_cache = torch.randn(slots, KV_HEADS, DIM, generator=gen).to(dtype)
    spans = [SeqSpan(t, s, n) for t, s, n in zip(tables, starts, num_new, strict=True)]
    meta = AttentionMetadata.build(spans, BLOCK, torch.device("cpu"))
    if gather:
        for group in meta.groups:
            group.first_block = None
    rows = sum(num_new)
    q = torch.randn(rows, HEADS, DIM, generator=gen).to(dtype)
    k, v = (torch.randn(rows, KV_HEADS, DIM, generator=gen).to(dtype) for _ in range(2))
    return meta, paged_attention(q, k, v, k_cache, v_cache, meta, DIM**-0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("tables", "starts", "num_new"),
    [
        ([[5, 6, 7]], [9], [1]),  # one decode over three consecutive blocks
        ([[3, 4]], [0], [7]),  # one prefill chunk
        ([[2, 3], [4, 5]], [6, 5], [1, 1]),  # two decodes whose tables follow each other
    ],
)
def test_consecutive_blocks_are_read_in_place_with_the_same_result(tables, starts, num_new, dtype) -> None:
    meta, in_place = _attend(tables, starts, num_new, dtype, gather=False)
    assert [group.first_block for group in meta.groups] == [tables[0][0]]
    _, gathered = _attend(tables, starts, num_new, dtype, gather=True)
    assert torch.equal(in_place, gathered)


def test_scattered_blocks_are_gathered(monkeypatch: pytest.MonkeyPatch) -> None:
    meta, _ = _attend([[5, 2, 9]], [9], [1], torch.float32, gather=False)
    assert meta.groups[0].first_block is None
    copies: list[torch.Tensor] = []
    real = torch.Tensor.index_select
    monkeypatch.setattr(torch.Tensor, "index_select", lambda t, *a: copies.append(t) or real(t, *a))
    _attend([[5, 2, 9]], [9], [1], torch.float32, gather=False)
    _attend([[5, 6, 7]], [9], [1], torch.float32, gather=False)
    assert len(copies) == 2  # K and V of the scattered table only
