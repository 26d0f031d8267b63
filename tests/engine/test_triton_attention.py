"""The Triton paged decode attention (``engine/triton_attention.py``), run on CPU tensors by Triton's
interpreter (``tests/conftest.py`` sets it where there is no GPU): each request's query attends over
exactly its own context, read through its block table, whatever the other requests' lengths."""

from __future__ import annotations

import pytest
import torch

from plinth.engine import triton_attention
from plinth.engine.attention import AttentionMetadata, SeqSpan

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _reference(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, tables: list[list[int]], lens: list[int],
    block_size: int, scale: float,
) -> torch.Tensor:  # fmt: skip
    """Softmax attention in float64 over each request's positions, gathered slot by slot."""
    heads, kv_heads = q.shape[1], k_cache.shape[1]
    out = torch.empty(q.shape, dtype=torch.float64)
    for r, (table, length) in enumerate(zip(tables, lens, strict=True)):
        slots = [table[p // block_size] * block_size + p % block_size for p in range(length)]
        keys = k_cache[slots].double().repeat_interleave(heads // kv_heads, dim=1)  # [ctx, heads, D]
        values = v_cache[slots].double().repeat_interleave(heads // kv_heads, dim=1)
        probs = torch.softmax(torch.einsum("hd,chd->hc", q[r].double(), keys) * scale, dim=-1)
        out[r] = torch.einsum("hc,chd->hd", probs, values)
    return out


@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim", "block_size", "dtype"),
    [
        (8, 2, 64, 16, torch.float32),  # GQA groups of 4, one padded query tile
        (6, 6, 80, 32, torch.float32),  # no GQA; a head width that is not a power of two
        (8, 2, 64, 16, torch.float16),
    ],
)
def test_each_request_attends_over_its_own_blocks(
    heads: int, kv_heads: int, dim: int, block_size: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(heads + dim)
    lens = [1, 15, 16, 17, 300, 600]  # within a page, page edges, and two and three splits of 256
    blocks = 80
    free = torch.randperm(blocks - 1, generator=gen).add(1).tolist()  # shuffled: nothing in place
    tables = [[free.pop() for _ in range(-(-n // block_size))] for n in lens]
    k_cache = torch.randn(blocks * block_size, kv_heads, dim, generator=gen).to(DEVICE, dtype)
    v_cache = torch.randn(blocks * block_size, kv_heads, dim, generator=gen).to(DEVICE, dtype)
    q = torch.randn(len(lens), heads, dim, generator=gen).to(DEVICE, dtype)
    scale = dim**-0.5
    meta = AttentionMetadata.build(
        [SeqSpan(table, n - 1, 1) for table, n in zip(tables, lens, strict=True)], block_size, DEVICE
    )
    tables_t, lens_t = meta.groups[0].block_tables, meta.groups[0].context_lens
    assert lens_t is not None

    out = triton_attention.decode(q, k_cache, v_cache, tables_t, lens_t, block_size, scale)

    expected = _reference(q.cpu(), k_cache.cpu(), v_cache.cpu(), tables, lens, block_size, scale)
    tolerance = {torch.float32: 1e-5, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(out.cpu().double(), expected, rtol=tolerance, atol=tolerance)


def test_the_kernels_take_power_of_two_pages_from_16_positions() -> None:
    q = torch.empty(1, 8, 64)
    assert triton_attention.supports(q, 16) and triton_attention.supports(q, 256)
    assert not triton_attention.supports(q, 8)  # a page is a tile of scores: 16 rows at least
    assert not triton_attention.supports(q, 24)
    assert not triton_attention.supports(torch.empty(1, 8, 512), 16)
