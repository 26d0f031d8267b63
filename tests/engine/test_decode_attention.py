"""Plinth's decode attention (``torch.ops.plinth.decode_attention``): one operator writes a step's K/V into
the paged cache and attends, with torch's path's cache and its results to a rounding, for grouped and
plain heads, scattered and consecutive blocks, bf16 and fp16, decode steps and steps with prefill chunks
laid out row by row (short chunks beside decodes, and a wave of prompts); bad operands are refused."""

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


# A step with prefill chunks beside the decodes: a new prompt over scattered blocks, a turn after a
# cached prefix (its chunk crossing a block boundary), a two-token chunk; each chunk's rows read the rows
# of the same chunk before them, written in the same call.
MIXED = [
    SPANS[0],
    SeqSpan(block_table=[12, 3], start=0, num_new=11),
    SPANS[1],
    SeqSpan(block_table=[20, 21, 22, 23], start=45, num_new=7),
    SeqSpan(block_table=[30], start=0, num_new=2),
]

# Prompts in one step (rows one by one, as the engine lays out a step of short prompts): a prompt longer
# than a unit of rows; a decode, then a chunk whose positions go on from the decode's over other blocks
# (another request: never one run with it); a turn after a cached prefix; a chunk too short to be a run.
# The first alone: a prompt whose units the threads share out a few at a time.
WAVE = [
    SeqSpan(block_table=[5, 6, 7, 8, 9], start=0, num_new=75),
    SeqSpan(block_table=[40, 2, 33], start=37, num_new=1),
    SeqSpan(block_table=[41, 42, 43], start=38, num_new=8),
    SeqSpan(block_table=[20, 21], start=3, num_new=25),
    SeqSpan(block_table=[30], start=0, num_new=3),
]


def _step(
    heads: int,
    kv_heads: int,
    dim: int,
    block: int,
    dtype: torch.dtype,
    native_path: bool,
    monkeypatch,
    spans: list[SeqSpan] = SPANS,
):
    gen = torch.Generator().manual_seed(heads * dim + block)
    tokens = sum(s.num_new for s in spans)
    k_cache, v_cache = (torch.randn(64 * block, kv_heads, dim, generator=gen).to(dtype) for _ in range(2))
    q = torch.randn(tokens, heads, dim, generator=gen).to(dtype)
    k, v = (torch.randn(tokens, kv_heads, dim, generator=gen).to(dtype) for _ in range(2))
    meta = AttentionMetadata.build(spans, block, torch.device("cpu"))
    assert meta.rows is not None
    with monkeypatch.context() as patch:
        if not native_path:
            patch.setattr(attention, "_native_decode", lambda q: False)
        else:
            assert attention._native_decode(q)
        out = paged_attention(q, k, v, k_cache, v_cache, meta, 1 / math.sqrt(dim))
    return out, k_cache, v_cache


@pytest.mark.parametrize("spans", [SPANS, MIXED, WAVE, WAVE[:1]], ids=["decode", "mixed", "wave", "prompt"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim", "block"), [(9, 3, 64, 16), (4, 4, 32, 16), (8, 2, 128, 32)]
)
def test_it_writes_the_cache_and_attends_as_torchs_path(
    heads, kv_heads, dim, block, dtype, spans, monkeypatch
) -> None:
    got, got_k, got_v = _step(heads, kv_heads, dim, block, dtype, True, monkeypatch, spans)
    want, want_k, want_v = _step(heads, kv_heads, dim, block, dtype, False, monkeypatch, spans)
    assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
    tokens = sum(s.num_new for s in spans)
    assert got.shape == want.shape == (tokens, heads, dim) and got.dtype == dtype
    # float32 sums in another order (and for a bf16 prompt's rows, its softmax numerators rounded to
    # bf16 before they weigh the values, as in torch's flash kernel), then one rounding to the dtype:
    # within one unit in the last place
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    assert bool(((got.float() - want.float()).abs() <= ulp * want.float().abs().clamp(min=1)).all())


def test_long_prefills_and_invariant_mode_are_not_laid_out_row_by_row(monkeypatch) -> None:
    """Row by row, each row on its own, costs a read of the context per prompt token: past
    ROW_WISE_PREFILL tokens, or ROW_WISE_POSITIONS positions attended, a step's prefill goes to SDPA
    unless its rows attend over ROW_WISE_MEAN_CONTEXT positions or fewer on average, or the operator
    attends a prompt's rows as a block; batch-invariant mode never."""
    monkeypatch.setattr(attention, "ROW_WISE_PREFILL", 20)
    monkeypatch.setattr(attention, "ROW_WISE_POSITIONS", 400)
    monkeypatch.setattr(attention, "ROW_WISE_MEAN_CONTEXT", 0)
    cpu = torch.device("cpu")

    def rows(*spans: SeqSpan, invariant: bool = False) -> attention.AttentionGroup | None:
        return AttentionMetadata.build(list(spans), 16, cpu, invariant).rows

    chunk = SeqSpan(block_table=[1, 2], start=0, num_new=20)  # 20 tokens, 210 positions
    assert rows(chunk) is not None and rows(chunk, SPANS[2]) is not None
    assert rows(SeqSpan(block_table=[1, 2], start=0, num_new=21)) is None  # 21 tokens
    assert rows(chunk, SeqSpan(block_table=[3], start=0, num_new=2)) is None  # 22 tokens
    assert rows(SeqSpan(block_table=[1, 2, 3, 4], start=45, num_new=8)) is not None  # 8 * 45 + 36 = 396
    assert rows(SeqSpan(block_table=[1, 2, 3, 4], start=46, num_new=8)) is None  # 8 * 46 + 36 = 404
    monkeypatch.setattr(attention, "ROW_WISE_MEAN_CONTEXT", 12)
    assert rows(SeqSpan(block_table=[1, 2], start=0, num_new=23)) is not None  # 276 positions: 12 a token
    assert rows(SeqSpan(block_table=[1, 2], start=0, num_new=24)) is None  # 300 positions: 12.5 a token
    assert rows(chunk, SeqSpan(block_table=[3], start=0, num_new=2)) is not None  # 213 of 22 tokens
    assert rows(SeqSpan(block_table=[1, 2, 3, 4], start=46, num_new=8)) is None  # 404 positions
    assert attention.short_prefill([chunk]) and not attention.short_prefill([SeqSpan([1, 2], 0, 23)])
    decode = AttentionMetadata.build(SPANS, 16, cpu)
    assert decode.rows is decode.groups[0]
    assert rows(*SPANS, invariant=True) is None and rows(chunk, invariant=True) is None
    # where the operator attends a prompt's rows as a block (bf16), every prefill goes row by row: each
    # token a row with its request's blocks, its context ending at itself
    long = SeqSpan(block_table=[7, 8, 9, 4], start=46, num_new=8)
    blocks = AttentionMetadata.build([long, SPANS[1]], 16, cpu, prompt_blocks=True)
    assert blocks.rows is not None and blocks.rows.context_lens is not None
    assert blocks.rows.context_lens.tolist() == [*range(47, 55), 38]
    assert blocks.rows.block_tables.tolist() == [[7, 8, 9, 4]] * 8 + [[40, 2, 33, 0]]
    assert AttentionMetadata.build([long], 16, cpu, invariant=True, prompt_blocks=True).rows is None


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
