"""Weight-only quantization of the linear layers (``--quantization int8|int4``), on torch's CPU kernels.

A decode step of a small model reads every weight once per token, so it is bound by memory bandwidth:
storing weights in 8 or 4 bits and dequantizing inside the matmul kernel reads 2-4x fewer bytes than
bf16. Activations stay in the model's dtype; only weights are quantized, after loading (and after a
``merge_lora``), so any checkpoint format works.

- ``int8``: symmetric, one scale per output channel.
- ``int4``: asymmetric, one scale and minimum per group of :data:`INT4_GROUP` inputs (the layout of
  GGUF's Q4_1). Its packings need the output size divisible by 16 and the input size by the group; a
  matrix that is not is stored as int8 instead.

Two kernels, chosen per weight when it is packed (:attr:`PackedWeight.kernel`):

- ``plinth`` (bf16 models on a CPU with AVX512-BF16 or AVX2, the usual case): Plinth's own
  ``torch.ops.plinth.qlinear`` (``engine/csrc/qlinear.cpp``), on its own packing (:func:`_pack_native`).
  For one or two rows it streams the weights at the memory's speed; for more it multiplies on the AMX
  tile unit where there is one. Against torch's kernels on SmolLM2's shapes: 1.3x (int4) and 1.6x
  (int8 LM head) faster for one row, 3-6x for 16-256 rows (``benchmarks/qlinear.py``). On an AVX2 CPU
  (a Zen 3) it is about torch's speed per linear (0.9-1.2x), and it lets int4 layers into the fused
  decode layer: served, one stream of SmolLM2 in int4 went from 36.7 to 57.7 tok/s there.
- ``aten`` (float32 or fp16 models, other CPUs): ``_weight_int8pack_mm`` and
  ``_weight_int4pack_mm_for_cpu`` on weights packed by ``_convert_weight_to_int4pack_for_cpu``.

The embedding table stays in the model's dtype (a lookup reads one row per token); a tied LM head gets
its own quantized copy, as it is the largest matrix a decode step reads; in int8 under ``int4`` too
(:func:`quantize_linears`). LoRA adapters are applied unmerged on top of the quantized base output
(:class:`~plinth.engine.lora.layers.LoraLinear`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from plinth.engine import native
from plinth.engine.allocator import release_freed_memory

METHODS = ("int8", "int4")
KERNELS = ("plinth", "aten")
INT4_GROUP = 32
_INT4_N_MULTIPLE = 16
NATIVE_BLOCK = 16  # output rows per block of the native kernels' packings (csrc/simd.h)


@functools.cache
def interleave() -> int:
    """Blocks stored side by side in the native kernels' packings: what the built library was compiled
    with (``csrc/simd.h``, ``kInterleave``: 4 on AVX-512, 2 on AVX2), 4 where it is not built (nothing
    then reads the packing but Python)."""
    return int(torch.ops.plinth.interleave()) if native.has("interleave") else 4


class PackedWeight(nn.Module):
    """A quantized ``[out, in]`` weight and the kernel that multiplies by it; ``forward`` is ``x @ W.T``."""

    def __init__(self, weight: torch.Tensor, method: str, kernel: str | None = None) -> None:
        super().__init__()
        out_features, in_features = weight.shape
        if method == "int4" and (out_features % _INT4_N_MULTIPLE or in_features % INT4_GROUP):
            method = "int8"
        self.method, self.dtype = method, weight.dtype
        self.kernel = kernel or _default_kernel(weight)
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {self.kernel!r}")
        if self.kernel == "plinth" and not native.has("qlinear"):
            raise ValueError("the plinth kernel needs the native qlinear operator (AVX2 or AVX512-BF16)")
        self.bits = 4 if method == "int4" else 8
        zeros = None
        if self.kernel == "plinth":
            packed, scales, zeros = _pack_native_by_rows(weight.detach(), method)
        else:
            packed, scales = (_pack_int4 if method == "int4" else _pack_int8)(weight.detach().float())
            scales = scales.to(weight.dtype)
        self.register_buffer("packed", packed)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # the engine's activations are [tokens, features]: no reshape and view to dispatch
            return self._matmul(x)
        y = self._matmul(x.reshape(-1, x.shape[-1]))
        return y.view(*x.shape[:-1], y.shape[-1])

    def _matmul(self, flat: torch.Tensor) -> torch.Tensor:
        if self.kernel == "plinth":
            return torch.ops.plinth.qlinear(flat, self.packed, self.scales, self.zeros, self.bits)
        if self.method == "int4":
            return torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, INT4_GROUP, self.scales)
        return torch.ops.aten._weight_int8pack_mm(flat, self.packed, self.scales)


def _default_kernel(weight: torch.Tensor) -> str:
    """``plinth`` where its kernel serves the weight (bf16 on a CPU it was built for), else ``aten``."""
    out_features, in_features = weight.shape
    fits = out_features % NATIVE_BLOCK == 0 and in_features % 2 == 0
    return "plinth" if fits and weight.dtype == torch.bfloat16 and native.has("qlinear") else "aten"


_SLICE_ROWS = 64 * NATIVE_BLOCK  # rows quantized at a time: whole groups of interleave() blocks


def _pack_native_by_rows(
    weight: torch.Tensor, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`_pack_native` of ``weight`` (any float dtype), ``_SLICE_ROWS`` rows at a time, written into
    the whole result: each row's scale depends on that row only, and a slice of whole groups of four
    blocks is a contiguous part of the packing, so the bytes are the whole matrix's. Why: the float32
    copy and the quantization's intermediates of a whole 49,152-row LM head were ~170 MB above the
    loaded model, the start-up peak of an int4 or int8 server (``benchmarks/memory.py``)."""
    rows = weight.shape[0]
    outputs: list[torch.Tensor | None] = []
    for start in range(0, rows, _SLICE_ROWS):
        parts = _pack_native(weight[start : start + _SLICE_ROWS].float(), method)
        if not outputs:  # sized from the first slice: the packing's shapes per block
            blocks = rows // NATIVE_BLOCK
            outputs = [None if p is None else p.new_empty((blocks, *p.shape[1:])) for p in parts]
        first = start // NATIVE_BLOCK
        for out, part in zip(outputs, parts, strict=True):
            if out is not None and part is not None:
                out[first : first + part.shape[0]] = part
    packed, scales, zeros = outputs
    assert packed is not None and scales is not None
    return packed, scales, zeros


def _pack_native(weight: torch.Tensor, method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The packing ``plinth::qlinear`` reads (``engine/csrc/qlinear.cpp``): output rows in blocks of 16,
    and per block 32 bytes per chunk of inputs, byte ``2r + t`` belonging to the block's row ``r``.

    - int4: a chunk is 4 inputs, byte ``2r + t`` = ``q[4c + t] | q[4c + 2 + t] << 4``; scales and
      zeros bf16 ``[blocks, groups, 16]``, ``w = (q - 8) * scale + zero``, ``q`` in 0..15.
    - int8: a chunk is 2 inputs, byte ``2r + t`` = ``q[2c + t]``; scales bf16 ``[blocks, 1, 16]``,
      ``w = q * scale``, ``q`` in -127..127.

    The values are those of the ``aten`` packing, rounded the same way: the same weights either way."""
    rows, cols = weight.shape
    blocks = rows // NATIVE_BLOCK
    if method == "int8":
        q, scales = _quantize_int8(weight)
        packed = q.view(torch.uint8).view(blocks, NATIVE_BLOCK, cols // 2, 2).transpose(1, 2)
        return interleave_blocks(packed), scales.bfloat16().view(blocks, 1, 16), None
    q, scale, low = _quantize_int4(weight)
    # [block, row, chunk, half, t]: input 4 * chunk + 2 * half + t
    quads = q.to(torch.uint8).view(blocks, NATIVE_BLOCK, cols // 4, 2, 2)
    packed = (quads[..., 0, :] | (quads[..., 1, :] << 4)).transpose(1, 2)

    def per_block(values: torch.Tensor) -> torch.Tensor:
        return values.bfloat16().view(blocks, NATIVE_BLOCK, -1).transpose(1, 2).contiguous()

    return interleave_blocks(packed), per_block(scale), per_block(low + 8 * scale)


def interleave_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """``[blocks, chunks, *inner]`` (any strides) stored as the native kernels stream it, in one copy:
    groups of :func:`interleave` blocks with their chunks side by side (``[group, chunk, interleave,
    *inner]``), the blocks after the last whole group one after the other. Returns ``[blocks, chunks,
    prod(inner)]``, contiguous, whose memory holds that order (one allocation: the LM head's packing is
    the start-up peak); :func:`interleaved_blocks` reads it back."""
    count, chunks, *inner = blocks.shape
    width = math.prod(inner)
    out = torch.empty(count * chunks * width, dtype=blocks.dtype, device=blocks.device)
    group = interleave()
    grouped = count // group * group
    split = grouped * chunks * width
    side_by_side = blocks[:grouped].unflatten(0, (-1, group)).transpose(1, 2)
    out[:split].view(grouped // group, chunks, group, *inner).copy_(side_by_side)
    out[split:].view(count - grouped, chunks, *inner).copy_(blocks[grouped:])
    return out.view(count, chunks, width)


def interleaved_blocks(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`interleave_blocks` wrote, as views of its storage (no copy): the grouped blocks as
    ``[group, block in group, chunk, width]`` and the blocks after them as ``[block, chunk, width]``."""
    count, chunks, width = packed.shape
    group = interleave()
    grouped = count // group * group
    flat, split = packed.view(-1), grouped * chunks * width
    groups = flat[:split].view(-1, chunks, group, width).transpose(1, 2)
    return groups, flat[split:].view(-1, chunks, width)


def _quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
    return torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8), scales


def _quantize_int4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q`` (int32, 0..15), and the per-group scale and minimum (``w ≈ q * scale + min``)."""
    rows, cols = weight.shape
    groups = weight.view(rows, cols // INT4_GROUP, INT4_GROUP)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-12)
    q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
    return q.view(rows, cols), scale, low


def _pack_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q, scales = _quantize_int8(weight)
    return q.contiguous(), scales


def _pack_int4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group: ``w ≈ q * scale + min`` with ``q`` in 0..15; the kernel wants ``(q - 8) * scale + zero``,
    so ``zero = min + 8 * scale``, and scales/zeros as ``[groups, out, 2]``."""
    q, scale, low = _quantize_int4(weight)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    return packed, torch.stack((scale, low + 8 * scale), dim=-1).transpose(0, 1).contiguous()


class QuantizedLinear(nn.Module):
    """Stands in for an ``nn.Linear`` whose weight was replaced (quantized, or prepacked for oneDNN)."""

    def __init__(self, linear: nn.Linear, qweight: nn.Module) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.qweight = qweight
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.qweight.forward(x)  # not the module call: ~1 us less of hook checks, ~120 times a step
        return y if self.bias is None else y + self.bias


def quantize_linears(model: nn.Module, method: str) -> None:
    """Quantize every ``nn.Linear`` of ``model`` in place (CPU kernels); with ``int4`` the LM head
    (``model.lm_head``, if any) takes int8.

    Why the head keeps 8 bits: every logit is a product with it, so its error reaches every token. A
    Q4_1 GGUF such as the packaged SmolLM2's holds its tied embedding/head as Q8_0 for that reason, and
    re-quantizing that head to 4 bits was most of int4's error: on the packaged model (``benchmarks/
    quantization.py``) mean KL against bf16 0.048 with an int4 head, 0.003 with an int8 one; top-1
    agreement 86.1% -> 98.0%."""
    replace_weights_by_layer(model, quantizer(model, method))


def quantizer(model: nn.Module, method: str) -> Callable[[torch.Tensor], nn.Module]:
    """The weight module :func:`quantize_linears` gives each linear of ``model``: ``method``, and
    int8 for the LM head under int4."""
    if method not in METHODS:
        raise ValueError(f"quantization must be one of {', '.join(METHODS)}; got {method!r}")
    head = getattr(model, "lm_head", None)
    head_weight = head.weight if isinstance(head, nn.Linear) else None
    return lambda weight: PackedWeight(weight, "int8" if weight is head_weight else method)


def replace_weights_by_layer(model: nn.Module, make: Callable[[torch.Tensor], nn.Module]) -> None:
    """:func:`replace_weights` one decoder layer at a time, then the rest (the LM head), handing the
    heap's free pages back after each.

    Why: with freed memory kept in the process (:func:`~plinth.engine.allocator.keep_freed_memory`),
    the replaced weights and each conversion's float32 copy stayed resident until one trim at the end,
    and new weights did not reuse their holes: quantizing SmolLM2 to int4 all at once peaked 329 MB
    above the loaded bf16 model, packing it for bf16 ~85 MB (``benchmarks/memory.py``)."""
    stacks = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    for module in [*(layer for stack in stacks for layer in stack), model]:
        if replace_weights(module, make):  # a trim walks the whole heap: only after a change
            release_freed_memory()


def replace_weights(model: nn.Module, make: Callable[[torch.Tensor], nn.Module]) -> int:
    """Give every ``nn.Linear`` of ``model`` the weight module ``make(weight)`` (``forward`` is
    ``x @ W.T``) in place of its float weight; returns how many it replaced.

    A plain linear is swapped for :class:`QuantizedLinear`. A subclass that declares a ``qweight``
    slot (LoRA layers: they keep their class, adapter slots and names) gets the new weight there and
    drops its float one; one that already dropped it (its weight replaced before) is left as it is.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, QuantizedLinear(child, make(child.weight)))
                replaced += 1
            elif isinstance(child, nn.Linear) and hasattr(child, "qweight") and child.weight is not None:
                child.qweight = make(child.weight)
                child.register_parameter("weight", None)
                replaced += 1
    return replaced
