"""bf16 linear weights reordered once, at load, into oneDNN's blocked layout (CPU only).

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

import torch
from torch import nn

from plinth.engine.allocator import release_freed_memory
from plinth.engine.quantization import replace_weights


def can_prepack(device: torch.device, dtype: torch.dtype) -> bool:
    """bf16 on a CPU whose oneDNN computes bf16 natively (AVX512-BF16 or AMX); float32 already runs
    through MKL's GEMV without a per-call reorder, so it is left as it is."""
    return (
        device.type == "cpu"
        and dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


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


def prepack_linears(model: nn.Module) -> None:
    """Reorder every ``nn.Linear`` weight of a bf16 CPU model into oneDNN's layout, in place.

    Layer by layer, handing the freed originals back to the kernel after each: with freed memory kept
    in the process (:func:`~plinth.engine.allocator.keep_freed_memory`) the packed copies did not reuse
    the originals' holes, and packing the whole model at once raised the start-up peak RSS by ~85 MB
    for SmolLM2-135M (``benchmarks/memory.py``), which issue 18 compares with llama.cpp's."""
    stacks = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    for layer in (layer for stack in stacks for layer in stack):
        replace_weights(layer, OneDnnWeight)
        release_freed_memory()
    replace_weights(model, OneDnnWeight)  # the rest: the LM head
