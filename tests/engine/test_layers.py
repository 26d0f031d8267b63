"""The decoder's small layers against the reference implementations' arithmetic: bit for bit on torch's
path (and in float32), within two units in the last place (a few elements in 10^5 for bf16) on the
native operator."""

from __future__ import annotations

import pytest
import torch

from plinth.engine import layers, native
from plinth.engine.layers import RMSNorm

DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def _reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face's ``LlamaRMSNorm``: normalize in float32, round to the input's dtype, scale."""
    hidden = x.float()
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
    return weight * hidden.to(x.dtype)


def _cases(dtype: torch.dtype, size: int):
    """(norm, x) pairs over input scales and row counts, the norm's weight around 1."""
    gen = torch.Generator().manual_seed(size)
    norm = RMSNorm(size, eps=1e-6).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(size, generator=gen) * 0.5 + 1)
    for scale in (1e-3, 1.0, 300.0):
        for rows in (1, 5, 129):
            yield norm, (torch.randn(rows, size, generator=gen) * scale).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [64, 576, 2048])
def test_rms_norm_on_torch_equals_the_reference_bit_for_bit(
    dtype: torch.dtype, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layers.native, "available", lambda: False)
    for norm, x in _cases(dtype, size):
        with torch.no_grad():
            got = norm(x)
        assert got.dtype == dtype
        assert torch.equal(got, _reference_rms_norm(x, norm.weight, 1e-6)), (x.shape, x.abs().max())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("size", [64, 576, 2048])
def test_rms_norm_on_the_native_operator_matches_the_reference(dtype: torch.dtype, size: int) -> None:
    assert native.available(), "the C++ operators must build on this machine (see the logged warning)"
    bound = {torch.bfloat16: 2.0**-6, torch.float16: 2.0**-9}[dtype]  # two units in the last place
    for norm, x in _cases(dtype, size):
        with torch.no_grad():
            got = norm(x)
        want = _reference_rms_norm(x, norm.weight, 1e-6)
        assert torch.equal(got, torch.ops.plinth.rms_norm(x, norm.weight, 1e-6))  # the module uses it
        assert got.dtype == dtype and got.shape == want.shape
        rel = ((got.float() - want.float()).abs() / want.float().abs().clamp_min(1e-30)).max().item()
        assert rel <= bound, (x.shape, rel)
        assert (got != want).float().mean().item() <= 1e-3


def _lane_order_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The native operator's arithmetic spelled out in float32 tensors: squares added into 16 lanes in
    column order, the lanes added halves onto halves, then 1 / sqrt(mean + eps), both products rounded
    to the dtype (float32 throughout, as the C++ loop)."""
    rows, n = x.shape
    xf = x.float()
    lanes = torch.zeros(rows, 16)
    for column in range(n):
        lanes[:, column % 16] += xf[:, column] * xf[:, column]
    width = 8
    while width:
        lanes[:, :width] += lanes[:, width : 2 * width]
        width //= 2
    mean = lanes[:, :1] / n + eps
    inv = 1 / torch.sqrt(mean.double()).float()  # sqrtf is correctly rounded; torch's float32 sqrt is not
    return (weight.float() * (xf * inv).to(x.dtype).float()).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("size", [64, 72, 576])
def test_rms_norm_on_the_native_operator_is_its_lane_order_bit_for_bit(dtype: torch.dtype, size: int) -> None:
    """bf16 rows run vectorized and fp16 rows element by element; both must be the same arithmetic
    (72 columns leave a tail of 8 past the vectors)."""
    assert native.available(), "the C++ operators must build on this machine (see the logged warning)"
    for norm, x in _cases(dtype, size):
        got = torch.ops.plinth.rms_norm(x, norm.weight.detach(), 1e-6)
        assert torch.equal(got, _lane_order_rms_norm(x, norm.weight.detach(), 1e-6)), (x.shape, x.abs().max())


def test_rms_norm_in_float32_keeps_the_reference_bits_with_the_native_operator_loaded() -> None:
    assert native.available()
    for norm, x in _cases(torch.float32, 576):
        with torch.no_grad():
            assert torch.equal(norm(x), _reference_rms_norm(x, norm.weight, 1e-6))


def test_rms_norm_keeps_torch_when_a_gradient_is_wanted() -> None:
    norm = RMSNorm(64, eps=1e-6)
    x = torch.randn(3, 64, requires_grad=True)
    norm(x).sum().backward()  # the native operator has no backward: torch's path runs
    assert x.grad is not None and norm.weight.grad is not None
