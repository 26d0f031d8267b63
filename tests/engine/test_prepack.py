"""bf16 weights prepacked at load (Plinth's own kernel where it is built, else oneDNN's): the product is
the one ``F.linear`` computes, every linear of a bf16 CPU model is packed (LoRA slots kept, applied
unmerged on top), and a prepacked engine decodes what the same engine without prepacking decodes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter
from torch import nn

import plinth.engine.model_runner as model_runner
from plinth.engine import EngineConfig, LLMEngine, native, prepack, quantization
from plinth.engine.lora.layers import LoraLinear
from plinth.engine.prepack import NativeBf16Weight, OneDnnWeight, PlainWeight, can_prepack, onednn_bf16
from plinth.engine.quantization import QuantizedLinear

pytestmark = pytest.mark.skipif(
    not can_prepack(torch.device("cpu"), torch.bfloat16),
    reason="no oneDNN bf16, no Plinth kernel",
)
PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]


KINDS = [OneDnnWeight] * onednn_bf16() + [NativeBf16Weight] * native.has("bf16_linear")
UNFIT = OneDnnWeight if onednn_bf16() else PlainWeight  # what a shape Plinth's kernel does not serve gets


# 6 blocks of 16 (a group of 4 and 2 more on AVX-512, three groups of 2 on AVX2), 7 (a block after the
# groups either way), 37 (on AVX-512 one row reads 4 groups at a time: a thread's share of 9 groups is
# such a tile and what is left, then the block after the groups; from 16 rows, two threads' shares of
# 19 and 18 blocks end and start inside a group, 3 and 1 of its blocks) and 36 (from 16 rows, shares of
# 18 blocks: both cut a group in halves)
OUTPUTS = [96, 112, 592, 576]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [1, 7, 64, 300])
@pytest.mark.parametrize("inputs", [80, 128])  # Plinth's kernel: 128 takes AMX tiles where there are some
@pytest.mark.parametrize("outputs", OUTPUTS)
def test_packed_product_is_the_linear_product(rows: int, kind: type, inputs: int, outputs: int) -> None:
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(outputs, inputs, generator=gen).bfloat16()
    x = torch.randn(2, rows, inputs, generator=gen).bfloat16()  # 3-d input, as the MLP sees it
    got = kind(weight)(x)
    assert got.shape == (2, rows, outputs) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got, F.linear(x, weight))  # bf16 tolerance: blocking may differ


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
@pytest.mark.parametrize("outputs", OUTPUTS)
def test_plinths_kernel_gives_a_row_the_same_bits_beside_any_rows(outputs: int) -> None:
    gen = torch.Generator().manual_seed(5)
    packed = NativeBf16Weight(torch.randn(outputs, 128, generator=gen).bfloat16())
    x = torch.randn(40, 128, generator=gen).bfloat16()
    alone = torch.cat([packed(x[i : i + 1]) for i in range(40)])
    # AVX2: tiles of 2 rows, an odd one alone, 3 rows in one tile; AVX-512: tiles of 1-6 rows, as even
    # as the count allows (7: 4 + 3, 8: 4 + 4, 13: 5 + 4 + 4, 16: 6 + 5 + 5, 40: 6 x 5 + 5 x 2)
    for rows in (2, 3, 4, 5, 6, 7, 8, 13, 16, 17, 40):
        assert torch.equal(packed(x[:rows]), alone[:rows])


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_many_rows_through_the_float32_gemm_give_the_linear_product() -> None:
    """From ``gemm_rows`` rows (256 by default) an AVX2 build converts the weight to float32 a panel at
    a time and multiplies with MKL: 71 blocks of 1,024 inputs are five panels (four of 16 blocks, then 7,
    the last one after the groups), 1,100 rows three calls of at most 512. The product is F.linear's,
    and the register tiles' (``gemm_rows`` past the count) up to a bf16 rounding: MKL sums in its own
    order."""
    gen = torch.Generator().manual_seed(11)
    weight = torch.randn(71 * 16, 1024, generator=gen).bfloat16()
    x = torch.randn(1100, 1024, generator=gen).bfloat16()
    packed = NativeBf16Weight(weight).packed
    got = torch.ops.plinth.bf16_linear(x, packed)
    tiles = torch.ops.plinth.bf16_linear(x, packed, gemm_rows=1 << 40)
    reference = F.linear(x.float(), weight.float())
    for product in (got, tiles):
        torch.testing.assert_close(product.float(), reference, rtol=2**-7, atol=1e-3)
    torch.testing.assert_close(got, tiles)


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_with_gemm_rows_past_the_count_many_rows_keep_the_one_row_bits() -> None:
    gen = torch.Generator().manual_seed(12)
    packed = NativeBf16Weight(torch.randn(112, 64, generator=gen).bfloat16()).packed
    x = torch.randn(300, 64, generator=gen).bfloat16()
    alone = torch.cat([torch.ops.plinth.bf16_linear(x[i : i + 1], packed) for i in range(300)])
    assert torch.equal(torch.ops.plinth.bf16_linear(x, packed, gemm_rows=301), alone)


@pytest.mark.parametrize("group", [2, 4])
def test_interleaved_blocks_read_back_what_interleave_blocks_wrote(
    group: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python packers follow the library's group size (``torch.ops.plinth.interleave``: 4 on
    AVX-512, 2 on AVX2); each group's chunks lie side by side, the blocks after the groups in order."""
    monkeypatch.setattr(quantization, "interleave", lambda: group)
    blocks = torch.arange(7 * 3 * 2).view(7, 3, 2)  # 7 blocks of 3 chunks of 2 values
    packed = quantization.interleave_blocks(blocks)
    flat = packed.view(-1).tolist()
    assert flat[: 2 * group] == [v for b in range(group) for v in blocks[b, 0].tolist()]  # chunk 0 of a group
    groups, rest = quantization.interleaved_blocks(packed)
    grouped = 7 // group * group
    assert torch.equal(groups.reshape(grouped, 3, 2), blocks[:grouped])
    assert torch.equal(rest.reshape(7 - grouped, 3, 2), blocks[grouped:])


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_the_library_says_how_many_blocks_it_interleaves() -> None:
    assert quantization.interleave() == torch.ops.plinth.interleave() in (2, 4)


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_plinths_kernel_refuses_bad_operands_with_a_reason() -> None:
    packed = NativeBf16Weight(torch.randn(32, 64).bfloat16()).packed
    with pytest.raises(RuntimeError, match="x has 32 features, the weight 64"):
        torch.ops.plinth.bf16_linear(torch.randn(1, 32).bfloat16(), packed)
    with pytest.raises(RuntimeError, match="2-D bfloat16"):
        torch.ops.plinth.bf16_linear(torch.randn(1, 64), packed)


def _decode(engine: LLMEngine, adapter: str | None) -> list[tuple[list[int], list[float]]]:
    return greedy_tokens_and_logprobs(engine, PROMPTS, 6, adapter)


def test_prepacked_engine_with_lora_decodes_as_the_unpacked_one(
    tiny_llama, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_peft_adapter(tiny_llama, tmp_path / "qv", targets=("q_proj", "v_proj", "down_proj"))
    config = EngineConfig(model=str(tiny_llama), dtype="bfloat16", device="cpu", enable_lora=True)
    packed = LLMEngine(config)
    monkeypatch.setattr(model_runner, "can_prepack", lambda device, dtype: False)
    plain = LLMEngine(config)

    modules = dict(packed.runner.model.named_modules())
    lora_layers = [m for m in modules.values() if isinstance(m, LoraLinear)]
    layer_kind = NativeBf16Weight if native.has("bf16_linear") else OneDnnWeight  # 64/128-wide: it fits
    assert lora_layers and all(isinstance(m.qweight, layer_kind) and m.weight is None for m in lora_layers)
    assert isinstance(modules["lm_head"], QuantizedLinear)  # a plain linear is swapped whole
    assert isinstance(modules["lm_head"].qweight, UNFIT)  # 1820 rows: not in blocks of 16
    assert packed.runner.model.embed_tokens.weight.dtype == torch.bfloat16
    assert all(m.qweight is None for m in plain.runner.model.modules() if isinstance(m, LoraLinear))

    for engine in (packed, plain):
        engine.add_lora("qv", adapter)
    for name in (None, "qv"):
        for (tokens, logprobs), (want_tokens, want_logprobs) in zip(
            _decode(packed, name), _decode(plain, name), strict=True
        ):
            assert tokens == want_tokens
            torch.testing.assert_close(logprobs, want_logprobs, atol=2e-2, rtol=0)


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
# one block; three (no group of four); one group; one and two; nine and two
@pytest.mark.parametrize("rows", [16, 48, 64, 96, 64 * 9 + 32])
def test_packing_in_place_writes_the_copys_layout_over_the_weights_memory(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepack, "_SLICE_BYTES", 3 * 64 * 40 * 2)  # several slices, the last one short
    weight = torch.randn(rows, 40, generator=torch.Generator().manual_seed(rows)).bfloat16()
    copy = prepack.pack_native(weight)
    pointer = weight.data_ptr()
    packed = prepack.pack_native(weight, in_place=True)
    assert packed.data_ptr() == pointer and torch.equal(packed, copy)


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_prepack_packs_a_weight_in_place_unless_another_tensor_reads_its_memory() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(64, 32, bias=False)])
            self.shared = nn.Linear(64, 32, bias=False)
            self.reader = nn.Embedding(32, 64)
            self.reader.weight = self.shared.weight  # tied: the table must stay as it is

    model = Model().bfloat16()
    own_pointer, table = model.layers[0].weight.data_ptr(), model.reader.weight.detach().clone()
    x = torch.randn(3, 64).bfloat16()
    want = (F.linear(x, model.layers[0].weight), F.linear(x, model.shared.weight))
    with torch.no_grad():
        prepack.prepack_linears(model)
    assert model.layers[0].qweight.packed.data_ptr() == own_pointer
    assert model.shared.qweight.packed.data_ptr() != model.reader.weight.data_ptr()
    assert torch.equal(model.reader.weight, table)
    torch.testing.assert_close(model.layers[0](x), want[0])
    torch.testing.assert_close(model.shared(x), want[1])


@pytest.mark.skipif(not native.has("bf16_linear"), reason="Plinth's bf16 kernel needs AVX512-BF16 or AVX2")
def test_auto_dtype_keeps_a_bf16_checkpoint_in_bf16_where_plinths_kernel_multiplies_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(prepack, "onednn_bf16", lambda: False)  # an AVX2 CPU: oneDNN refuses bf16
    assert model_runner.resolve_dtype("auto", cpu, "bfloat16") == torch.bfloat16
    assert model_runner.resolve_dtype("auto", cpu, "float32") == torch.float32
    monkeypatch.setattr(native, "has", lambda op: False)  # and without Plinth's kernel: float32
    assert model_runner.resolve_dtype("auto", cpu, "bfloat16") == torch.float32
