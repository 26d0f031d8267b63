"""Building blocks of the Llama-family transformer: RMSNorm, the gated activation and rotary embeddings.

They work on a flat ``[num_tokens, hidden]`` tensor: every token of every request in a step is
one row, so linear layers run as one matmul over the whole continuous batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plinth.engine import native


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 as the reference implementations do.

    The references upcast to float32, normalize, round to the model's dtype, then scale by the
    weight. For a bf16/fp16 model on a CPU that is one operator of Plinth's own
    (``torch.ops.plinth.rms_norm``, :mod:`plinth.engine.native`): ATen's ``rms_norm`` is a composite of
    ~25 dispatches there (12 -> 2 us a call for one row of 576, 3.2 -> 0.5 ms for 2,048 rows; equal to
    the reference formula but for a few elements in 10^5, by one or two units in the last place).
    Elsewhere (float32, a GPU, no native operators), ATen's kernel gives the reference's bits (on a
    bf16/fp16 input it accumulates and normalizes in float32 and rounds once); both are tested in
    ``tests/engine/test_layers.py``.
    """

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _native_ok(x, self.weight):
            return torch.ops.plinth.rms_norm(x, self.weight, self.eps)
        return self.weight * F.rms_norm(x, self.weight.shape, eps=self.eps)


def _native_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The native operator applies: CPU, one of the serving dtypes (bf16, fp16: it rounds to them as
    the reference does; float32 keeps ATen's arithmetic, the one the parity tests hold to 1e-4), and
    no gradient wanted (it has no backward)."""
    return (
        x.device.type == "cpu"
        and x.dtype in _NATIVE_DTYPES
        and x.dtype == weight.dtype
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and native.available()
    )


_NATIVE_DTYPES = (torch.bfloat16, torch.float16)


class SiluAndMul(nn.Module):
    """``silu(gate) * up`` of a fused gate/up output, a module so batch-invariant mode can run it on
    fixed-size row tiles: ATen computes the elements at the end of each thread's share of a tensor
    with scalar code, whose ``exp`` can round differently from the vectorized one, so without tiles a
    row's activation depends on how many rows the step holds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (rotate-half layout) with a precomputed cos/sin table.

    ``table`` looks a step's positions up once for every layer; ``rotate`` then costs four
    dispatches: ``rotate_half(x) * sin`` is computed as ``roll(x) * sin_signed`` (the first half of
    the sine negated in the table), which equals it exactly because negation is exact.
    """

    cos: torch.Tensor
    sin_signed: torch.Tensor

    def __init__(
        self, head_dim: int, max_positions: int, theta: float, scaling: dict[str, Any] | None
    ) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        inv_freq = scale_inv_freq(inv_freq, scaling)
        freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
        # Computed in float32, stored in the model's dtype (as the reference casts them per call).
        dtype = torch.get_default_dtype()
        sin = freqs.sin()
        self.register_buffer("cos", freqs.cos().repeat(1, 2).to(dtype), persistent=False)
        self.register_buffer("sin_signed", torch.cat((-sin, sin), dim=-1).to(dtype), persistent=False)

    def table(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin of each token's position, ``[tokens, 1, head_dim]`` each."""
        return self.cos[positions].unsqueeze(1), self.sin_signed[positions].unsqueeze(1)

    @staticmethod
    def rotate(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Rotate ``x`` of shape ``[tokens, heads, head_dim]`` by the positions ``table`` holds."""
        cos, sin_signed = table
        return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * sin_signed


def scale_inv_freq(inv_freq: torch.Tensor, scaling: dict[str, Any] | None) -> torch.Tensor:
    """Apply a checkpoint's rope scaling (``linear`` or Llama 3's frequency-dependent ``llama3``)."""
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling.get("factor", 1.0))
    if kind == "linear":
        return inv_freq / factor
    if kind != "llama3":
        raise ValueError(f"rope scaling {kind!r} is not supported (supported: linear, llama3)")
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    old_len = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, smoothed, scaled)
