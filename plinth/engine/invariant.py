"""Batch-invariant mode (``EngineConfig.batch_invariant``): a request's numerics do not depend on its batch.

A matmul kernel picks its algorithm, and so its order of summation, from the number of rows it is given:
on an AVX512-BF16 CPU oneDNN's bf16 product of a row equals its one-row product bit for bit up to 32
rows and not beyond, and MKL's float32 one changes regime at 2, 4, 7 or 16 rows depending on the shape
(``benchmarks/invariance_probe.py``). So the same token, prefilled alone, beside other prompts, or
after a prefix-cache hit (fewer rows in its chunk), gets hidden states that differ by a rounding, and a
greedy completion can diverge a few tokens later.

The cure is to give every kernel one shape whatever the batch (the idea of vLLM's
``VLLM_BATCH_INVARIANT`` and Thinking Machines' "Defeating nondeterminism in LLM inference"): linear
layers and the gated activation (:class:`~plinth.engine.layers.SiluAndMul`) run on tiles of exactly
:data:`ROW_TILE` rows, the last one zero-padded, and attention splits the context into fixed-size
pieces (:func:`~plinth.engine.attention.split_kv_attention`). Norms, rotary embeddings, residual adds and
softmax were measured independent of the other rows already.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from plinth.engine.layers import SiluAndMul
from plinth.engine.quantization import replace_weights

# 16 rows: a decode step of up to 16 requests is one tile, and a padded tile costs about what one row
# does (the product is bound by reading the weight); a 512-row prefill's products cost 4-6x one large
# matmul (SmolLM2's shapes, one thread), and a 512-token prefill 3.2x (invariance_probe.py --cost).
ROW_TILE = 16


def row_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` for a row-wise ``fn``, called on zero-padded tiles of exactly :data:`ROW_TILE` rows."""
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    padded = F.pad(flat, (0, 0, 0, -rows % ROW_TILE)) if rows % ROW_TILE else flat
    tiles = [fn(tile) for tile in padded.split(ROW_TILE)]
    out = (tiles[0] if len(tiles) == 1 else torch.cat(tiles))[:rows]
    return out.view(*x.shape[:-1], out.shape[-1])


class DenseWeight(nn.Module):
    """A float ``[out, in]`` weight as a weight module (``forward`` is ``x @ W.T``), so a linear that
    was neither quantized nor prepacked can be tiled like those that were."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class RowTiled(nn.Module):
    """A weight module run on fixed-size row tiles (see :func:`row_tiled`)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return row_tiled(self.inner, x)


def tile_rows(model: nn.Module) -> None:
    """Make every linear layer and gated activation of ``model`` run on fixed-size row tiles, in place
    (after any quantization or prepacking: the tiles wrap whatever kernel the weight already uses)."""
    replace_weights(model, DenseWeight)  # linears still holding a float weight get a weight module
    for module in list(model.modules()):
        weight = getattr(module, "qweight", None)
        if isinstance(weight, nn.Module) and not isinstance(weight, RowTiled):
            module.qweight = RowTiled(weight)
        for name, child in list(module.named_children()):
            if isinstance(child, SiluAndMul):
                setattr(module, name, RowTiled(child))
