"""Plinth's decode attention (``torch.ops.plinth.decode_attention``): one operator writes a decode step's
K/V into the paged cache and attends, with torch's path's cache and its results to a rounding, for
grouped and plain heads, scattered and consecutive blocks, bf16 and fp16; bad operands are refused."""

from __future__ import annotations

import math

import pytest
import torch

import plinth.engine.attention as attention
from plinth.engine import native
from plinth.engine.attention import AttentionMetadata, SeqSpan, paged_attention

pytestmark = pytest.mark.skipif(not native.has("decode_attention"), reason="built for CPUs with AVX-512")
SPANS = [  # decodes: a long context over consecutive blocks, one over scattered blocks, a first token
    SeqSpan(block_table=[5, 6, 7, 8, 9, 10, 11], start=100, num_new=1),
    SeqSpan(block_table=[40, 2, 33], start=37, num_new=1),
    SeqSpan(block_table=[1], start=0, num_new=1),
]


def _step(
    heads: int, kv_heads: int, dim: int, block: int, dtype: torch.dtype, native_path: bool, monkeypatch
):
    gen = torch.Generator().manual_seed(heads * dim + block)
    k_cache, v_cache = (torch.randn(64 * block, kv_heads, dim, generator=gen).to(dtype) for _ in range(2))
    q = torch.randn(len(SPANS), heads, dim, generator=gen).to(dtype)
    k, v = (torch.randn(len(SPANS), kv_heads, dim, generator=gen).to(dtype) for _ in range(2))
    meta = AttentionMetadata.build(SPANS, block, torch.device("cpu"))
    with monkeypatch.context() as patch:
        if not native_path:
            patch.setattr(attention, "_native_decode", lambda q: False)
        else:
            assert attention._native_decode(q)
        out = paged_attention(q, k, v, k_cache, v_cache, meta, 1 / math.sqrt(dim))
    return out, k_cache, v_cache


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim", "block"), [(9, 3, 64, 16), (4, 4, 32, 16), (8, 2, 128, 32)]
)
def test_it_writes_the_cache_and_attends_as_torchs_path(
    heads, kv_heads, dim, block, dtype, monkeypatch
) -> None:
    got, got_k, got_v = _step(heads, kv_heads, dim, block, dtype, True, monkeypatch)
    want, want_k, want_v = _step(heads, kv_heads, dim, block, dtype, False, monkeypatch)
    assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
    assert got.shape == want.shape == (len(SPANS), heads, dim) and got.dtype == dtype
    # float32 sums in another order, then one rounding to the dtype: within one unit in the last place
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    assert bool(((got.float() - want.float()).abs() <= ulp * want.float().abs().clamp(min=1)).all())


def test_bad_operands_are_refused_with_a_reason() -> None:
    cache = torch.zeros(4 * 16, 2, 16, dtype=torch.bfloat16)
    q, kv = torch.zeros(1, 4, 16, dtype=torch.bfloat16), torch.zeros(1, 2, 16, dtype=torch.bfloat16)
    slots, lens = torch.tensor([3]), torch.tensor([4])

    def call(tables: torch.Tensor, lens: torch.Tensor = lens, q: torch.Tensor = q) -> None:
        torch.ops.plinth.decode_attention(q, kv, kv, cache, cache.clone(), slots, tables, lens, 16, 0.25)

    call(torch.tensor([[0]]))  # well formed
    with pytest.raises(RuntimeError, match="block 9 out of range"):
        call(torch.tensor([[9]]))
    with pytest.raises(RuntimeError, match="has context 40"):
        call(torch.tensor([[0, 1]]), torch.tensor([40]))
    with pytest.raises(RuntimeError, match="multiple of 16"):
        call(torch.tensor([[0]]), q=torch.zeros(1, 4, 8, dtype=torch.bfloat16))
    with pytest.raises(RuntimeError, match="bfloat16 or float16"):
        call(torch.tensor([[0]]), q=q.float())


def test_views_of_a_fused_projection_give_the_bits_of_contiguous_copies() -> None:
    """The decode layer passes q, k and v as views of one fused row per request (rows apart, heads
    packed); they must read as their contiguous copies do, and a view whose heads are not packed too."""
    heads, kv_heads, dim, block = 9, 3, 64, 16
    gen = torch.Generator().manual_seed(7)
    fused = torch.randn(len(SPANS), (heads + 2 * kv_heads) * dim, generator=gen).to(torch.bfloat16)
    q = fused[:, : heads * dim].view(len(SPANS), heads, dim)
    k = fused[:, heads * dim : (heads + kv_heads) * dim].view(len(SPANS), kv_heads, dim)
    v = fused[:, (heads + kv_heads) * dim :].view(len(SPANS), kv_heads, dim)
    assert not q.is_contiguous() and not k.is_contiguous() and not v.is_contiguous()
    cache = torch.randn(64 * block, kv_heads, dim, generator=gen).to(torch.bfloat16)
    meta = AttentionMetadata.build(SPANS, block, torch.device("cpu"))
    group = meta.groups[0]

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k_cache, v_cache = cache.clone(), cache.clone()
        out = torch.ops.plinth.decode_attention(
            q, k, v, k_cache, v_cache, meta.slot_mapping, group.block_tables, group.context_lens, block, 0.125
        )
        return out, k_cache, v_cache

    want = run(q.contiguous(), k.contiguous(), v.contiguous())
    for got in (run(q, k, v), run(q.transpose(1, 2).contiguous().transpose(1, 2), k, v)):
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
