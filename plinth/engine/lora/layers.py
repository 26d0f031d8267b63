"""Unmerged LoRA inside the model: every token adds ``B_s · A_s · x`` of its own adapter slot ``s``.

Adapters live in fixed *slots* (stacked A and B buffers per projection, padded to ``max_rank``, the
scaling folded into B), so one batch mixes the base model and many adapters (S-LoRA/Punica style).
A step's :class:`LoraBatch` says which slot each token uses:

- decode tokens (one per request) of a bf16 model on a CPU with AVX512-BF16 or AVX2 take Plinth's operator
  (``csrc/lora_add.cpp``): each token reads its own slot's A and B where they lie and does only its own
  products; elsewhere they take one of two torch paths, whichever a step's shape makes cheaper:
  - *dense*: every slot in the span the step's tokens use is applied to every token in two plain
    matmuls over the span's A and B as they lie in memory, a one-hot mask keeping each token's own
    slot; no copy, so it wins while the span is no wider than the number of tokens (each slot's
    weights are read once, and the extra multiply-adds ride on a GEMM);
  - *gathered*: each token's slot A/B are gathered and applied with two batched matmuls (BGMV-like),
    which costs in proportion to the tokens alone, for a few tokens over many slots;
- prefill chunks share one adapter per request: side by side, padded to the longest, they take two
  batched matmuls for the whole step (the *padded* path); one chunk, or chunks so uneven that padding
  would more than double the rows, take two plain matmuls each (the *segment* path). A bf16 model on a
  CPU whose oneDNN does not multiply bf16 (AVX2 without AVX512-BF16) does these products in float32
  (:attr:`LoraContext.float32_products`).

On a CUDA device with Triton, every adapter token of a step, decode or prefill, takes instead two
Triton kernels that group the tokens by slot (``lora/triton_ops.py``, SGMV), one launch per product.

Base-model tokens are simply left out, and a step without adapter tokens costs nothing extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from plinth.engine import native
from plinth.engine.invariant import row_tiled
from plinth.engine.triton_support import triton_device as _triton  # a name benchmarks can swap

if TYPE_CHECKING:
    from plinth.engine.lora.triton_ops import Grouped

# The widest slot span the dense decode path covers: measured on a 2-core AVX512/AMX Xeon
# (``benchmarks/lora.py``'s shapes, rank 16, all seven projections), dense beat gathered at every span up to
# the token count up to 64 (32 tokens over 32 slots: 31 against 41 ms a step), and lost past it (128 tokens
# over 128 slots: 153 against 128 ms), where the all-slot products grow with tokens x span.
DENSE_MAX_SPAN = 64


@dataclass(slots=True)
class Dense:
    """The dense decode path's operands: slots ``[first, end)`` and each token's one-hot over them."""

    first: int
    end: int
    one_hot: torch.Tensor  # [n, end - first, 1] in the model's dtype
    every_row: bool  # the decode tokens are all the step's rows, in order: no gather or scatter of rows


@dataclass(slots=True)
class Padded:
    """The padded prefill path's operands: ``k`` chunks of at most ``length`` rows, side by side."""

    slots: torch.Tensor  # [k] each chunk's slot
    index: torch.Tensor  # [k, length] each chunk's rows; the padding repeats its last row
    valid: torch.Tensor | None  # [m] flat positions of the real rows in the padded block (None: no padding)
    rows: torch.Tensor  # [m] the rows the real ones add to
    first_row: int | None  # rows are first_row, first_row + 1, ...: a slice, not a gather or scatter
    slot_range: tuple[int, int] | None  # the chunks' slots are first, first + 1, ...: a slice of the slots


# Padding may at most double the rows the padded path multiplies, or chunks go one by one.
MAX_PADDING = 2.0


@dataclass(slots=True)
class LoraBatch:
    rows: torch.Tensor | None  # [n] flat rows of the tokens that use an adapter one by one (see native)
    slots: torch.Tensor | None  # [n] their slots
    segments: list[tuple[int, int, int]]  # (start row, end row, slot) of prefill chunks
    dense: Dense | None = None  # set when the decode tokens take the dense path
    padded: Padded | None = None  # set when the prefill chunks take the padded path (segments is then [])
    native: bool = False  # rows take plinth::lora_add_ (neither dense nor gathered): decode tokens, and
    # the tokens of short prefill chunks when the step is attended row by row (build's row_wise)
    grouped: Grouped | None = None  # set when every adapter token takes the Triton kernels (then alone)

    @classmethod
    def build(
        cls,
        spans: list[tuple[int, int, int | None]],
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        invariant: bool = False,
        row_wise: bool = False,
    ) -> LoraBatch:
        """``spans``: (first row, number of tokens, slot or None for the base model) per request.
        ``invariant``: keep each token's products independent of the step's other tokens (batch-invariant
        mode): decode tokens on the gathered path, prefill chunks one by one. ``row_wise``: the step's
        attention takes its tokens row by row (``AttentionMetadata.rows``); then, on ``plinth::lora_add_``,
        its short prefill chunks' tokens go per token like decode tokens, so the whole step can run as
        ``plinth::decode_layer``."""
        if not invariant and _triton(device):
            return cls(None, None, [], grouped=_triton_ops().Grouped.build(spans, device))
        per_token = row_wise and _native(device, dtype)
        rows: list[int] = []
        slots: list[int] = []
        segments: list[tuple[int, int, int]] = []
        for start, count, slot in spans:
            if slot is None:
                continue
            if count == 1 or per_token:
                rows.extend(range(start, start + count))
                slots.extend([slot] * count)
            else:
                segments.append((start, start + count, slot))
        as_tensor = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        padded = None if invariant else _padded(segments, as_tensor)
        if padded is not None:
            segments = []
        if not rows:
            return cls(None, None, segments, None, padded)
        if _native(device, dtype):  # per token, so batch-invariant as well
            return cls(as_tensor(rows), as_tensor(slots), segments, None, padded, native=True)
        first, end = min(slots), max(slots) + 1
        dense = None
        if not invariant and end - first <= min(len(rows), DENSE_MAX_SPAN):
            one_hot = F.one_hot(as_tensor(slots) - first, end - first).to(dtype).unsqueeze(-1)
            every_row = rows == list(range(sum(count for _, count, _ in spans)))
            dense = Dense(first, end, one_hot, every_row)
        return cls(as_tensor(rows), as_tensor(slots), segments, dense, padded)

    @property
    def empty(self) -> bool:
        return self.rows is None and not self.segments and self.padded is None and self.grouped is None


@functools.cache
def _triton_ops() -> ModuleType:
    """``lora/triton_ops.py``, imported on first use: it imports Triton, which a CPU install may lack."""
    from plinth.engine.lora import triton_ops

    return triton_ops


def _native(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type == "cpu" and dtype == torch.bfloat16 and native.has("lora_add_")


def _padded(segments: list[tuple[int, int, int]], as_tensor: Callable[[list], torch.Tensor]) -> Padded | None:
    """The padded path's operands for these prefill chunks, or None where it does not pay."""
    if len(segments) < 2:
        return None
    length = max(end - start for start, end, _ in segments)
    real = sum(end - start for start, end, _ in segments)
    if len(segments) * length > MAX_PADDING * real:
        return None
    index: list[list[int]] = []
    valid: list[int] = []
    rows: list[int] = []
    for k, (start, end, _) in enumerate(segments):
        index.append([min(start + i, end - 1) for i in range(length)])
        valid.extend(range(k * length, k * length + end - start))
        rows.extend(range(start, end))
    first_row = rows[0] if rows == list(range(rows[0], rows[0] + len(rows))) else None
    slot_list = [slot for _, _, slot in segments]
    in_a_row = slot_list == list(range(slot_list[0], slot_list[0] + len(slot_list)))
    slot_range = (slot_list[0], slot_list[0] + len(slot_list)) if in_a_row else None
    valid_rows = None if real == len(segments) * length else as_tensor(valid)
    return Padded(as_tensor(slot_list), as_tensor(index), valid_rows, as_tensor(rows), first_row, slot_range)


@dataclass(slots=True)
class LoraContext:
    """Shared by every LoRA layer of a model: the current step's batch (None outside a step)."""

    max_rank: int
    num_slots: int
    batch_invariant: bool = False  # prefill segments' products run on fixed-size row tiles
    # Prefill products in float32, added to the bf16 output: where oneDNN refuses bf16 (an AVX2 CPU)
    # ATen's bf16 bmm is a scalar loop. On a Zen 3, 32 chunks of 64 rows into 1,536 outputs: 44 ms in
    # bf16 against 1.3 ms in float32; all seven projections of 32 adapters made a 2,048-token prefill
    # step 3.1x the base model's (``benchmarks/lora.py``).
    float32_products: bool = False
    batch: LoraBatch | None = None
    # the step's batch for the rows that sample, which alone go on past the last layer's attention
    # (CausalLM.forward's keep): row i of it is the i-th kept row
    kept: LoraBatch | None = None
    layers: list[LoraLinear] = field(default_factory=list)

    @contextmanager
    def on_kept_rows(self) -> Iterator[None]:
        """The layers' products take :attr:`kept` for the block, then the step's batch again."""
        batch, self.batch = self.batch, self.kept
        try:
            yield
        finally:
            self.batch = batch


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
        self._targeted: list[tuple[int, int, torch.Tensor, torch.Tensor]] | None = None
        # Until an adapter is written here the slots are one zero broadcast to their shape: a server
        # with LoRA enabled but no adapter loaded does not hold ~80 MB of zeros (SmolLM2-135M, 8 slots
        # of rank 16; issue 18's peak RSS). ``set_slot`` allocates them on first use.
        rank, slots, zero = ctx.max_rank, ctx.num_slots, torch.zeros(())
        for j, size in enumerate(sub_sizes):
            self.register_buffer(f"lora_a{j}", zero.expand(slots, rank, in_features), persistent=False)
            self.register_buffer(f"lora_b{j}", zero.expand(slots, rank, size), persistent=False)
        ctx.layers.append(self)

    def lora_a(self, j: int) -> torch.Tensor:
        """A of sub-projection ``j``: ``[slots, max_rank, in_features]``, zero-padded past its rank."""
        buffer: torch.Tensor = getattr(self, f"lora_a{j}")
        return buffer

    def lora_b(self, j: int) -> torch.Tensor:
        """B of sub-projection ``j``, transposed: ``[slots, max_rank, its out_features]``, scaling folded
        in; so a span of slots is one ``[span * max_rank, out]`` matrix without a copy (dense path)."""
        buffer: torch.Tensor = getattr(self, f"lora_b{j}")
        return buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qweight, bias = self.qweight, self.bias  # each a module attribute lookup (~0.3 us)
        if qweight is None:
            y = F.linear(x, self.weight, bias)
        else:  # forward, not the module call: ~1 us less of hook checks, 120 times a step
            y = qweight.forward(x)
            y = y if bias is None else y + bias
        batch = self.ctx.batch
        if batch is None or not any(self.users):  # no adapter token in this step, or none targets this layer
            return y
        prefill = batch.padded is not None or bool(batch.segments)
        xp = x.float() if prefill and self.ctx.float32_products else x  # once for every sub-projection
        for j, users in enumerate(self.users):
            if not users:
                continue
            out = y[:, self.offsets[j] : self.offsets[j] + self.sub_sizes[j]]
            if batch.grouped is not None:
                _triton_ops().add_(out, x, self.lora_a(j), self.lora_b(j), batch.grouped)
            elif batch.native:
                torch.ops.plinth.lora_add_(out, x, batch.rows, batch.slots, self.lora_a(j), self.lora_b(j))
            elif batch.rows is not None and batch.dense is not None:
                self._add_dense(j, x, out, batch.rows, batch.dense)
            elif batch.rows is not None and batch.slots is not None:
                self._add_gathered(j, x, out, batch.rows, batch.slots)
            if batch.padded is not None:
                self._add_padded(j, xp, out, batch.padded)
            for start, end, slot in batch.segments:
                if slot in users:
                    a, bt = self.lora_a(j)[slot], self.lora_b(j)[slot]
                    out[start:end] += self._segment(xp[start:end], a.to(xp.dtype), bt.to(xp.dtype))
        return y

    def _segment(self, x: torch.Tensor, a: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
        """One prefill chunk's ``B · A · x``; in batch-invariant mode on fixed-size row tiles, so a token's
        delta does not depend on how many tokens its chunk holds."""
        if self.ctx.batch_invariant:
            return row_tiled(lambda tile: (tile @ a.T) @ bt, x)
        return (x @ a.T) @ bt

    def _add_padded(self, j: int, x: torch.Tensor, out: torch.Tensor, padded: Padded) -> None:
        """Prefill chunks: each chunk's rows times its slot's A, then B, as two batched matmuls. ``x`` may
        be ``out``'s dtype or float32 (:attr:`LoraContext.float32_products`)."""
        a, bt = self.lora_a(j), self.lora_b(j)
        if padded.slot_range is not None:  # the chunks' slots in a row: a view of the slots, no copy
            a, bt = a[slice(*padded.slot_range)], bt[slice(*padded.slot_range)]
        else:
            a, bt = a.index_select(0, padded.slots), bt.index_select(0, padded.slots)  # [k, rank, in / out]
        a, bt = a.to(x.dtype), bt.to(x.dtype)
        first, (k, length), m = padded.first_row, padded.index.shape, len(padded.rows)
        # back-to-back equal chunks: their rows of x and out are views
        back_to_back = slice(first, first + m) if first is not None and padded.valid is None else None
        chunks = x[back_to_back].view(k, length, -1) if back_to_back is not None else x[padded.index]
        shrunk = torch.bmm(chunks, a.transpose(1, 2))
        if back_to_back is not None and x.dtype == out.dtype:
            # added in place: one rounding, and no [rows, out] delta written and read back (32 chunks of
            # 64 rows, all seven projections of the `small` llama: 7.6 -> 5.7 ms a layer)
            out[back_to_back].unflatten(0, (k, length)).baddbmm_(shrunk, bt)
            return
        delta = torch.bmm(shrunk, bt)  # [k, length, out]
        flat = delta.view(k * length, -1)
        real = flat if padded.valid is None else flat.index_select(0, padded.valid)
        if first is not None:
            out[first : first + m] += real
        else:  # each row is one chunk's: a gather, add and scatter, rounded once where ``real`` is float32
            out[padded.rows] += real

    def _add_gathered(
        self, j: int, x: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor
    ) -> None:
        """Decode tokens: gather each token's slot A/B and apply them in two batched matmuls."""
        shrunk = torch.bmm(self.lora_a(j).index_select(0, slots), x.index_select(0, rows).unsqueeze(-1))
        delta = torch.bmm(shrunk.transpose(1, 2), self.lora_b(j).index_select(0, slots))
        out.index_add_(0, rows, delta.squeeze(1))

    def _add_dense(
        self, j: int, x: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, dense: Dense
    ) -> None:
        """Decode tokens: every slot of the span on every token, masked to each token's own slot."""
        rank, span = self.ctx.max_rank, dense.end - dense.first
        a = self.lora_a(j)[dense.first : dense.end].reshape(span * rank, -1)
        bt = self.lora_b(j)[dense.first : dense.end].reshape(span * rank, -1)
        tokens = x if dense.every_row else x.index_select(0, rows)
        shrunk = (tokens @ a.T).view(len(rows), span, rank) * dense.one_hot
        delta = shrunk.view(len(rows), span * rank) @ bt
        if dense.every_row:
            out.add_(delta)
        else:
            out.index_add_(0, rows, delta)

    def targeted(self) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """(first column, width, A, Bt) of each sub-projection a resident adapter targets, in order: what
        ``plinth::decode_layer`` adds through ``plinth::lora_add_`` (as :meth:`forward` does); kept until
        a slot changes."""
        if self._targeted is None:
            self._targeted = [
                (self.offsets[j], self.sub_sizes[j], self.lora_a(j), self.lora_b(j))
                for j, users in enumerate(self.users)
                if users
            ]
        return self._targeted

    @torch.no_grad()
    def set_slot(self, slot: int, subs: Sequence[tuple[torch.Tensor, torch.Tensor, float] | None]) -> None:
        """Write one adapter's (A, B, scaling) per sub-projection into ``slot`` (None: not targeted)."""
        self.allocate_slots()
        self._targeted = None
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
            b[:r].copy_((b_weight * scaling).T)
            self.users[j].add(slot)

    def allocate_slots(self) -> None:
        """Give every slot buffer its own zeroed storage, once (they start as a broadcast zero)."""
        for name, buffer in list(self.named_buffers(recurse=False)):
            if name.startswith("lora_") and buffer.stride(0) == 0:
                setattr(self, name, torch.zeros(buffer.shape, dtype=buffer.dtype, device=buffer.device))
