"""A decoder layer's decode step as one native operator (``csrc/decode_layer.cpp``), where a step allows it.

Why: at one stream of a small model, a decode step's time outside the matmuls is mostly the interpreter:
per layer, a dozen module calls and ~20 operators dispatched from Python. ``plinth::decode_layer`` runs
the same operators in the same order from C++ (the element-wise ones as loops with ATen's rounding), so
its output is bitwise the Python layer's (``tests/engine/test_decode_layer.py``), and a one-stream step
of SmolLM2-135M takes ~3 ms less (``benchmarks/decode_profile.py``).

When: the layer must be the plain Llama shape Plinth's kernels serve (bf16 projections packed for
``plinth::bf16_linear``, or all quantized to int8 or int4 for ``plinth::qlinear``; no biases, no q/k
norms, a dense MLP), and the step's tokens attended row by row (decode tokens, or prefill chunks of a
few tokens: ``AttentionMetadata.rows``), outside batch-invariant mode; its adapter tokens, if
any, on ``plinth::lora_add_`` (bf16), which the operator calls for each targeted
sub-projection as :class:`~plinth.engine.lora.layers.LoraLinear` does. Anything else runs the Python
layer, which stays the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from plinth.engine import native
from plinth.engine.attention import AttentionMetadata, native_head_dim
from plinth.engine.layers import RMSNorm
from plinth.engine.lora.layers import LoraBatch, LoraLinear
from plinth.engine.prepack import NativeBf16Weight
from plinth.engine.quantization import PackedWeight, QuantizedLinear

__all__ = ["FusedLayer", "fuse", "step_allows"]


@dataclass(frozen=True, slots=True)
class FusedLayer:
    """One layer's operands for ``plinth::decode_layer``, taken once after the weights are packed."""

    norms: tuple[torch.Tensor, torch.Tensor]  # input, post-attention
    projections: tuple[list[torch.Tensor], ...]  # qkv, o, gate/up, down: what the kernel reads of each
    bits: int  # 16: bf16_linear; 8 or 4: qlinear
    heads: int
    kv_heads: int
    eps: float
    scale: float
    adapted: tuple[LoraLinear | None, ...]  # the projections that hold adapter slots

    def __call__(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        kv: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        lora: LoraBatch | None = None,
        keep: torch.Tensor | None = None,
        kept: LoraBatch | None = None,
    ) -> torch.Tensor:
        """The layer's output for every row, or for the rows ``keep`` indexes (``DecoderLayer.forward``),
        whose adapter tokens past the attention are ``kept``'s (``LoraContext.kept``)."""
        group = meta.rows
        assert group is not None, "step_allows said no"
        (norm1, norm2), (qkv, o, gate_up, down) = self.norms, self.projections
        weights: list[torch.Tensor] = []
        where: list[int] = []  # (projection, first column, width) per targeted sub-projection
        if lora is not None:
            for which, projection in enumerate(self.adapted):
                for column, width, a, bt in projection.targeted() if projection is not None else ():
                    where += (which, column, width)
                    weights += (a, bt)
        rows, slots = (lora.rows, lora.slots) if lora is not None else (None, None)
        assert kept is None or kept.native, "the kept rows' adapters on plinth::lora_add_ too"
        kept_rows, kept_slots = (kept.rows, kept.slots) if kept is not None else (None, None)
        return torch.ops.plinth.decode_layer(
            x, norm1, qkv, o, norm2, gate_up, down, self.bits, rope[0], rope[1], kv[0], kv[1],
            meta.slot_mapping, group.block_tables, group.context_lens, group.block_size, self.heads,
            self.kv_heads, self.eps, self.scale, rows, slots, weights, where, keep, kept_rows, kept_slots,
        )  # fmt: skip


def fuse(layer: nn.Module) -> FusedLayer | None:
    """``layer``'s operands if it is a ``DecoderLayer`` the operator serves, else None."""
    if not native.has("decode_layer"):
        return None
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    norms = (getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None))
    if attn is None or mlp is None or not all(isinstance(n, RMSNorm) for n in norms):
        return None
    if attn.q_norm is not None or not native_head_dim(attn.head_dim) or not hasattr(mlp, "gate_up_proj"):
        return None
    projections = (attn.qkv_proj, attn.o_proj, mlp.gate_up_proj, mlp.down_proj)
    packed = [_packed(p) for p in projections]
    weights = [n.weight for n in norms]  # type: ignore[union-attr]
    if any(p is None for p in packed) or any(w.dtype != torch.bfloat16 for w in weights):
        return None
    bits = {b for _, b in packed}  # type: ignore[misc]
    eps = norms[0].eps  # type: ignore[union-attr]
    if len(bits) != 1 or norms[1].eps != eps:  # type: ignore[union-attr]
        return None
    return FusedLayer(
        (weights[0], weights[1]), tuple(tensors for tensors, _ in packed), bits.pop(),  # type: ignore[misc]
        attn.num_heads, attn.num_kv_heads, eps, attn.scale,
        tuple(p if isinstance(p, LoraLinear) else None for p in projections),
    )  # fmt: skip


def _packed(projection: nn.Module) -> tuple[list[torch.Tensor], int] | None:
    """What Plinth's kernel reads of a projection (a packed or quantized linear, or a LoRA layer's base)
    and its bits, if it has no bias and the kernel serves it."""
    weight = getattr(projection, "qweight", None)
    if not isinstance(projection, QuantizedLinear | nn.Linear) or projection.bias is not None:
        return None
    if isinstance(weight, NativeBf16Weight):
        return [weight.packed], 16
    if isinstance(weight, PackedWeight) and weight.kernel == "plinth":
        zeros = [] if weight.zeros is None else [weight.zeros]
        return [weight.packed, weight.scales, *zeros], weight.bits
    return None


def step_allows(meta: AttentionMetadata, lora: LoraBatch | None, dtype: torch.dtype) -> bool:
    """Whether this step's layers may run as ``plinth::decode_layer``: bf16, its tokens attended row by
    row (decode tokens, and prefill chunks short enough: ``AttentionMetadata.rows``, never in
    batch-invariant mode, whose attention splits the context its own way), their adapters (if any) on
    ``plinth::lora_add_``."""
    adapters_native = lora is None or (lora.native and not lora.segments and lora.padded is None)
    return dtype == torch.bfloat16 and adapters_native and meta.rows is not None
