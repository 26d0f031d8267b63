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

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from plinth.engine.invariant import row_tiled


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
    batch_invariant: bool = False  # prefill segments' products run on fixed-size row tiles
    batch: LoraBatch | None = None
    layers: list[LoraLinear] = field(default_factory=list)


class LoraLinear(nn.Linear):
    """``nn.Linear`` (same parameter names, so checkpoints load unchanged) plus adapter slots.

    ``sub_sizes`` splits a fused output into the Hugging Face projections it holds, e.g. q/k/v of a
    fused ``qkv_proj``: each has its own A and B. A sub-projection that no resident adapter targets
    is skipped entirely (adapters trained on q/v only cost nothing in o/k/MLP projections).
    """

    def __init__(
        self, in_features: int, sub_sizes: list[int], bias: bool, ctx: LoraContext, names: tuple[str, ...]
    ) -> None:
        super().__init__(in_features, sum(sub_sizes), bias=bias)
        self.sub_sizes, self.names, self.ctx = sub_sizes, names, ctx
        self.layer_index = -1  # set by the model once the decoder layers exist
        self.qweight: nn.Module | None = None  # the base weight, when quantized (weight is then None)
        self.offsets = [sum(sub_sizes[:j]) for j in range(len(sub_sizes))]
        self.users: list[set[int]] = [set() for _ in sub_sizes]  # slots whose adapter targets sub j
        # Until an adapter is written here the slots are one zero broadcast to their shape: a server
        # with LoRA enabled but no adapter loaded does not hold ~80 MB of zeros (SmolLM2-135M, 8 slots
        # of rank 16; issue 18's peak RSS). ``set_slot`` allocates them on first use.
        rank, slots, zero = ctx.max_rank, ctx.num_slots, torch.zeros(())
        for j, size in enumerate(sub_sizes):
            self.register_buffer(f"lora_a{j}", zero.expand(slots, rank, in_features), persistent=False)
            self.register_buffer(f"lora_b{j}", zero.expand(slots, size, rank), persistent=False)
        ctx.layers.append(self)

    def lora_a(self, j: int) -> torch.Tensor:
        """A of sub-projection ``j``: ``[slots, max_rank, in_features]``, zero-padded past its rank."""
        buffer: torch.Tensor = getattr(self, f"lora_a{j}")
        return buffer

    def lora_b(self, j: int) -> torch.Tensor:
        """B of sub-projection ``j``: ``[slots, its out_features, max_rank]``, scaling folded in."""
        buffer: torch.Tensor = getattr(self, f"lora_b{j}")
        return buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias) if self.qweight is None else self._quantized(x)
        batch = self.ctx.batch
        if batch is None or batch.empty:
            return y
        for j, users in enumerate(self.users):
            if not users:
                continue
            out = y[:, self.offsets[j] : self.offsets[j] + self.sub_sizes[j]]
            if batch.rows is not None and batch.slots is not None:
                self._add_gathered(j, x, out, batch.rows, batch.slots)
            for start, end, slot in batch.segments:
                if slot in users:
                    out[start:end] += self._segment(x[start:end], self.lora_a(j)[slot], self.lora_b(j)[slot])
        return y

    def _segment(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """One prefill chunk's ``B · A · x``; in batch-invariant mode on fixed-size row tiles, so a token's
        delta does not depend on how many tokens its chunk holds."""
        if self.ctx.batch_invariant:
            return row_tiled(lambda tile: (tile @ a.T) @ b.T, x)
        return (x @ a.T) @ b.T

    def _quantized(self, x: torch.Tensor) -> torch.Tensor:
        assert self.qweight is not None
        y: torch.Tensor = self.qweight(x)
        return y if self.bias is None else y + self.bias

    def _add_gathered(
        self, j: int, x: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor
    ) -> None:
        """Decode tokens: gather each token's slot A/B and apply them in two batched matmuls."""
        shrunk = torch.bmm(self.lora_a(j).index_select(0, slots), x.index_select(0, rows).unsqueeze(-1))
        delta = torch.bmm(self.lora_b(j).index_select(0, slots), shrunk)
        out.index_add_(0, rows, delta.squeeze(-1))

    @torch.no_grad()
    def set_slot(self, slot: int, subs: Sequence[tuple[torch.Tensor, torch.Tensor, float] | None]) -> None:
        """Write one adapter's (A, B, scaling) per sub-projection into ``slot`` (None: not targeted)."""
        self.allocate_slots()
        for j, sub in enumerate(subs):
            a, b = self.lora_a(j)[slot], self.lora_b(j)[slot]
            a.zero_()
            b.zero_()
            self.users[j].discard(slot)
            if sub is None:
                continue
            a_weight, b_weight, scaling = sub
            r = a_weight.shape[0]
            a[:r].copy_(a_weight)
            b[:, :r].copy_(b_weight * scaling)
            self.users[j].add(slot)

    def allocate_slots(self) -> None:
        """Give every slot buffer its own zeroed storage, once (they start as a broadcast zero)."""
        for name, buffer in list(self.named_buffers(recurse=False)):
            if name.startswith("lora_") and buffer.stride(0) == 0:
                setattr(self, name, torch.zeros(buffer.shape, dtype=buffer.dtype, device=buffer.device))
