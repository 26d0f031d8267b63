"""Decode attention over the paged KV cache on a GPU, as Triton kernels that read the cache in place.

Why: the torch path of :mod:`~plinth.engine.attention` gathers every request's context blocks into a
padded copy before one SDPA call, so a decode step copies each request's whole K and V once more per
layer. Here each program follows its request's block table into the cache (split-KV "flash decoding"):

1. ``_partial``: one program per request, KV head and split of the context (:data:`SPLIT` positions).
   The query heads sharing that KV head (GQA) are one tile, so K and V are read once for all of them;
   an online softmax over the split's pages leaves a running max, a sum and an unnormalised output.
2. ``_combine``: one program per request and KV head rescales the splits' partial results to a common
   max and adds them in split order.

Splits keep a long context's work spread over the GPU when there are few requests (one request of
8 KV heads would otherwise be 8 programs). Scores, softmax and sums are float32; K and V stay in the
cache's dtype. Without a GPU the kernels run on Triton's interpreter (``TRITON_INTERPRET=1``), which
is how the test suite checks them on CPU tensors against the torch path.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

SPLIT = 256  # context positions per program: a multiple of every power-of-two block size up to it


def supports(q: torch.Tensor, block_size: int) -> bool:
    """Whether these kernels serve a decode step: cache blocks a power of two from 16 to :data:`SPLIT`
    positions (a page is one tile of scores), heads up to 256 wide."""
    power_of_two = block_size & (block_size - 1) == 0
    return power_of_two and 16 <= block_size <= SPLIT and q.shape[-1] <= 256


@triton.jit
def _partial(
    q_ptr,
    k_ptr,
    v_ptr,
    tables_ptr,
    lens_ptr,
    max_ptr,
    sum_ptr,
    acc_ptr,
    scale,
    stride_q_row,
    stride_q_head,
    stride_cache_slot,
    stride_cache_head,
    stride_table,
    splits,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    DIM: tl.constexpr,
    DIM_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    SPLIT_LEN: tl.constexpr,
):
    request = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    length = tl.load(lens_ptr + request)
    heads = tl.arange(0, GROUP_PAD)
    dims = tl.arange(0, DIM_PAD)
    in_group = heads < GROUP
    in_dim = dims < DIM
    q = tl.load(
        q_ptr + request * stride_q_row + (kv_head * GROUP + heads)[:, None] * stride_q_head + dims[None, :],
        mask=in_group[:, None] & in_dim[None, :],
        other=0.0,
    )
    running_max = tl.full((GROUP_PAD,), float("-inf"), dtype=tl.float32)
    running_sum = tl.zeros((GROUP_PAD,), dtype=tl.float32)
    acc = tl.zeros((GROUP_PAD, DIM_PAD), dtype=tl.float32)
    first = split * SPLIT_LEN
    end = tl.minimum(first + SPLIT_LEN, length)
    offsets = tl.arange(0, BLOCK_SIZE)
    for page_start in range(first, end, BLOCK_SIZE):
        block = tl.load(tables_ptr + request * stride_table + page_start // BLOCK_SIZE).to(tl.int64)
        slots = block * BLOCK_SIZE + offsets
        at = slots[:, None] * stride_cache_slot + kv_head * stride_cache_head + dims[None, :]
        k = tl.load(k_ptr + at, mask=in_dim[None, :], other=0.0)
        v = tl.load(v_ptr + at, mask=in_dim[None, :], other=0.0)
        scores = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee") * scale
        scores = tl.where((page_start + offsets)[None, :] < end, scores, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, axis=1))
        rescale = tl.exp(running_max - new_max)
        probs = tl.exp(scores - new_max[:, None])
        running_sum = running_sum * rescale + tl.sum(probs, axis=1)
        acc = acc * rescale[:, None] + tl.dot(probs, v.to(tl.float32), input_precision="ieee")
        running_max = new_max
    row = (request * tl.num_programs(1) + kv_head) * splits + split
    tl.store(max_ptr + row * GROUP_PAD + heads, running_max)
    tl.store(sum_ptr + row * GROUP_PAD + heads, running_sum)
    tl.store(acc_ptr + (row * GROUP_PAD + heads)[:, None] * DIM_PAD + dims[None, :], acc)


@triton.jit
def _combine(
    max_ptr,
    sum_ptr,
    acc_ptr,
    out_ptr,
    lens_ptr,
    stride_out_row,
    stride_out_head,
    splits,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    DIM: tl.constexpr,
    DIM_PAD: tl.constexpr,
    SPLIT_LEN: tl.constexpr,
):
    request = tl.program_id(0)
    kv_head = tl.program_id(1)
    heads = tl.arange(0, GROUP_PAD)
    dims = tl.arange(0, DIM_PAD)
    used = tl.cdiv(tl.load(lens_ptr + request), SPLIT_LEN)  # splits past the context hold nothing
    base = (request * tl.num_programs(1) + kv_head) * splits
    best = tl.full((GROUP_PAD,), float("-inf"), dtype=tl.float32)
    for split in range(0, used):
        best = tl.maximum(best, tl.load(max_ptr + (base + split) * GROUP_PAD + heads))
    total = tl.zeros((GROUP_PAD,), dtype=tl.float32)
    acc = tl.zeros((GROUP_PAD, DIM_PAD), dtype=tl.float32)
    for split in range(0, used):
        row = base + split
        weight = tl.exp(tl.load(max_ptr + row * GROUP_PAD + heads) - best)
        total += weight * tl.load(sum_ptr + row * GROUP_PAD + heads)
        acc += weight[:, None] * tl.load(
            acc_ptr + (row * GROUP_PAD + heads)[:, None] * DIM_PAD + dims[None, :]
        )
    out = acc / total[:, None]
    where = (
        out_ptr
        + request * stride_out_row
        + (kv_head * GROUP + heads)[:, None] * stride_out_head
        + dims[None, :]
    )
    tl.store(where, out.to(out_ptr.dtype.element_ty), mask=(heads < GROUP)[:, None] & (dims < DIM)[None, :])


def decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    block_size: int,
    scale: float,
) -> torch.Tensor:
    """Each request's one query (``q``: ``[requests, heads, D]``) over its context in the cache
    (``[slots, kv_heads, D]``, the new token's K/V already written), through its block table
    (``[requests, blocks]``); returns ``[requests, heads, D]``. ``context_lens`` count the new token."""
    requests, heads, dim = q.shape
    kv_heads = k_cache.shape[1]
    group = heads // kv_heads
    group_pad, dim_pad = max(16, triton.next_power_of_2(group)), max(16, triton.next_power_of_2(dim))
    splits = -(-block_tables.shape[1] * block_size // SPLIT)
    maxes = torch.empty(requests, kv_heads, splits, group_pad, device=q.device, dtype=torch.float32)
    sums = torch.empty_like(maxes)
    accs = torch.empty(requests, kv_heads, splits, group_pad, dim_pad, device=q.device, dtype=torch.float32)
    assert q.stride(2) == 1 and k_cache.stride(2) == 1 and k_cache.stride() == v_cache.stride()
    _partial[(requests, kv_heads, splits)](
        q, k_cache, v_cache, block_tables, context_lens, maxes, sums, accs, scale,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), block_tables.stride(0), splits,
        GROUP=group, GROUP_PAD=group_pad, DIM=dim, DIM_PAD=dim_pad, BLOCK_SIZE=block_size, SPLIT_LEN=SPLIT,
    )  # fmt: skip
    out = torch.empty_like(q)
    _combine[(requests, kv_heads)](
        maxes, sums, accs, out, context_lens, out.stride(0), out.stride(1), splits,
        GROUP=group, GROUP_PAD=group_pad, DIM=dim, DIM_PAD=dim_pad, SPLIT_LEN=SPLIT,
    )  # fmt: skip
    return out
