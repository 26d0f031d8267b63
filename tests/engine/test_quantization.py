"""Weight-only int8/int4 quantization: the stored weights are within half a quantization step of the
originals, and the engine's quantized kernels (LoRA on top, unmerged) compute exactly what a float model
holding those dequantized weights computes."""

from __future__ import annotations

import pytest
import torch
from gguf_fixtures import write_gguf
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter
from torch import nn

import plinth.engine.model_runner as model_runner
from plinth.engine import EngineConfig, LLMEngine, native
from plinth.engine import quantization as quantization_module
from plinth.engine.model import CausalLM
from plinth.engine.model_config import ModelConfig
from plinth.engine.quantization import INT4_GROUP, PackedWeight, QuantizedLinear, quantize_linears

STEPS = 6
PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]


def dequantized(packed: PackedWeight, in_features: int) -> torch.Tensor:
    """The float weight the packed bits stand for, read back through the kernel (float32: exact)."""
    return packed(torch.eye(in_features)).T


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_stored_weights_are_within_half_a_step(method: str) -> None:
    weight = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    packed = PackedWeight(weight, method)
    assert packed.method == method
    error = (dequantized(packed, 128) - weight).abs()
    if method == "int8":  # one symmetric scale per output row
        step = weight.abs().amax(dim=1, keepdim=True) / 127
    else:  # one affine scale per group of inputs
        groups = weight.view(64, -1, INT4_GROUP)
        step = ((groups.amax(-1) - groups.amin(-1)) / 15).repeat_interleave(INT4_GROUP, dim=1)
    assert bool((error <= step / 2 + 1e-5).all())
    assert float(error.max()) > 0  # really quantized


def test_int4_falls_back_to_int8_where_the_packing_cannot_hold_the_shape() -> None:
    assert PackedWeight(torch.randn(40, 64), "int4").method == "int8"  # 40 rows: not a multiple of 16
    assert PackedWeight(torch.randn(48, 64), "int4").method == "int4"


def test_int4_keeps_the_lm_head_in_int8() -> None:
    config = ModelConfig(arch="llama", hidden_size=64, intermediate_size=128, num_layers=1, num_heads=4,
                         num_kv_heads=2, head_dim=16, vocab_size=96, tie_word_embeddings=True)  # fmt: skip
    model = CausalLM(config)
    quantize_linears(model, "int4")
    assert model.lm_head.qweight.method == "int8"  # 96 x 64 would pack as int4
    assert {m.qweight.method for m in model.layers.modules() if isinstance(m, QuantizedLinear)} == {"int4"}


def _linears(engine: LLMEngine) -> dict[str, nn.Module]:
    return {n: m for n, m in engine.runner.model.named_modules() if hasattr(m, "in_features")}


def _run(engine: LLMEngine, adapter: str | None) -> list[tuple[list[int], list[float]]]:
    return greedy_tokens_and_logprobs(engine, PROMPTS, STEPS, adapter)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantized_engine_with_lora_matches_float_engine_on_dequantized_weights(
    method: str, tiny_llama, tmp_path
) -> None:
    adapter = make_peft_adapter(
        tiny_llama, tmp_path / "qv", targets=("q_proj", "v_proj", "down_proj"), seed=3
    )
    engines = {}
    for quantization in (method, None):
        config = EngineConfig(
            model=str(tiny_llama), dtype="float32", enable_lora=True, quantization=quantization
        )
        engines[quantization] = LLMEngine(config)
        engines[quantization].add_lora("qv", adapter)
    quantized, reference = engines[method], engines[None]
    kinds = set()
    with torch.no_grad():
        for name, module in _linears(reference).items():
            q_module = _linears(quantized)[name]
            packed = q_module.qweight
            if not isinstance(q_module, QuantizedLinear):  # a LoRA layer keeps only the packed weight
                assert q_module.weight is None
            kinds.add(packed.method)
            module.weight.copy_(dequantized(packed, module.in_features))
    assert kinds == ({"int8"} if method == "int8" else {"int4", "int8"})  # the 1820-row LM head: int8
    runs = {}
    for adapter_name in (None, "qv"):
        got, expected = runs[adapter_name] = _run(quantized, adapter_name), _run(reference, adapter_name)
        for (tokens, logprobs), (ref_tokens, ref_logprobs) in zip(got, expected, strict=True):
            assert tokens == ref_tokens
            torch.testing.assert_close(torch.tensor(logprobs), torch.tensor(ref_logprobs), atol=1e-4, rtol=0)
    assert runs[None][0] != runs["qv"][0]  # the adapter really changed the quantized model's output


def test_quantization_refuses_unknown_methods(tiny_llama) -> None:
    with pytest.raises(ValueError, match="int8, int4"):
        LLMEngine(EngineConfig(model=str(tiny_llama), dtype="float32", quantization="int3"))


@pytest.mark.skipif(not native.has("qlinear"), reason="Plinth's int4/int8 kernel needs AVX2 or AVX-512")
@pytest.mark.parametrize("method", ["int8", "int4"])
def test_packing_a_slice_of_rows_at_a_time_gives_the_whole_matrixs_bytes(method, monkeypatch) -> None:
    """Three slices of 64 rows and one of 48 (the last blocks outside a group of four)."""
    monkeypatch.setattr(quantization_module, "_SLICE_ROWS", 64)
    weight = torch.randn(3 * 64 + 48, 2 * INT4_GROUP, generator=torch.Generator().manual_seed(3)).bfloat16()
    whole = quantization_module._pack_native(weight.float(), method)
    sliced = quantization_module._pack_native_by_rows(weight, method)
    for want, got in zip(whole, sliced, strict=True):
        assert (want is None and got is None) or torch.equal(want, got)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_a_gguf_quantized_layer_by_layer_as_it_is_read_decodes_as_one_quantized_after(
    method, tiny_checkpoint_factory, tmp_path, monkeypatch
) -> None:
    """Each decoder layer is quantized as soon as its last tensor is in (never the whole float model),
    and the engine decodes exactly what one quantized after the whole load decodes."""
    path = write_gguf(tiny_checkpoint_factory("llama"), tmp_path / "llama.gguf", "Q8_0")
    config = EngineConfig(model=str(path), dtype="bfloat16", quantization=method)
    quantized_when: list[bool] = []  # per layer: already quantized when the next layer's tensors came in
    reading = model_runner.ModelRunner._quantized_as_read

    def watched(self, weights, how):
        for name, tensor in reading(self, weights, how):
            if name.startswith("model.layers.1."):
                quantized_when.append(isinstance(self.model.layers[0].mlp.down_proj, QuantizedLinear))
            yield name, tensor

    monkeypatch.setattr(model_runner.ModelRunner, "_quantized_as_read", watched)
    as_read = LLMEngine(config)
    assert quantized_when and all(quantized_when)
    monkeypatch.setattr(model_runner.ModelRunner, "_quantized_as_read", lambda self, weights, how: weights)
    after = LLMEngine(config)
    want = greedy_tokens_and_logprobs(after, PROMPTS, 6, None)
    assert greedy_tokens_and_logprobs(as_read, PROMPTS, 6, None) == want


@pytest.mark.parametrize(
    ("stored", "method", "warned"),
    [("Q4_1", "int8", True), ("Q4_1", "int4", False), ("Q8_0", "int8", False)],
)
def test_int8_on_a_four_bit_gguf_warns_that_int4_keeps_its_weights(
    stored, method, warned, tiny_checkpoint_factory, tmp_path, caplog
) -> None:
    """A 4-bit GGUF's groups are exact in int4; int8's per-channel scales round them again (about 1 %
    error a linear on SmolLM2's Q4_1, enough to make its greedy answers degenerate), so say so."""
    path = write_gguf(tiny_checkpoint_factory("llama"), tmp_path / f"{stored}.gguf", stored)
    with caplog.at_level("WARNING", logger="plinth.engine.model_runner"):
        LLMEngine(EngineConfig(model=str(path), dtype="bfloat16", quantization=method))
    said = [r.getMessage() for r in caplog.records if "--quantization int4 keeps" in r.getMessage()]
    assert bool(said) == warned
    if warned:
        assert f"this {stored} file" in said[0]


def test_int4_reproduces_a_q4_1_files_weights_exactly() -> None:
    """Why int4 is the method for a Q4_1 file: its groups of 32 (scale and minimum) are int4's own, so
    quantizing the dequantized weights gives them back bit for bit; int8's per-channel scales do not."""
    from gguf import GGMLQuantizationType, quants

    weight = torch.randn(48, 4 * INT4_GROUP, generator=torch.Generator().manual_seed(5)).numpy()
    kind = GGMLQuantizationType.Q4_1
    stored = torch.from_numpy(quants.dequantize(quants.quantize(weight, kind), kind)).float()
    q, scale, low = quantization_module._quantize_int4(stored)
    back = q.float().view(48, -1, INT4_GROUP) * scale[..., None] + low[..., None]
    torch.testing.assert_close(back.view_as(stored), stored, rtol=0, atol=1e-6)
    q8, scales = quantization_module._quantize_int8(stored)
    assert (q8.float() * scales[:, None] - stored).abs().max() > 1e-3
