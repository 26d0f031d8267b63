"""The native decode layer (``plinth::decode_layer``) gives the Python layer's bits, and serves exactly the
steps and models it is made for: bf16 Llama-shaped layers with packed weights, decode steps and steps with
short prefill chunks (their tokens attended row by row), outside batch-invariant mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter

from plinth.engine import EngineConfig, LLMEngine, SamplingParams, attention, model_runner, native
from plinth.engine.lora import TARGETS

pytestmark = pytest.mark.skipif(
    not native.has("decode_layer"), reason="built for CPUs with AVX512-BF16 or AVX2"
)


def _engine(path, **overrides) -> LLMEngine:
    return LLMEngine(EngineConfig(model=str(path), **{"dtype": "bfloat16", **overrides}))


def _generate(engine: LLMEngine, prompts: list[list[int]], adapters: list[str | None] | None = None):
    """Greedy tokens and logprobs per prompt, and how many times a layer ran as plinth::decode_layer."""
    with torch.profiler.profile() as prof:
        got = greedy_tokens_and_logprobs(engine, prompts, 8, adapters or None)
    return got, sum(e.count for e in prof.key_averages() if e.key == "plinth::decode_layer")


# 5 + 12 + 33 + 90 prompt tokens: a prefill of more than decode_layer.cpp's kSerialTokens rows, whose
# element-wise steps the threads share
PROMPTS = [[5, 9, 11, 40, 3], [7] * 12, list(range(20, 53)), [60 + i % 150 for i in range(90)]]


RESHAPED = {"odd-mlp": {"intermediate_size": 344}, "head-48": {"head_dim": 48}}
QUANTIZED = pytest.mark.skipif(not native.has("qlinear"), reason="plinth::qlinear needs AVX2 or AVX-512")


@pytest.fixture(
    params=["tiny", pytest.param("int8", marks=QUANTIZED), pytest.param("int4", marks=QUANTIZED), *RESHAPED]
)
def llama(request, tiny_llama, tmp_path) -> tuple[Path, dict]:
    """The tiny llama in bf16, int8 and int4; and its shape in random ``dummy`` weights with a 344-wide
    MLP, so that SiLU runs ATen's scalar tail (344 is a multiple of neither its 32- nor its 16-element
    chunks), or with 48-wide heads, whose rotary roll straddles 16-lane vectors."""
    if request.param not in RESHAPED:
        return tiny_llama, {} if request.param == "tiny" else {"quantization": request.param}
    path = tmp_path / request.param
    shutil.copytree(tiny_llama, path, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **RESHAPED[request.param]}))
    return path, {"load_format": "dummy"}


def test_decode_steps_give_the_python_layers_tokens_and_logprobs_bitwise(llama) -> None:
    path, overrides = llama
    fused = _engine(path, **overrides)
    layers = fused.runner.model.fused
    assert all(layer is not None for layer in layers)
    assert {layer.bits for layer in layers} == {{"int8": 8, "int4": 4}.get(overrides.get("quantization"), 16)}
    python = _engine(path, **overrides)
    python.runner.model.fused = []  # every layer through model.py
    want, none = _generate(python, PROMPTS)
    got, calls = _generate(fused, PROMPTS)
    assert none == 0 and calls >= 7 * len(layers)  # the decode steps, every layer
    assert got == want  # tokens and float logprobs, exactly


def test_adapter_tokens_get_the_python_layers_bits_too(tiny_llama, tmp_path) -> None:
    """Requests on three adapters (q/v, every projection, the MLP and o) and one on the base model, in
    the same decode steps: each projection adds its deltas through plinth::lora_add_ as LoraLinear does."""
    specs = {
        "qv": ("q_proj", "v_proj"),
        "all": TARGETS,
        "mlp": ("gate_proj", "up_proj", "down_proj", "o_proj"),
    }
    adapters = {name: make_peft_adapter(tiny_llama, tmp_path / name, seed=i + 1, r=4 + 4 * i, alpha=8,
                                        targets=targets)
                for i, (name, targets) in enumerate(specs.items())}  # fmt: skip

    def engine() -> LLMEngine:
        built = _engine(tiny_llama, enable_lora=True, max_loras=4, max_lora_rank=16)
        for name, path in adapters.items():
            built.add_lora(name, path)
        return built

    fused, python = engine(), engine()
    python.runner.model.fused = []
    prompts, names = [*PROMPTS, [4, 8, 15, 16, 23, 42]], ["qv", None, "all", "mlp", "qv"]
    want, _ = _generate(python, prompts, names)
    got, calls = _generate(fused, prompts, names)
    assert calls >= 7 * len(fused.runner.model.layers)
    assert got == want


def test_prefills_take_the_operator_and_invariant_mode_the_python_layers(tiny_llama, monkeypatch) -> None:
    """A step whose prompt tokens are attended row by row (``AttentionMetadata.rows``) runs every layer as
    plinth::decode_layer: in bf16 every prompt (the operator attends a prompt's rows as a block); where
    it attends each row on its own, a short prompt, or a longer one whose rows attend over few positions
    each, while a prompt whose rows attend over more than ROW_WISE_MEAN_CONTEXT positions on average runs
    the Python layers; every step in batch-invariant mode does."""

    def prefill_calls(prompt: list[int]) -> int:
        engine = _engine(tiny_llama)
        engine.add_request(prompt, SamplingParams(max_tokens=1, temperature=0.0))
        with torch.profiler.profile() as prof:
            engine.step()  # the prompt: a prefill step
        return sum(e.count for e in prof.key_averages() if e.key == "plinth::decode_layer")

    layers = len(_engine(tiny_llama).runner.model.layers)
    long = 2 * attention.ROW_WISE_MEAN_CONTEXT + 2  # its rows attend over (long + 1) / 2 positions on average
    assert _engine(tiny_llama).runner.prompt_blocks
    assert prefill_calls([20 + i % 200 for i in range(long)]) == layers
    monkeypatch.setattr(model_runner, "prompt_blocks", lambda *args: False)  # rows one by one
    assert prefill_calls(PROMPTS[2]) == layers
    assert prefill_calls(list(range(20, 21 + attention.ROW_WISE_PREFILL))) == layers
    assert prefill_calls([20 + i % 200 for i in range(long)]) == 0
    monkeypatch.undo()
    _, calls = _generate(_engine(tiny_llama, batch_invariant=True), PROMPTS[:1])
    assert calls == 0


def test_row_by_row_prefills_give_sdpas_first_tokens(llama, monkeypatch) -> None:
    """Short prompts prefilled row by row (the operator) against the same prompts through SDPA (the row
    limit set to 0): the same first token, its logprob to bf16's rounding, beside a running decode."""
    path, overrides = llama

    def first_tokens() -> list[tuple[int, float]]:
        engine = _engine(path, **overrides)
        engine.add_request([3, 1, 4, 1, 5], SamplingParams(max_tokens=50, temperature=0.0, ignore_eos=True))
        engine.step()  # a decode beside the prompts below
        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=0)
        ids = [engine.add_request(prompt, params) for prompt in PROMPTS]
        [step] = [engine.step()]  # the three prompts and the decode, in one step
        got = {out.request_id: (out.new_token_ids[0], out.new_logprobs[0].logprob)
               for out in step if out.request_id in ids}  # fmt: skip
        return [got[i] for i in ids]

    rows = first_tokens()
    monkeypatch.setattr(model_runner, "prompt_blocks", lambda *args: False)
    monkeypatch.setattr(attention, "ROW_WISE_PREFILL", 0)
    monkeypatch.setattr(attention, "ROW_WISE_MEAN_CONTEXT", 0)
    sdpa = first_tokens()
    assert [token for token, _ in rows] == [token for token, _ in sdpa]
    assert [lp for _, lp in rows] == pytest.approx([lp for _, lp in sdpa], abs=0.01)


@pytest.mark.parametrize(
    ("arch", "overrides"),
    [("qwen3", {}), ("qwen2", {}), ("qwen3_moe", {}), ("llama", {"dtype": "float32"})],
)
def test_layers_it_does_not_serve_are_left_to_python(tiny_checkpoint_factory, arch, overrides) -> None:
    """q/k norms (Qwen3), projection biases (Qwen2), experts (and q/k norms: Qwen3-MoE), float32: no
    operands, the Python layer."""
    engine = _engine(tiny_checkpoint_factory(arch), **overrides)
    assert engine.runner.model.fused == [None] * len(engine.runner.model.layers)
    _, calls = _generate(engine, PROMPTS[:1])
    assert calls == 0


def test_heads_the_native_attention_is_not_built_for_run_the_python_layer(tiny_llama, tmp_path) -> None:
    """160-wide heads: a multiple of 16, but not a size decode_attention is compiled for; both the decode
    layer and the attention operator leave them to torch, and the engine decodes."""
    path = tmp_path / "head-160"
    shutil.copytree(tiny_llama, path, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "head_dim": 160}))
    engine = _engine(path, load_format="dummy")
    assert engine.runner.model.fused == [None] * len(engine.runner.model.layers)
    [(tokens, _)], calls = _generate(engine, PROMPTS[:1])
    assert calls == 0 and len(tokens) == 8


def test_a_long_prefill_on_adapters_attends_row_by_row_with_the_adapters_by_chunk(
    tiny_llama, tmp_path, monkeypatch
) -> None:
    """Three 100-token prompts (two on adapters) in one step: past the short-prefill limit, but attending
    over ~50 positions a row, so the rows go through plinth::decode_attention while the adapters go by
    chunk and the layers stay Python's (attention.short_prefill); first tokens as through SDPA."""
    specs = {"all": TARGETS, "qv": ("q_proj", "v_proj")}
    adapters = {
        name: make_peft_adapter(tiny_llama, tmp_path / name, seed=i + 1, r=8, alpha=16, targets=targets)
        for i, (name, targets) in enumerate(specs.items())
    }
    prompts = [[(7 * i + 13 * j) % 900 + 20 for j in range(100)] for i in range(3)]

    def first_step() -> tuple[list[tuple[int, float]], dict[str, int]]:
        engine = _engine(tiny_llama, enable_lora=True, max_loras=4, max_lora_rank=16)
        for name, path in adapters.items():
            engine.add_lora(name, path)
        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=0)
        ids = [
            engine.add_request(p, params, adapter=a)
            for p, a in zip(prompts, ["all", None, "qv"], strict=True)
        ]
        with torch.profiler.profile() as prof:
            [step] = [engine.step()]
        calls = {e.key: e.count for e in prof.key_averages()}
        got = {o.request_id: (o.new_token_ids[0], o.new_logprobs[0].logprob) for o in step}
        return [got[i] for i in ids], calls

    layers = len(_engine(tiny_llama).runner.model.layers)
    rows, calls = first_step()
    assert calls.get("plinth::decode_attention") == layers and "plinth::decode_layer" not in calls
    monkeypatch.setattr(model_runner, "prompt_blocks", lambda *args: False)
    monkeypatch.setattr(attention, "ROW_WISE_MEAN_CONTEXT", 0)
    sdpa, calls = first_step()
    assert "plinth::decode_attention" not in calls
    assert [token for token, _ in rows] == [token for token, _ in sdpa]
    assert [lp for _, lp in rows] == pytest.approx([lp for _, lp in sdpa], abs=0.01)


@pytest.mark.parametrize("length", [33, 34, 35, 40])
def test_a_prompt_sent_again_after_a_prefix_cache_hit_gets_the_same_bits(tiny_llama, length: int) -> None:
    """In bf16 a prompt's rows attend as a block and a row alone (a decode's) rounds otherwise: a prompt
    sent again after a cache hit of its first two blocks recomputes 1 to 8 of its tokens, and its first
    token's logprob must be the same float as the first time (BlockManager recomputes two at least)."""
    engine = _engine(tiny_llama)
    assert engine.runner.prompt_blocks
    prompt = [(37 * i) % 900 + 20 for i in range(length)]
    params = SamplingParams(max_tokens=4, temperature=0.0, logprobs=0, ignore_eos=True)

    def reply() -> tuple[list[int], list[float], int]:
        rid = engine.add_request(prompt, params)
        outs = []
        while engine.has_unfinished():
            outs += [o for o in engine.step() if o.request_id == rid]
        tokens = [t for o in outs for t in o.new_token_ids]
        return tokens, [lp.logprob for o in outs for lp in o.new_logprobs], outs[0].num_cached_tokens

    first, again = reply(), reply()
    assert first[2] == 0 and again[2] > 0  # the second found the prompt's full blocks cached
    assert again[:2] == first[:2]


@pytest.mark.parametrize("path", ["operator", "python"])
def test_a_prefills_last_layer_goes_past_its_attention_with_the_sampled_rows_alone(tiny_llama, path) -> None:
    """Four prompts (140 rows) in one step sample 4 rows: the last layer's MLP sees those 4, every other
    layer all 140; a decode step, which samples every row, keeps them all."""
    engine = _engine(tiny_llama)
    model = engine.runner.model
    rows: list[int] = []
    model.layers[-1].mlp.register_forward_pre_hook(lambda _, args: rows.append(args[0].shape[0]))
    model.layers[0].mlp.register_forward_pre_hook(lambda _, args: rows.append(-args[0].shape[0]))
    if path == "python":
        model.fused = []
    else:
        native_last = model.fused[-1]

        def last(x, rope, kv, meta, lora=None, keep=None, kept=None):
            out = native_last(x, rope, kv, meta, lora, keep, kept)
            rows.append(out.shape[0])
            return out

        model.fused[-1] = last
    for prompt in PROMPTS:
        engine.add_request(prompt, SamplingParams(max_tokens=3, temperature=0.0))
    engine.step()  # the prefill
    assert rows == ([-140, 4] if path == "python" else [4])
    rows.clear()
    engine.step()  # a decode step samples every row: nothing is left out
    assert rows == ([-4, 4] if path == "python" else [4])


@pytest.mark.parametrize("path", ["operator", "python"])
def test_the_kept_rows_adapters_give_the_unpruned_models_tokens(tiny_llama, tmp_path, path) -> None:
    """Past the last attention the adapter tokens are the kept rows' own (``LoraContext.kept``): prompts
    on an adapter of every projection, on one of the MLP and o, and on the base model, prefilled in one
    step, give the tokens of the last layer running every row. Their logprobs agree to rounding: the kept
    rows' adapter products go row by row, where a long prefill's went by chunk."""
    specs = {"all": TARGETS, "mlp": ("gate_proj", "up_proj", "down_proj", "o_proj")}
    adapters = {name: make_peft_adapter(tiny_llama, tmp_path / name, seed=i + 1, r=8, alpha=16,
                                        targets=targets)
                for i, (name, targets) in enumerate(specs.items())}  # fmt: skip

    def run(prune: bool, names: list[str | None]) -> list[tuple[list[int], list[float]]]:
        engine = _engine(tiny_llama, enable_lora=True, max_loras=2, max_lora_rank=8)
        for name, adapter in adapters.items():
            engine.add_lora(name, adapter)
        engine.runner.model.prune_last_layer = prune
        if path == "python":
            engine.runner.model.fused = []
        return greedy_tokens_and_logprobs(engine, PROMPTS, 6, names)

    names = ["all", "mlp", None, "all"]
    pruned, unpruned, base = run(True, names), run(False, names), run(True, [None] * 4)
    assert [tokens for tokens, _ in pruned] == [tokens for tokens, _ in unpruned]
    for (_, got), (_, want) in zip(pruned, unpruned, strict=True):
        assert got == pytest.approx(want, abs=0.05)  # within a bf16 rounding of the logits (~6.7 here)
    assert [tokens for tokens, _ in pruned] != [tokens for tokens, _ in base]  # the adapters do matter
