"""The decoder's small layers against the reference implementations' arithmetic, bit for bit."""

from __future__ import annotations

import pytest
import torch

from plinth.engine.layers import RMSNorm


def _reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face's ``LlamaRMSNorm``: normalize in float32, round to the input's dtype, scale."""
    hidden = x.float()
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
    return weight * hidden.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("size", [64, 576, 2048])
def test_rms_norm_equals_the_reference_bit_for_bit(dtype: torch.dtype, size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    norm = RMSNorm(size, eps=1e-6).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(size, generator=gen) * 0.5 + 1)
    for scale in (1e-3, 1.0, 300.0):
        for rows in (1, 5, 129):
            x = (torch.randn(rows, size, generator=gen) * scale).to(dtype)
            with torch.no_grad():
                got = norm(x)
            assert got.dtype == dtype
            assert torch.equal(got, _reference_rms_norm(x, norm.weight, 1e-6)), (scale, rows)
