"""Plinth's int4/int8 matmul (``torch.ops.plinth.qlinear``, ``engine/csrc/qlinear.cpp``): it multiplies by
the weights its packing stands for, on each of its paths (few rows: vdpbf16ps, or FMAs on AVX2; many:
AMX tiles, or on AVX2 each group dequantized once for all rows; on AVX2 from 64 rows (int4) or 256 (int8),
MKL's GEMM over float32 panels), a row's
result does not depend on the rows beside it within a path, it agrees with torch's kernels on the same
quantized weights, and a bf16 engine serves through it, LoRA on top."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter

import plinth.engine.quantization as quantization
from plinth.engine import EngineConfig, LLMEngine, native
from plinth.engine.quantization import PackedWeight

pytestmark = pytest.mark.skipif(
    not native.has("qlinear"), reason="plinth::qlinear is built for CPUs with AVX512-BF16 or AVX2"
)
FEW_ROWS = (1, 2, 3, 5)  # the vdpbf16ps path (kFewRows = 5; on AVX2 up to 4 rows, 5 the dequantized path)
MANY_ROWS = (6, 16, 17, 40)  # AMX tiles where the CPU has them, 16-row tiles and a shorter last one
GEMM_ROWS = (64, 256, 700)  # on AVX2, MKL from 64 rows (int4) or 256; 700 rows are two GEMM calls (512, 188)
# output rows: 4-block groups only, groups and a leftover block, leftover blocks only (see chunk())
SHAPES = [(64, 64), (80, 96), (48, 128), (576, 576)]


def _avx2_build() -> bool:
    """Whether the operators were built for AVX2 (simd.h takes AVX-512 where the CPU has AVX512-BF16)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    return "avx512_bf16" not in flags.split()


def _reference(weight: torch.Tensor, method: str) -> torch.Tensor:
    """The float64 weight the packing stands for, from the quantized values and the bf16 scales."""
    if method == "int8":
        q, scales = quantization._quantize_int8(weight)
        return q.double() * scales.bfloat16().double()[:, None]
    q, scale, low = quantization._quantize_int4(weight)
    rows, cols = weight.shape
    per_input = q.double().view(rows, -1, quantization.INT4_GROUP)
    zero = (low + 8 * scale).bfloat16().double()  # stored as torch's int4 kernels store it
    dequantized = (per_input - 8) * scale.bfloat16().double()[..., None] + zero[..., None]
    return dequantized.view(rows, cols)


@pytest.mark.parametrize("method", ["int4", "int8"])
@pytest.mark.parametrize("shape", SHAPES)
def test_it_multiplies_by_the_weights_its_packing_stands_for(method: str, shape: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    weight = torch.randn(shape, generator=generator)
    packed = PackedWeight(weight.bfloat16(), method, kernel="plinth")
    expected_weight = _reference(weight.bfloat16().float(), method)
    for rows in FEW_ROWS + MANY_ROWS + GEMM_ROWS:  # (576, 576): two panels of output blocks on AVX2
        x = torch.randn(rows, shape[1], generator=generator).bfloat16()
        got = packed(x).double()
        exact = x.double() @ expected_weight.T
        # the sums run in float32 and the result is rounded to bf16 (2^-9 relative, at most)
        bound = 2**-8 * exact.abs() + 1e-5 * (x.double().abs() @ expected_weight.abs().T)
        assert bool(((got - exact).abs() <= bound).all()), f"{method} {shape}, {rows} rows"


@pytest.mark.parametrize("method", ["int4", "int8"])
def test_a_rows_result_does_not_depend_on_the_rows_beside_it(method: str) -> None:
    generator = torch.Generator().manual_seed(1)
    packed = PackedWeight(torch.randn(80, 96, generator=generator).bfloat16(), method, kernel="plinth")
    x = torch.randn(40, 96, generator=generator).bfloat16()
    for path in (FEW_ROWS, MANY_ROWS):
        results = [packed(x[:rows]) for rows in path]
        for result in results[1:]:
            assert torch.equal(result[: path[0]], results[0])  # bit for bit


@pytest.mark.parametrize("method", ["int4", "int8"])
def test_with_gemm_rows_past_the_count_many_rows_keep_the_tiles_bits(method: str) -> None:
    generator = torch.Generator().manual_seed(2)
    packed = PackedWeight(torch.randn(80, 96, generator=generator).bfloat16(), method, kernel="plinth")
    x = torch.randn(300, 96, generator=generator).bfloat16()
    tiles = torch.ops.plinth.qlinear(
        x, packed.packed, packed.scales, packed.zeros, packed.bits, gemm_rows=301
    )
    assert torch.equal(tiles[:40], packed(x[:40]))  # the 40-row product takes the tiles whatever gemm_rows


@pytest.mark.skipif(not _avx2_build(), reason="the thresholds of an AVX2 build (AVX-512 has no GEMM path)")
@pytest.mark.parametrize(("method", "gemm_from"), [("int4", 64), ("int8", 256)])
def test_by_default_int4_takes_mkls_gemm_from_64_rows_and_int8_from_256(method: str, gemm_from: int) -> None:
    """int4's own tiles unpack every nibble once per row tile, so MKL's GEMM over dequantized panels
    overtakes them sooner (48-64 rows on a Zen 3) than int8's (~192)."""
    generator = torch.Generator().manual_seed(3)
    packed = PackedWeight(torch.randn(576, 576, generator=generator).bfloat16(), method, kernel="plinth")
    qlinear = torch.ops.plinth.qlinear
    for rows in (gemm_from - 1, gemm_from):
        x = torch.randn(rows, 576, generator=generator).bfloat16()
        gemm = qlinear(x, packed.packed, packed.scales, packed.zeros, packed.bits, gemm_rows=1)
        tiles = qlinear(x, packed.packed, packed.scales, packed.zeros, packed.bits, gemm_rows=1 << 40)
        assert not torch.equal(gemm, tiles)  # the two paths sum in different orders: the bits tell them apart
        assert torch.equal(packed(x), gemm if rows >= gemm_from else tiles), f"{method}, {rows} rows"


@pytest.mark.parametrize("method", ["int4", "int8"])
def test_it_agrees_with_torchs_kernels_on_the_same_weights(method: str) -> None:
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(576, 576, generator=generator).bfloat16()
    ours, torchs = PackedWeight(weight, method, kernel="plinth"), PackedWeight(weight, method, kernel="aten")
    assert ours.kernel == "plinth" and torchs.kernel == "aten"
    for rows in (1, 16, 128):
        x = torch.randn(rows, 576, generator=generator).bfloat16()
        got, expected = ours(x).float(), torchs(x).float()
        # the same quantized weights; the sums' order and the final rounding differ
        assert float((got - expected).abs().max()) < 2**-7 * float(expected.abs().max())


def test_bad_operands_are_refused_with_a_reason() -> None:
    packed = PackedWeight(torch.randn(64, 64).bfloat16(), "int4", kernel="plinth")
    qlinear = torch.ops.plinth.qlinear
    with pytest.raises(RuntimeError, match="x has 32 features"):
        qlinear(torch.randn(1, 32).bfloat16(), packed.packed, packed.scales, packed.zeros, 4)
    with pytest.raises(RuntimeError, match="2-D bfloat16"):
        qlinear(torch.randn(1, 64), packed.packed, packed.scales, packed.zeros, 4)
    with pytest.raises(RuntimeError, match="int4 needs zeros"):
        qlinear(torch.randn(1, 64).bfloat16(), packed.packed, packed.scales, None, 4)
    with pytest.raises(RuntimeError, match="bits must be 4 or 8"):
        qlinear(torch.randn(1, 64).bfloat16(), packed.packed, packed.scales, packed.zeros, 2)
    with pytest.raises(ValueError, match="kernel must be one of plinth, aten"):
        PackedWeight(torch.randn(64, 64).bfloat16(), "int4", kernel="mkl")


def test_a_bf16_engine_serves_through_it_with_lora_on_top(tiny_llama, tmp_path, monkeypatch) -> None:
    """The int4 engine's layers take the plinth kernel (the 1820-row LM head, not a multiple of 16 rows,
    keeps torch's), and its greedy decoding, adapter or not, is what the same engine decodes on torch's
    kernels alone."""
    adapter = make_peft_adapter(tiny_llama, tmp_path / "qv", targets=("q_proj", "v_proj"), seed=3)
    prompts = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]
    runs = {}
    for kernel in ("plinth", "aten"):
        if kernel == "aten":
            monkeypatch.setattr(quantization, "_default_kernel", lambda weight: "aten")
        config = EngineConfig(model=str(tiny_llama), dtype="bfloat16", enable_lora=True, quantization="int4")
        engine = LLMEngine(config)
        engine.add_lora("qv", adapter)
        kernels = {
            name: module.qweight.kernel
            for name, module in engine.runner.model.named_modules()
            if isinstance(getattr(module, "qweight", None), PackedWeight)
        }
        assert kernels.pop("lm_head") == "aten"
        assert kernels and set(kernels.values()) == {kernel}
        runs[kernel] = [greedy_tokens_and_logprobs(engine, prompts, 4, name) for name in (None, "qv")]
    for ours, torchs in zip(runs["plinth"], runs["aten"], strict=True):
        for (tokens, logprobs), (ref_tokens, ref_logprobs) in zip(ours, torchs, strict=True):
            assert tokens[:2] == ref_tokens[:2]
            torch.testing.assert_close(
                torch.tensor(logprobs[:2]), torch.tensor(ref_logprobs[:2]), atol=0.05, rtol=0
            )
    assert runs["plinth"][0] != runs["plinth"][1]  # the adapter changed the output
