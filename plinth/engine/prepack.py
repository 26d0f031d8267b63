"""bf16 linear weights reordered once, at load, into the layout of the kernel that multiplies by them
(CPU only): Plinth's own (``torch.ops.plinth.bf16_linear``) where it is built, else oneDNN's, else
the weight as it is (:class:`PlainWeight`).

Plinth's kernel (``engine/csrc/bf16_linear.cpp``: AMX tiles read in place, or vdpbf16ps without AMX)
multiplied by SmolLM2's 121 linears 1.2-1.3x faster than the oneDNN path below for 1-64 rows, at its
speed for 512-1024 and 0.8x for 256 (``benchmarks/bf16_linear.py``): one stream's decode step reads the
weights at the memory's speed. Its layout (:func:`pack_native`) holds the same bytes as the weight. On
an AVX2 CPU, where oneDNN refuses bf16, the same kernel (vdpbf16ps's arithmetic in FMAs) read them for
one row 3.1-3.6x as fast as ATen's float32 matmul, and at 0.75-1.0x its speed for 64-256 rows. So
there, from 256 rows (a prefill chunk), it converts the weight to float32 a 1 MB panel at a time and
multiplies with MKL's GEMM: 1.1-1.6x as fast as its own register tiles from 256 to 2,048 rows.

The oneDNN path (CPUs with oneDNN bf16 but no build of Plinth's kernel):

``F.linear`` on a plain ``[out, in]`` bf16 weight makes oneDNN reorder the weight into its blocked
layout on every call: for the matrix-vector products of a decode step that reorder costs as much as
the product. Reordering once (``torch.ops.mkldnn._reorder_linear_weight``, what inductor's weight
freezing does) and calling ``torch.ops.mkldnn._linear_pointwise`` made SmolLM2's per-layer matmuls
2-3x faster at 1-16 rows on an AVX512-BF16 CPU, its LM head 2.5x, and prefill-sized products no
slower (``benchmarks/decode_profile.py``). The results equal ``F.linear``'s bit for bit for a few
rows; with many rows oneDNN blocks the reduction differently, so they can differ by a bf16 rounding.

The packed tensor is an opaque oneDNN tensor: it holds the same bytes as the weight, and a tied LM
head gets its own packed copy beside the embedding table.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from plinth.engine import native
from plinth.engine.quantization import NATIVE_BLOCK, interleave, interleave_blocks, replace_weights_by_layer


def can_prepack(device: torch.device, dtype: torch.dtype) -> bool:
    """bf16 on a CPU where Plinth's kernel (AVX512-BF16, AVX2) or oneDNN's (AVX512-BF16, AMX) multiplies
    it; float32 already runs through MKL's GEMV without a per-call reorder, so it is left as it is."""
    if device.type != "cpu" or dtype != torch.bfloat16:
        return False
    return onednn_bf16() or native.has("bf16_linear")


def onednn_bf16() -> bool:
    """Whether this CPU's oneDNN multiplies bf16 (AVX512-BF16, AMX, or AVX-NE-CONVERT); on plain AVX2 it
    refuses to reorder a bf16 weight."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def native_fits(weight: torch.Tensor) -> bool:
    """Whether Plinth's kernel serves this ``[out, in]`` weight: rows a multiple of 16, inputs even."""
    out_features, in_features = weight.shape
    return native.has("bf16_linear") and out_features % NATIVE_BLOCK == 0 and in_features % 2 == 0


def pack_weight(weight: torch.Tensor, in_place: bool = False) -> nn.Module:
    """The weight module for one bf16 ``[out, in]`` weight: Plinth's kernel where it serves the shape
    (:func:`native_fits`), else oneDNN's (which always copies), else the weight as it is (an AVX2 CPU,
    a shape Plinth's kernel does not serve). ``in_place``: see :func:`pack_native`."""
    if native_fits(weight):
        return NativeBf16Weight(weight, in_place)
    if onednn_bf16():
        return OneDnnWeight(weight)
    return PlainWeight(weight)


class NativeBf16Weight(nn.Module):
    """A ``[out, in]`` bf16 weight in the layout of ``torch.ops.plinth.bf16_linear``; ``forward`` is
    ``x @ W.T`` (bf16 activations)."""

    packed: torch.Tensor

    def __init__(self, weight: torch.Tensor, in_place: bool = False) -> None:
        super().__init__()
        self.out_features = weight.shape[0]
        self.register_buffer("packed", pack_native(weight.detach(), in_place))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # the engine's activations are [tokens, features]: no reshape and view to dispatch
            return torch.ops.plinth.bf16_linear(x, self.packed)
        y = torch.ops.plinth.bf16_linear(x.reshape(-1, x.shape[-1]), self.packed)
        return y.view(*x.shape[:-1], self.out_features)


def pack_native(weight: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``[out, in]`` as ``bf16_linear`` reads it: output rows in blocks of 16, and per block and pair of
    inputs 32 values (row ``r``'s pair at ``2r``, ``2r + 1``: a vdpbf16ps operand and an AMX B-tile
    row), the blocks' pairs interleaved in groups (:func:`~plinth.engine.quantization.interleave_blocks`).
    Shape ``[out / 16, in / 2, 32]``.

    ``in_place=True`` reorders ``weight``'s own memory (it must be contiguous; its old layout is gone)
    and returns a view of it. Each group of blocks is stored where its rows were, so the
    groups are rewritten a slice at a time through a copy of that slice: packing a tied 57 MB LM head
    beside its table was the start-up peak (``benchmarks/memory.py``)."""
    rows, cols = weight.shape
    if not in_place:
        return interleave_blocks(_as_blocks(weight))
    if not weight.is_contiguous():
        raise ValueError("an in-place packing needs a contiguous weight")
    group = interleave() * NATIVE_BLOCK  # rows; slices start on a group, so the last one holds the odd blocks
    step = group * max(1, _SLICE_BYTES // (group * cols * 2))
    flat = weight.view(-1)
    for start in range(0, rows, step):
        end = min(start + step, rows)
        flat[start * cols : end * cols].copy_(interleave_blocks(_as_blocks(weight[start:end])).view(-1))
    return flat.view(rows // NATIVE_BLOCK, cols // 2, 2 * NATIVE_BLOCK)


_SLICE_BYTES = 1 << 20  # an in-place packing's copy: a few groups at a time


def _as_blocks(weight: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` as ``[block, pair of inputs, row in block, 2]`` (a view)."""
    rows, cols = weight.shape
    return weight.view(rows // NATIVE_BLOCK, NATIVE_BLOCK, cols // 2, 2).transpose(1, 2)


class OneDnnWeight(nn.Module):
    """A ``[out, in]`` weight in oneDNN's layout; ``forward`` is ``x @ W.T``."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.out_features = weight.shape[0]
        # No batch-size hint: a layout chosen for one row made 2048-row prefills up to 1.5x slower.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # the engine's activations are [tokens, features]: no reshape and view to dispatch
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        flat = x.reshape(-1, x.shape[-1])
        y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, None, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)


class PlainWeight(nn.Module):
    """A ``[out, in]`` weight left as it is; ``forward`` is ATen's ``F.linear``."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


def prepack_linears(model: nn.Module) -> None:
    """Reorder every ``nn.Linear`` weight of a bf16 CPU model into its kernel's layout, in place.

    Plinth's layout is written over the weight's own memory (:func:`pack_native`) unless another
    parameter or buffer lies in it (a tied embedding); oneDNN's, and those, are copies. Layer by layer,
    handing the freed originals back to the kernel after each: with freed memory kept in the process
    (:func:`~plinth.engine.allocator.keep_freed_memory`) the packed copies did not reuse the
    originals' holes, and packing the whole model at once raised the start-up peak RSS by ~85 MB for
    SmolLM2-135M (``benchmarks/memory.py``), which issue 18 compares with llama.cpp's."""
    shared = _shared_storages(model)

    def pack(weight: torch.Tensor) -> nn.Module:
        own = weight.is_contiguous() and weight.untyped_storage().data_ptr() not in shared
        return pack_weight(weight, in_place=own)

    replace_weights_by_layer(model, pack)  # a tied head packs a copy, unless embed_from_packed_head ran


def _shared_storages(model: nn.Module) -> set[int]:
    """The storages that more than one of ``model``'s parameters and buffers lie in: a weight there is
    read by something else (a tied embedding), so it is packed into a copy."""
    seen: set[int] = set()
    shared: set[int] = set()
    named = itertools.chain(
        model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)
    )
    for _, tensor in named:
        pointer = tensor.untyped_storage().data_ptr()
        (shared if pointer in seen else seen).add(pointer)
    return shared
