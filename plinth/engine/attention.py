"""Attention over a paged KV cache, for a batch that mixes prefills and decodes.

The cache of each layer is a flat tensor of *slots* (``num_blocks * block_size`` rows of
``[kv_heads, head_dim]``). A request owns a list of blocks (its block table); token ``p`` of it lives in
slot ``table[p // block_size] * block_size + p % block_size``. Blocks are shared between requests with
a common prefix, so a cached system prompt costs nothing to reuse.

Each step writes the new tokens' K/V into their slots, then gathers every request's context from the
cache into a padded batch and runs one masked SDPA call per group (decodes together, prefill chunks
together), so padding stays small and the same code serves CPU and CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
    kv_slots: torch.Tensor  # [B, C] cache slots of each request's context (padding: slot 0)
    mask: torch.Tensor  # [B, 1, Q, C] True where a query may attend
    valid: torch.Tensor | None  # [B, Q] real (non-padding) queries; None when there is no padding
    out_index: torch.Tensor  # [num valid] flat rows the outputs go back to


@dataclass(slots=True)
class AttentionMetadata:
    """Per-step indices shared by every layer."""

    slot_mapping: torch.Tensor  # [T] where each new token's K/V is written
    groups: list[AttentionGroup]

    @classmethod
    def build(cls, spans: list[SeqSpan], block_size: int, device: torch.device) -> AttentionMetadata:
        offsets, slots, total = [], [], 0
        for span in spans:
            offsets.append(total)
            total += span.num_new
            positions = range(span.start, span.start + span.num_new)
            slots.extend(span.block_table[p // block_size] * block_size + p % block_size for p in positions)
        decode = [i for i, s in enumerate(spans) if s.num_new == 1]
        prefill = [i for i, s in enumerate(spans) if s.num_new > 1]
        groups = [
            _group([spans[i] for i in idx], [offsets[i] for i in idx], block_size, device)
            for idx in (decode, prefill)
            if idx
        ]
        return cls(torch.tensor(slots, dtype=torch.long, device=device), groups)


def _group(spans: list[SeqSpan], offsets: list[int], block_size: int, device: torch.device) -> AttentionGroup:
    q_lens = torch.tensor([s.num_new for s in spans])
    ctx_lens = torch.tensor([s.start + s.num_new for s in spans])
    q_max, c_max = int(q_lens.max()), int(ctx_lens.max())
    q_pos = torch.arange(q_max)
    valid = q_pos[None, :] < q_lens[:, None]  # [B, Q]
    query_index = torch.where(valid, torch.tensor(offsets)[:, None] + q_pos[None, :], 0)
    max_blocks = (c_max + block_size - 1) // block_size
    tables = torch.zeros(len(spans), max_blocks, dtype=torch.long)
    for row, span in enumerate(spans):
        used = span.block_table[:max_blocks]
        tables[row, : len(used)] = torch.tensor(used, dtype=torch.long)
    kv_pos = torch.arange(c_max)
    kv_slots = tables[:, kv_pos // block_size] * block_size + kv_pos % block_size
    # Absolute position of each query; a query sees the context up to and including itself.
    abs_q = (ctx_lens - q_lens)[:, None] + q_pos[None, :]
    mask = kv_pos[None, None, :] <= abs_q[:, :, None]
    mask[:, :, 0] |= ~valid  # padding rows attend to slot 0 so no row is fully masked (no NaNs)
    return AttentionGroup(
        query_index=query_index.to(device),
        kv_slots=kv_slots.to(device),
        mask=mask.unsqueeze(1).to(device),
        valid=None if bool(valid.all()) else valid.to(device),
        out_index=query_index[valid].to(device),
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
    k_cache.index_copy_(0, meta.slot_mapping, k)
    v_cache.index_copy_(0, meta.slot_mapping, v)
    if len(meta.groups) == 1 and meta.groups[0].valid is None and meta.groups[0].query_index.shape[1] == 1:
        return _attend(q, k_cache, v_cache, meta.groups[0], scale).flatten(0, 1)  # decode-only step
    out = torch.empty_like(q)
    for group in meta.groups:
        attended = _attend(q, k_cache, v_cache, group, scale)
        rows = attended.flatten(0, 1) if group.valid is None else attended[group.valid]
        out.index_copy_(0, group.out_index, rows)
    return out


def _attend(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, group: AttentionGroup, scale: float
) -> torch.Tensor:
    """One SDPA call over a padded group; returns ``[B, Q, heads, D]``."""
    batch, q_len = group.query_index.shape
    ctx = group.kv_slots.shape[1]
    flat_slots = group.kv_slots.flatten()
    queries = q.index_select(0, group.query_index.flatten()).view(batch, q_len, *q.shape[1:])
    keys = k_cache.index_select(0, flat_slots).view(batch, ctx, *k_cache.shape[1:])
    values = v_cache.index_select(0, flat_slots).view(batch, ctx, *v_cache.shape[1:])
    attended = F.scaled_dot_product_attention(
        queries.transpose(1, 2),
        keys.transpose(1, 2),
        values.transpose(1, 2),
        attn_mask=group.mask,
        scale=scale,
        enable_gqa=True,
    )
    return attended.transpose(1, 2)
