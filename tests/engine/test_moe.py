"""Mixture-of-experts layers (Mixtral, Qwen3-MoE): routing against a per-token reference, both checkpoint
layouts of the experts, quantized experts, batch invariance, and adapters that target experts refused.
Whole-model parity with transformers is in ``test_engine_parity.py`` and, with LoRA, ``test_lora_parity.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter
from safetensors.torch import load_file, save_file

from plinth.engine import EngineConfig, LLMEngine
from plinth.engine.lora.adapter import AdapterError, load_adapter
from plinth.engine.model import SparseMoe
from plinth.engine.model_config import ModelConfig
from plinth.engine.quantization import PackedWeight

PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250], list(range(40, 90))]


def _moe_config(normalize: bool, float_weights: bool) -> ModelConfig:
    return ModelConfig(
        arch="qwen3_moe", hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
        head_dim=8, vocab_size=100, num_experts=6, num_experts_per_tok=2, moe_intermediate_size=24,
        norm_topk_prob=normalize, router_float32=float_weights, sparse_layers=(0,),
    )  # fmt: skip


@pytest.mark.parametrize(("normalize", "float_weights"), [(True, True), (False, False), (True, False)])
def test_each_token_gets_the_weighted_sum_of_its_top_k_experts(normalize: bool, float_weights: bool) -> None:
    torch.manual_seed(0)
    moe = SparseMoe(_moe_config(normalize, float_weights)).double()
    x = torch.randn(37, 32, dtype=torch.float64)
    with torch.no_grad():
        got = moe(x)
        for token in range(len(x)):
            probs = torch.softmax(moe.gate(x[token]), dim=-1, dtype=torch.float32)  # as the references
            top = torch.topk(probs, 2)
            weights = top.values / top.values.sum() if normalize else top.values
            expected = sum(
                w * moe.experts[int(e)](x[token]) for w, e in zip(weights, top.indices, strict=True)
            )
            torch.testing.assert_close(got[token], expected, atol=1e-12, rtol=0)
    assert len({tuple(torch.topk(moe.gate(row), 2).indices.tolist()) for row in x}) > 3  # really routed


def _stacked_copy(source: Path, out: Path) -> Path:
    """The checkpoint with each layer's experts as transformers 5 can write them: one ``[E, 2I, H]``
    gate/up tensor and one ``[E, H, I]`` down tensor per layer instead of per-expert matrices."""
    shutil.copytree(source, out)
    tensors = load_file(out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    experts = config.get("num_local_experts") or config["num_experts"]
    names = ("w1", "w3", "w2") if config["model_type"] == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    for prefix in sorted({k.split(".experts.")[0] for k in tensors if ".experts." in k}):
        per = {n: [tensors.pop(f"{prefix}.experts.{e}.{n}.weight") for e in range(experts)] for n in names}
        gate_up = [torch.cat((g, u)) for g, u in zip(per[names[0]], per[names[1]], strict=True)]
        stacked_prefix = prefix.replace(".block_sparse_moe", ".mlp")
        tensors[f"{stacked_prefix}.experts.gate_up_proj"] = torch.stack(gate_up)
        tensors[f"{stacked_prefix}.experts.down_proj"] = torch.stack(per[names[2]])
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.mark.parametrize("arch", ["mixtral", "qwen3_moe"])
def test_stacked_expert_tensors_load_as_the_per_expert_ones(
    arch: str, tiny_checkpoint_factory, tmp_path
) -> None:
    base = tiny_checkpoint_factory(arch)
    stacked = _stacked_copy(base, tmp_path / "stacked")
    assert not any(".experts.0." in k for k in load_file(stacked / "model.safetensors"))
    runs = [
        greedy_tokens_and_logprobs(LLMEngine(EngineConfig(model=str(p))), PROMPTS, 6, None)
        for p in (base, stacked)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantized_experts_compute_what_their_dequantized_weights_do(
    method: str, tiny_checkpoint_factory
) -> None:
    base = tiny_checkpoint_factory("mixtral")
    quantized, reference = (
        LLMEngine(EngineConfig(model=str(base), dtype="float32", quantization=q)) for q in (method, None)
    )
    experts = 0
    with torch.no_grad():
        q_modules = dict(quantized.runner.model.named_modules())
        for name, module in reference.runner.model.named_modules():
            if isinstance(module, torch.nn.Linear):
                packed = q_modules[name].qweight
                assert isinstance(packed, PackedWeight)
                module.weight.copy_(packed(torch.eye(module.in_features)).T)
                experts += ".experts." in name
    assert experts == 2 * 4 * 2  # gate/up and down of 4 experts in each of 2 layers, all quantized
    got, expected = (greedy_tokens_and_logprobs(e, PROMPTS, 6, None) for e in (quantized, reference))
    for (tokens, logprobs), (ref_tokens, ref_logprobs) in zip(got, expected, strict=True):
        assert tokens == ref_tokens
        torch.testing.assert_close(torch.tensor(logprobs), torch.tensor(ref_logprobs), atol=1e-4, rtol=0)


def test_batch_invariant_mode_covers_the_experts(tiny_checkpoint_factory) -> None:
    """Which tokens share an expert's matmul depends on the batch; with row tiles a request's logprobs
    are bitwise the same alone and beside others."""
    base = tiny_checkpoint_factory("qwen3_moe")
    config = EngineConfig(model=str(base), dtype="bfloat16", batch_invariant=True)
    alone = greedy_tokens_and_logprobs(LLMEngine(config), [PROMPTS[2]], 10, None)[0]
    crowd = [list(range(7 * i + 3, 7 * i + 3 + 5 + 9 * i)) for i in range(6)]
    busy = greedy_tokens_and_logprobs(LLMEngine(config), [*crowd[:3], PROMPTS[2], *crowd[3:]], 10, None)
    assert busy[3] == alone


def test_adapters_that_target_experts_are_refused(tiny_checkpoint_factory, tmp_path) -> None:
    base = tiny_checkpoint_factory("qwen3_moe")
    model = ModelConfig.from_pretrained(base)
    assert model.sparse_layers == (1,)  # layer 0 keeps a dense MLP (mlp_only_layers)
    peft_on_experts = make_peft_adapter(base, tmp_path / "peft", targets=("q_proj", "gate_proj", "up_proj"))
    with pytest.raises(AdapterError, match=r"target_parameters; how PEFT targets the experts"):
        load_adapter(peft_on_experts, "experts", model, 16)

    attention = make_peft_adapter(base, tmp_path / "attn", targets=("q_proj", "v_proj"))
    tensors = load_file(attention / "adapter_model.safetensors")
    a, b = torch.randn(8, 128), torch.randn(352, 8)
    cases = {
        "per-expert": (
            "base_model.model.model.layers.1.mlp.experts.0.gate_proj",
            "mixture-of-experts experts",
        ),
        "sparse-layer": (
            "base_model.model.model.layers.1.mlp.gate_proj",
            "layer 1 gate_proj: .*mixture of experts",
        ),
    }
    for case, (module, message) in cases.items():
        folder = shutil.copytree(attention, tmp_path / case)
        extra = {f"{module}.lora_A.weight": a, f"{module}.lora_B.weight": b}
        save_file({**tensors, **extra}, folder / "adapter_model.safetensors")
        with pytest.raises(AdapterError, match=message):
            load_adapter(folder, case, model, 16)

    dense = shutil.copytree(attention, tmp_path / "dense-layer")
    module = "base_model.model.model.layers.0.mlp.gate_proj"
    save_file(
        {**tensors, f"{module}.lora_A.weight": a, f"{module}.lora_B.weight": b},
        dense / "adapter_model.safetensors",
    )
    assert "gate_proj" in load_adapter(dense, "dense", model, 16).target_modules
