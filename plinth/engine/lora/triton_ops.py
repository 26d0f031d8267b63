"""LoRA's two products on a GPU as Triton kernels, every adapter token of a step in one launch each.

Why: on a GPU the torch paths of :mod:`~plinth.engine.lora.layers` cost a launch per prefill chunk
and a gather of each token's A and B (a copy of ``tokens x rank x features`` per projection) for decode
tokens. Here a step's adapter tokens are grouped by slot once (:class:`Grouped`, built on the host
with the step's batch), and each product is one kernel over all groups, S-LoRA/Punica's segmented
gather matmul (SGMV): a program multiplies up to ``BLOCK_M`` rows of one group by a tile of its own
slot's weight, read where it lies in the slot buffers, so a prefill chunk's rows share each weight
tile and a decode token reads only its own slot. ``shrink`` writes ``x · Aᵀ`` in float32, ``expand``
adds ``that · Bᵀ`` into the layer's output (a column slice of it, for a fused projection).

Rows of different groups are different tokens and a program's rows and columns are its own, so no
two programs write one element: no atomics, and a token's result does not depend on the order the
programs run in. Without a GPU the kernels run on Triton's interpreter (``TRITON_INTERPRET=1``, set
before this module is imported), which is how the test suite checks them on CPU tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# Rows per program: a decode token is a group of one, so a smaller tile would waste less, but tl.dot
# needs 16 at least.
BLOCK_M = 16


@dataclass(slots=True)
class Grouped:
    """A step's adapter tokens grouped by slot: ``order[starts[g]:starts[g + 1]]`` are the rows of group
    ``g``, which all use slot ``slots[g]``."""

    order: torch.Tensor  # [tokens] int32 rows of the step's activations, group after group
    starts: torch.Tensor  # [groups + 1] int32
    slots: torch.Tensor  # [groups] int32
    longest: int  # rows in the largest group: the grid's second dimension

    @classmethod
    def build(cls, spans: list[tuple[int, int, int | None]], device: torch.device) -> Grouped | None:
        """``spans``: (first row, number of tokens, slot or None for the base model) per request, as
        :meth:`LoraBatch.build <plinth.engine.lora.layers.LoraBatch.build>` takes them; None when no
        token uses an adapter. One host-to-device copy."""
        by_slot: dict[int, list[int]] = {}
        for start, count, slot in spans:
            if slot is not None and count > 0:
                by_slot.setdefault(slot, []).extend(range(start, start + count))
        if not by_slot:
            return None
        order: list[int] = []
        starts, slots = [0], []
        for slot in sorted(by_slot):
            order.extend(by_slot[slot])
            starts.append(len(order))
            slots.append(slot)
        packed = torch.tensor(order + starts + slots, dtype=torch.int32).to(device, non_blocking=True)
        tokens, groups = len(order), len(slots)
        return cls(
            packed[:tokens],
            packed[tokens : tokens + groups + 1],
            packed[tokens + groups + 1 :],
            max(len(rows) for rows in by_slot.values()),
        )


@triton.jit
def _grouped_matmul(
    x_ptr,
    w_ptr,
    out_ptr,
    order_ptr,
    starts_ptr,
    slots_ptr,
    K,
    N,
    stride_x,
    stride_slot,
    stride_k,
    stride_n,
    stride_out,
    ACCUMULATE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """out[row, n] (+)= sum_k x[row, k] · w[slot, k, n] for the rows of one group, one tile of n."""
    group = tl.program_id(0)
    first = tl.load(starts_ptr + group) + tl.program_id(1) * BLOCK_M
    end = tl.load(starts_ptr + group + 1)
    if first < end:
        slot = tl.load(slots_ptr + group).to(tl.int64)
        at = first + tl.arange(0, BLOCK_M)
        in_group = at < end
        rows = tl.load(order_ptr + at, mask=in_group, other=0).to(tl.int64)
        cols = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        in_n = cols < N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            in_k = ks < K
            x = tl.load(
                x_ptr + rows[:, None] * stride_x + ks[None, :],
                mask=in_group[:, None] & in_k[None, :],
                other=0.0,
            )
            w = tl.load(
                w_ptr + slot * stride_slot + ks[:, None] * stride_k + cols[None, :] * stride_n,
                mask=in_k[:, None] & in_n[None, :],
                other=0.0,
            )
            if x.dtype == w.dtype and x.dtype != tl.float32:  # shrink in bf16/fp16: the tensor cores
                acc += tl.dot(x, w)
            else:  # expand from float32 (the weight converts exactly), or float32 throughout: no TF32
                acc += tl.dot(x.to(tl.float32), w.to(tl.float32), input_precision="ieee")
        where = out_ptr + rows[:, None] * stride_out + cols[None, :]
        mask = in_group[:, None] & in_n[None, :]
        if ACCUMULATE:
            acc += tl.load(where, mask=mask, other=0.0).to(tl.float32)
        tl.store(where, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, grouped: Grouped, k_major: bool, accumulate: bool
) -> None:
    """``w`` is ``[slots, N, K]`` (``k_major=False``: A as the slots hold it) or ``[slots, K, N]``."""
    n, k = (w.shape[1], w.shape[2]) if not k_major else (w.shape[2], w.shape[1])
    stride_k, stride_n = (w.stride(2), w.stride(1)) if not k_major else (w.stride(1), w.stride(2))
    assert x.stride(1) == 1 and out.stride(1) == 1, "rows must be contiguous"
    block_n = min(64, max(16, triton.next_power_of_2(n)))
    block_k = min(64, max(16, triton.next_power_of_2(k)))
    grid = (len(grouped.slots), -(-grouped.longest // BLOCK_M), -(-n // block_n))
    _grouped_matmul[grid](
        x, w, out, grouped.order, grouped.starts, grouped.slots,
        k, n, x.stride(0), w.stride(0), stride_k, stride_n, out.stride(0),
        ACCUMULATE=accumulate, BLOCK_M=BLOCK_M, BLOCK_N=block_n, BLOCK_K=block_k,
    )  # fmt: skip


def shrink(x: torch.Tensor, a: torch.Tensor, grouped: Grouped) -> torch.Tensor:
    """``x · A_slotᵀ`` of every grouped row, float32 ``[rows of x, rank]`` (rows outside the groups are
    left unwritten). ``a``: ``[slots, rank, in]``, as :meth:`LoraLinear.lora_a` holds it."""
    shrunk = torch.empty(x.shape[0], a.shape[1], dtype=torch.float32, device=x.device)
    _launch(x, a, shrunk, grouped, k_major=False, accumulate=False)
    return shrunk


def expand_(out: torch.Tensor, shrunk: torch.Tensor, bt: torch.Tensor, grouped: Grouped) -> None:
    """``out[row] += shrunk[row] · Bt_slot`` for every grouped row, rounded once to ``out``'s dtype.
    ``bt``: ``[slots, rank, out]`` (B transposed, scaling folded in, as :meth:`LoraLinear.lora_b`)."""
    _launch(shrunk, bt, out, grouped, k_major=True, accumulate=True)


def add_(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, bt: torch.Tensor, grouped: Grouped) -> None:
    """``out[row] += B_slot · A_slot · x[row]`` for every grouped row: both products, one launch each."""
    expand_(out, shrink(x, a, grouped), bt, grouped)
