"""Attention over a paged KV cache, for a batch that mixes prefills and decodes.

The cache of each layer is a flat tensor of *slots* (``num_blocks * block_size`` rows of
``[kv_heads, head_dim]``). A request owns a list of blocks (its block table); token ``p`` of it lives in
slot ``table[p // block_size] * block_size + p % block_size``. Blocks are shared between requests with
a common prefix, so a cached system prompt costs nothing to reuse.

Each step writes the new tokens' K/V into their slots, then gathers every request's context from the
cache into a padded batch and runs one masked SDPA call per group (decodes together, prefill chunks
together), so padding stays small and the same code serves CPU and CUDA. Two kinds of decode step skip
the gather: on a CPU with AVX512-BF16 or AVX2, Plinth's ``decode_attention`` operator; on a CUDA
device with Triton, the split-KV kernels of ``engine/triton_attention.py``. Both read each request's
blocks where they lie. The CPU operator also takes steps whose prefill chunks are short (a new request's
few prompt tokens beside running decodes, a short turn after a cached prefix), laid out row by row: each
prompt token is a query of its own over the context up to itself (:attr:`AttentionMetadata.rows`). In
bf16 it attends a prompt's rows as a block, so there every prefill goes row by row (:func:`prompt_blocks`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from plinth.engine import native
from plinth.engine.triton_support import triton_device

KV_SPLIT = 64  # context positions per partial product of split_kv_attention
QUERY_TILE = 256  # queries per score matrix (bounds its memory on long prompts); a multiple of 4
# A step's prefill tokens, and the context positions they attend over in all, at most for its rows to be
# attended one by one (AttentionMetadata.rows) where the operator takes each row on its own (fp16: bf16
# attends a prompt's rows as a block, and lays out every prefill so, see prompt_blocks; these limits also say
# which prefills' adapter tokens go one by one, short_prefill). Each row then reads its context again, which
# costs little beside a short chunk's matmuls; a long chunk, or one over a long context, belongs in one SDPA
# call. SmolLM2 in bf16 on a 2-core Zen 3, a chunk beside two decodes, SDPA's step time over the row by row
# one (benchmarks/short_prefill.py): 4-16 new tokens 1.57-1.80x, 64 1.17x, 128 1.10x, 256 1.05x; after 1,024
# cached tokens, 16 new 1.21x, 32 1.17x, 64 1.03x, 256 0.81x.
ROW_WISE_PREFILL = 128
ROW_WISE_POSITIONS = 65_536
# A prefill of more tokens still goes row by row while its rows attend over this many positions or fewer
# on average: torch's CPU flash attention runs a short context's small blocks at a fraction of the
# arithmetic rate (16 sequences of 128 tokens: ~80 GFLOP/s a layer). Prefill steps of 2,048 tokens,
# SmolLM2 in bf16 on a 2-core Zen 4, the two layouts alternated in one engine: 16 prompts of 128 tokens
# 1.570 -> 1.379 s (faster in 6 of 6 rounds), 8 of 256 3.107 -> 2.887 s, 4 of 512 8.229 -> 7.342 s
# (256 positions a row on average), 2 of 1,024 2.628 -> 2.578 s, and 1 of 2,000 3.855 -> 4.144 s.
ROW_WISE_MEAN_CONTEXT = 384


@dataclass(slots=True)
class SeqSpan:
    """One request's share of a step: ``num_new`` tokens starting at position ``start``."""

    block_table: list[int]
    start: int
    num_new: int


@dataclass(slots=True)
class AttentionGroup:
    """Requests attended in one SDPA call: padded queries, their context slots and the mask."""

    query_index: torch.Tensor  # [B, Q] rows of the flat token tensor (padding points at row 0)
    block_tables: torch.Tensor  # [B, N] cache blocks of each request's context (padding: block 0)
    mask: torch.Tensor  # [B, 1, Q, N * block_size] True where a query may attend
    block_size: int
    valid: torch.Tensor | None  # [B, Q] real (non-padding) queries; None when there is no padding
    out_index: torch.Tensor  # [num valid] flat rows the outputs go back to
    first_block: int | None = None  # the tables are blocks first, first + 1, ...: read in place, no gather
    context_lens: torch.Tensor | None = None  # [B] positions each request attends over (its own included)


@dataclass(slots=True)
class AttentionMetadata:
    """Per-step indices shared by every layer."""

    slot_mapping: torch.Tensor  # [T] where each new token's K/V is written
    groups: list[AttentionGroup]
    invariant: bool = False  # batch-invariant mode: attend with a fixed KV split (split_kv_attention)
    # Every token a one-query group of its own, in step order, its context ending at itself: what
    # Plinth's CPU decode attention reads. Set for decode-only steps (then ``groups[0]``) and, on a CPU,
    # for steps whose prefill is short (:func:`row_wise`), outside batch-invariant mode.
    rows: AttentionGroup | None = None

    @classmethod
    def build(
        cls,
        spans: list[SeqSpan],
        block_size: int,
        device: torch.device,
        invariant: bool = False,
        prompt_blocks: bool = False,
    ) -> AttentionMetadata:
        """``prompt_blocks``: the step's attention attends a prompt's rows as a block (:func:`prompt_blocks`),
        so every prefill is laid out row by row, however long."""
        offsets: list[int] = []
        slots: list[int] = []
        total = 0
        for span in spans:
            offsets.append(total)
            total += span.num_new
            positions = range(span.start, span.start + span.num_new)
            slots.extend(span.block_table[p // block_size] * block_size + p % block_size for p in positions)
        decode = [i for i, s in enumerate(spans) if s.num_new == 1]
        prefill = [i for i, s in enumerate(spans) if s.num_new > 1]
        context_multiple = math.lcm(block_size, KV_SPLIT) if invariant else block_size
        groups = [
            _group([spans[i] for i in idx], [offsets[i] for i in idx], block_size, context_multiple, device)
            for idx in (decode, prefill)
            if idx
        ]
        rows = None
        if not invariant and not prefill:
            rows = groups[0]
        elif not invariant and device.type == "cpu" and (prompt_blocks or row_wise(spans)):  # CUDA: groups
            rows = _rows(spans, block_size, device)
        return cls(torch.tensor(slots, dtype=torch.long, device=device), groups, invariant, rows)


def row_wise(spans: list[SeqSpan]) -> bool:
    """Whether a step's prefill attends row by row where the operator takes each row on its own (fp16;
    bf16 goes row by row always, :func:`prompt_blocks`): it is short (:func:`short_prefill`), or, however
    many its tokens, they attend over few enough positions each on average (:data:`ROW_WISE_MEAN_CONTEXT`)."""
    tokens, positions = _prefill_size(spans)
    return _short(tokens, positions) or positions <= ROW_WISE_MEAN_CONTEXT * tokens


def short_prefill(spans: list[SeqSpan]) -> bool:
    """Whether a step's prefill tokens are few enough, over short enough contexts, that its adapter tokens
    go one by one too and the whole step runs as ``plinth::decode_layer`` (:data:`ROW_WISE_PREFILL`,
    :data:`ROW_WISE_POSITIONS`). A longer prefill's adapters go by chunk: one by one, 32 adapters on
    every projection of a small llama fell from 0.81-0.85x the base model's throughput to 0.75-0.77x."""
    return _short(*_prefill_size(spans))


def _short(tokens: int, positions: int) -> bool:
    return tokens <= ROW_WISE_PREFILL and positions <= ROW_WISE_POSITIONS


def _prefill_size(spans: list[SeqSpan]) -> tuple[int, int]:
    """The step's prefill tokens, and the positions they attend over in all."""
    chunks = [s for s in spans if s.num_new > 1]
    tokens = sum(s.num_new for s in chunks)
    return tokens, sum(s.num_new * s.start + s.num_new * (s.num_new + 1) // 2 for s in chunks)


def _rows(spans: list[SeqSpan], block_size: int, device: torch.device) -> AttentionGroup:
    """Every token of the step a row, its context ending at itself: what the native operator reads (the
    block tables and context lengths, so the mask is left empty). A request's rows share its table."""
    lens = [s.num_new for s in spans]
    width = max(-(-(s.start + s.num_new) // block_size) for s in spans)
    tables = _tables(spans, width)
    context = np.concatenate([np.arange(s.start + 1, s.start + s.num_new + 1) for s in spans])
    index = torch.arange(sum(lens), device=device)
    return AttentionGroup(
        query_index=index[:, None],
        block_tables=torch.from_numpy(np.repeat(tables, lens, axis=0)).to(device),
        mask=torch.empty(0, dtype=torch.bool, device=device),
        block_size=block_size,
        valid=None,
        out_index=index,
        context_lens=torch.from_numpy(context.astype(np.int64)).to(device),
    )


def _tables(spans: list[SeqSpan], width: int) -> np.ndarray:
    """Each request's block table as a row of ``width`` blocks (padding: block 0)."""
    tables = np.zeros((len(spans), width), dtype=np.int64)
    for row, span in enumerate(spans):
        used = span.block_table[:width]
        tables[row, : len(used)] = used
    return tables


def _group(
    spans: list[SeqSpan], offsets: list[int], block_size: int, context_multiple: int, device: torch.device
) -> AttentionGroup:
    """The padded indices and mask of one group; its context is padded to a multiple of
    ``context_multiple`` tokens (whole blocks; padding reads block 0, masked out).

    Built in numpy, then handed to torch without a copy: the same ~20 small operations cost a few
    microseconds each as torch dispatches, less than one in numpy (the whole build, warm: 62 -> 21 us
    at one decode request, 152 -> 41 us at 16)."""
    q_lens = np.array([s.num_new for s in spans])
    ctx_lens = np.array([s.start + s.num_new for s in spans])
    q_max, c_max = int(q_lens.max()), int(ctx_lens.max())
    q_pos = np.arange(q_max)
    valid = q_pos[None, :] < q_lens[:, None]  # [B, Q]
    query_index = np.where(valid, np.array(offsets)[:, None] + q_pos[None, :], 0)
    max_blocks = -(-c_max // context_multiple) * context_multiple // block_size
    tables = _tables(spans, max_blocks)
    kv_pos = np.arange(max_blocks * block_size)
    # Absolute position of each query; a query sees the context up to and including itself.
    abs_q = (ctx_lens - q_lens)[:, None] + q_pos[None, :]
    mask = kv_pos[None, None, :] <= abs_q[:, :, None]
    mask[:, :, 0] |= ~valid  # padding rows attend to slot 0 so no row is fully masked (no NaNs)
    flat = tables.ravel()
    in_place = bool((np.diff(flat) == 1).all())  # one run of consecutive blocks (a lone request's, usually)
    as_torch = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return AttentionGroup(
        query_index=as_torch(query_index),
        block_tables=as_torch(tables),
        mask=as_torch(mask[:, None]),
        block_size=block_size,
        valid=None if bool(valid.all()) else as_torch(valid),
        out_index=as_torch(query_index[valid]),
        first_block=int(flat[0]) if in_place else None,
        context_lens=as_torch(ctx_lens.astype(np.int64)),
    )


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    scale: float,
) -> torch.Tensor:
    """Write ``k``/``v`` (``[T, kv_heads, D]``) to the cache, then attend ``q`` (``[T, heads, D]``)."""
    if meta.rows is not None and _native_decode(q):  # the query rows are the step's, in order
        one_by_one = meta.rows
        return torch.ops.plinth.decode_attention(
            q, k, v, k_cache, v_cache, meta.slot_mapping, one_by_one.block_tables, one_by_one.context_lens,
            one_by_one.block_size, scale,
        )  # fmt: skip
    group = meta.groups[0]
    decode = decode_only(meta)
    k_cache.index_copy_(0, meta.slot_mapping, k)
    v_cache.index_copy_(0, meta.slot_mapping, v)
    if decode and not meta.invariant:
        if _triton_decode(q, group.block_size):
            assert group.context_lens is not None
            return _triton_attention().decode(
                q, k_cache, v_cache, group.block_tables, group.context_lens, group.block_size, scale
            )
        return _sdpa(q.unsqueeze(1), k_cache, v_cache, group, scale).flatten(0, 1)
    attend = split_kv_attention if meta.invariant else _attend
    out = torch.empty_like(q)
    for group in meta.groups:
        attended = attend(q, k_cache, v_cache, group, scale)
        rows = attended.flatten(0, 1) if group.valid is None else attended[group.valid]
        out.index_copy_(0, group.out_index, rows)
    return out


def decode_only(meta: AttentionMetadata) -> bool:
    """Whether the step is one new token per request, the requests' rows in order."""
    group = meta.groups[0]
    return len(meta.groups) == 1 and group.valid is None and group.query_index.shape[1] == 1


def _native_decode(q: torch.Tensor) -> bool:
    """Whether Plinth's decode attention (``csrc/decode_attention.cpp``) serves this step: bf16/fp16 on
    a CPU with AVX512-BF16 or AVX2, heads it is built for (:func:`native_head_dim`). One operator for
    the cache write and the attention: at one stream of SmolLM2-135M, ~70 -> ~10 us a layer
    (``benchmarks/decode_profile.py``)."""
    return _native_rows(q.device, q.dtype, q.shape[-1])


def _native_rows(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    return (
        device.type == "cpu"
        and dtype in (torch.bfloat16, torch.float16)
        and native_head_dim(head_dim)
        and native.has("decode_attention")
    )


def _triton_decode(q: torch.Tensor, block_size: int) -> bool:
    """Whether the Triton decode kernels (``engine/triton_attention.py``) serve this step: on a CUDA
    device with Triton installed (CUDA builds of torch bring it), reading each request's blocks in place
    where the torch path below gathers them into a padded copy first."""
    return triton_device(q.device) and bool(_triton_attention().supports(q, block_size))


@functools.cache
def _triton_attention() -> ModuleType:
    """``engine/triton_attention.py``, imported on first use: it imports Triton, which a CPU install may
    lack."""
    from plinth.engine import triton_attention

    return triton_attention


def prompt_blocks(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether Plinth's decode attention attends a prompt's rows as a block (bf16 on a CPU where it is
    built): then a prefill of any length goes row by row (:meth:`AttentionMetadata.build`). A 2,000-token
    prompt of SmolLM2 on a 2-core Zen 4 prefilled in 1.91 s against 3.74 s through SDPA, 2 of 1,000 in
    1.51 against 2.46 s (steps alternated in one engine)."""
    return dtype == torch.bfloat16 and _native_rows(device, dtype, head_dim)


def native_head_dim(dim: int) -> bool:
    """The head sizes the native decode attention is compiled for: multiples of 16 up to 128, and 256."""
    return (dim % 16 == 0 and 16 <= dim <= 128) or dim == 256


def _attend(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, group: AttentionGroup, scale: float
) -> torch.Tensor:
    """One attention call over a padded group; returns ``[B, Q, heads, D]``."""
    batch, q_len = group.query_index.shape
    queries = q.index_select(0, group.query_index.flatten()).view(batch, q_len, *q.shape[1:])
    return _sdpa(queries, k_cache, v_cache, group, scale)


def _sdpa(
    queries: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, group: AttentionGroup, scale: float
) -> torch.Tensor:
    """SDPA of padded queries ``[B, Q, heads, D]`` over their contexts; returns ``[B, Q, heads, D]``.

    The contexts go in as strided views of the gathered blocks: SDPA's CPU kernel reads them as they lie,
    where a contiguous copy cost more than the attention itself. On a 2-core AMX Xeon one decode query per
    request over 192 positions took 70 us at 1 request (157 us as two bf16 matmuls over contiguous copies,
    this path until 2026-12-05), 353 us at 16 (520) and 1.3 ms at 64 (5.2 ms); prefill chunks 5-7% less
    than with contiguous copies, with the same results."""
    keys, values = _context(k_cache, group), _context(v_cache, group)
    attended = F.scaled_dot_product_attention(
        queries.transpose(1, 2), keys, values, attn_mask=group.mask, scale=scale, enable_gqa=True
    )
    return attended.transpose(1, 2)


def _context(cache: torch.Tensor, group: AttentionGroup) -> torch.Tensor:
    """``[slots, kv_heads, D]`` cache -> the group's ``[B, kv_heads, blocks * block_size, D]`` contexts, a
    transposed view of whole blocks gathered at a time (one large copy per block, not one per token).

    When the group's blocks are one run of consecutive blocks -- a request alone in its group whose
    blocks were handed out in order, as the free list does while nothing else allocates -- the view is of
    the cache itself: the same layout and values as the gathered copy, without the copy (two fewer
    operators a layer; 21 us each at one stream of SmolLM2-135M)."""
    by_block = cache.view(-1, group.block_size, *cache.shape[1:])
    batch = group.block_tables.shape[0]
    if group.first_block is not None:
        blocks = by_block[group.first_block : group.first_block + group.block_tables.numel()]
    else:
        blocks = by_block.index_select(0, group.block_tables.flatten())
    return blocks.view(batch, -1, *cache.shape[1:]).transpose(1, 2)


def split_kv_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, group: AttentionGroup, scale: float
) -> torch.Tensor:
    """:func:`_attend` whose result for a query does not depend on the other queries, their number or
    the group's padded context length (batch-invariant mode; see ``engine/invariant.py``).

    A padded context changes a single ``probs @ V`` product's reduction blocking (bf16 results change
    at 128 positions), and float32 products of 1-2 rows take another kernel. So queries are padded to a
    multiple of 4, the group's context to a multiple of :data:`KV_SPLIT` (by ``AttentionMetadata.build``),
    ``probs @ V`` runs per split (every product the same shape) in float32, and the partial results are
    added in split order (``cumsum`` is sequential; a padding split adds an exact zero)."""
    batch, q_len = group.query_index.shape
    queries = q.index_select(0, group.query_index.flatten()).view(batch, q_len, *q.shape[1:])
    # Contiguous: batched matmuls over a transposed view ran 2-3x slower on CPU than the copy costs.
    keys = _context(k_cache, group).contiguous()
    values = _context(v_cache, group).contiguous()
    pad_q = -q_len % 4  # the context is a multiple of KV_SPLIT already (AttentionMetadata.build)
    queries, values = F.pad(queries, (0, 0, 0, 0, 0, pad_q)), values.float()
    mask = F.pad(group.mask, (0, 0, 0, pad_q), value=True)
    tiles = [
        _split_kv_tile(
            queries[:, lo : lo + QUERY_TILE], keys, values, mask[:, :, lo : lo + QUERY_TILE], scale
        )
        for lo in range(0, q_len + pad_q, QUERY_TILE)
    ]
    return (tiles[0] if len(tiles) == 1 else torch.cat(tiles, dim=1))[:, :q_len].to(q.dtype)


def _split_kv_tile(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """``[B, Q, heads, D]`` queries against ``[B, kv_heads, C, D]`` K/V (``C`` a multiple of KV_SPLIT)."""
    batch, q_len, heads, dim = queries.shape
    kv_heads, ctx = keys.shape[1], keys.shape[2]
    rows = q_len * (heads // kv_heads)  # the query heads of a KV head stacked (GQA without repeating K/V)
    grouped = (
        queries.view(batch, q_len, kv_heads, -1, dim)
        .permute(0, 2, 1, 3, 4)
        .reshape(batch, kv_heads, rows, dim)
    )
    scores = torch.matmul(grouped, keys.transpose(-1, -2)).view(batch, kv_heads, q_len, -1, ctx)
    scores.masked_fill_(~mask.view(batch, 1, q_len, 1, ctx), float("-inf"))
    probs = torch.softmax(scores.float() * scale, dim=-1).view(batch, kv_heads, rows, -1, KV_SPLIT)
    splits = values.view(batch, kv_heads, -1, KV_SPLIT, dim)
    partial = torch.matmul(probs.transpose(2, 3), splits)  # [B, kv_heads, splits, rows, D]
    out = partial.cumsum(dim=2)[:, :, -1].view(batch, kv_heads, q_len, -1, dim)
    return out.permute(0, 2, 1, 3, 4).reshape(batch, q_len, heads, dim)
