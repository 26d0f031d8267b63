"""Unmerged LoRA inside the model: every token adds ``B_s · A_s · x`` of its own adapter slot ``s``.

Adapters live in fixed *slots* (stacked A and B buffers per projection, padded to ``max_rank``, the
scaling folded into B), so one batch mixes the base model and many adapters (S-LoRA/Punica style).
A step's :class:`LoraBatch` says which slot each token uses:

- decode tokens (one per request) use the *gathered* path: their slots' A/B are gathered and applied
  with two batched matmuls (BGMV-like), one kernel pair for the whole batch whatever the adapters;
- prefill chunks use the *segment* path: a request's tokens share one adapter, so two plain matmuls.

Base-model tokens are simply left out, and a step without adapter tokens costs nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(slots=True)
class LoraBatch:
    rows: torch.Tensor | None  # [n] flat token rows of decode tokens that use an adapter
    slots: torch.Tensor | None  # [n] their slots
    segments: list[tuple[int, int, int]]  # (start row, end row, slot) of prefill chunks

    @classmethod
    def build(cls, spans: list[tuple[int, int, int | None]], device: torch.device) -> LoraBatch:
        """``spans``: (first row, number of tokens, slot or None for the base model) per request."""
        rows, slots, segments = [], [], []
        for start, count, slot in spans:
            if slot is None:
                continue
            if count == 1:
                rows.append(start)
                slots.append(slot)
            else:
                segments.append((start, start + count, slot))
        if not rows:
            return cls(None, None, segments)
        as_tensor = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        return cls(as_tensor(rows), as_tensor(slots), segments)

    @property
    def empty(self) -> bool:
        return self.rows is None and not self.segments


@dataclass(slots=True)
class LoraContext:
    """Shared by every LoRA layer of a model: the current step's batch (None outside a step)."""

    max_rank: int
    num_slots: int
    batch: LoraBatch | None = None
    layers: list[LoraLinear] = field(default_factory=list)


class LoraLinear(nn.Linear):
    """``nn.Linear`` (same parameter names, so checkpoints load unchanged) plus adapter slots.

    ``sub_sizes`` splits a fused output into the Hugging Face projections it holds, e.g. q/k/v of a
    fused ``qkv_proj``: each has its own A (stacked along the rank axis) and B.
    """

    def __init__(
        self, in_features: int, sub_sizes: list[int], bias: bool, ctx: LoraContext, names: tuple[str, ...]
    ) -> None:
        super().__init__(in_features, sum(sub_sizes), bias=bias)
        self.sub_sizes, self.names, self.ctx = sub_sizes, names, ctx
        self.layer_index = -1  # set by the model once the decoder layers exist
        rank, slots = ctx.max_rank, ctx.num_slots
        self.register_buffer(
            "lora_a", torch.zeros(slots, len(sub_sizes) * rank, in_features), persistent=False
        )
        for j, size in enumerate(sub_sizes):
            self.register_buffer(f"lora_b{j}", torch.zeros(slots, size, rank), persistent=False)
        ctx.layers.append(self)

    def lora_b(self, j: int) -> torch.Tensor:
        return getattr(self, f"lora_b{j}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        batch = self.ctx.batch
        if batch is None or batch.empty:
            return y
        if batch.rows is not None and batch.slots is not None:
            self._add_gathered(x, y, batch.rows, batch.slots)
        for start, end, slot in batch.segments:
            self._add_segment(x[start:end], y[start:end], slot)
        return y

    def _add_gathered(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor
    ) -> None:
        rank = self.ctx.max_rank
        shrunk = torch.bmm(self.lora_a.index_select(0, slots), x.index_select(0, rows).unsqueeze(-1))
        offset = 0
        for j, size in enumerate(self.sub_sizes):
            delta = torch.bmm(self.lora_b(j).index_select(0, slots), shrunk[:, j * rank : (j + 1) * rank])
            y[:, offset : offset + size].index_add_(0, rows, delta.squeeze(-1))
            offset += size

    def _add_segment(self, x: torch.Tensor, y: torch.Tensor, slot: int) -> None:
        rank = self.ctx.max_rank
        shrunk = x @ self.lora_a[slot].T
        offset = 0
        for j, size in enumerate(self.sub_sizes):
            y[:, offset : offset + size] += shrunk[:, j * rank : (j + 1) * rank] @ self.lora_b(j)[slot].T
            offset += size

    @torch.no_grad()
    def set_slot(self, slot: int, subs: list[tuple[torch.Tensor, torch.Tensor, float] | None]) -> None:
        """Write one adapter's (A, B, scaling) per sub-projection into ``slot`` (None: not targeted)."""
        rank = self.ctx.max_rank
        self.lora_a[slot].zero_()
        for j, sub in enumerate(subs):
            b = self.lora_b(j)[slot]
            b.zero_()
            if sub is None:
                continue
            a_weight, b_weight, scaling = sub
            r = a_weight.shape[0]
            self.lora_a[slot, j * rank : j * rank + r].copy_(a_weight)
            b[:, :r].copy_(b_weight * scaling)
