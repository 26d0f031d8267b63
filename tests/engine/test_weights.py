"""Checkpoint resolution and weight streaming: single file, shards, .bin fallback, offline errors."""

from __future__ import annotations

import shutil

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from plinth.engine.model import CausalLM
from plinth.engine.model_config import ModelConfig
from plinth.engine.weights import CheckpointError, has_weights, iter_weights, resolve_checkpoint


def _as_dict(weights) -> dict[str, torch.Tensor]:
    result: dict[str, torch.Tensor] = {}
    for name, tensor in weights:
        assert name not in result, f"{name} yielded twice"
        result[name] = tensor
    return result


def _assert_same(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for name, tensor in left.items():
        assert torch.equal(tensor, right[name]), name


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_single_file_yields_exactly_what_transformers_loads(arch, tiny_checkpoint_factory):
    path = tiny_checkpoint_factory(arch)
    ours = _as_dict(iter_weights(path))
    _assert_same(ours, load_file(path / "model.safetensors"))
    model_state = AutoModelForCausalLM.from_pretrained(path).state_dict()
    tied = {"lm_head.weight"} if arch == "qwen2" else set()
    assert ours.keys() == model_state.keys() - tied


def test_sharded_checkpoint_yields_the_same_tensors(tmp_path, tiny_llama):
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_llama, sharded)
    (sharded / "model.safetensors").unlink()
    AutoModelForCausalLM.from_pretrained(tiny_llama).save_pretrained(sharded, max_shard_size="300KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1
    assert not (sharded / "model.safetensors").exists()
    _assert_same(_as_dict(iter_weights(sharded)), _as_dict(iter_weights(tiny_llama)))


def test_pytorch_bin_is_used_only_without_safetensors(tmp_path, tiny_llama):
    reference = _as_dict(iter_weights(tiny_llama))
    bin_only = tmp_path / "bin"
    bin_only.mkdir()
    shutil.copy(tiny_llama / "config.json", bin_only)
    torch.save({name: torch.zeros_like(t) for name, t in reference.items()}, bin_only / "pytorch_model.bin")
    assert has_weights(bin_only)
    assert all(not t.any() for _, t in iter_weights(bin_only))
    shutil.copy(tiny_llama / "model.safetensors", bin_only)
    _assert_same(_as_dict(iter_weights(bin_only)), reference)  # safetensors win over .bin


def test_missing_weights_is_a_clear_error(tmp_path):
    assert not has_weights(tmp_path)
    with pytest.raises(CheckpointError, match="no weights in .*load-format dummy"):
        next(iter_weights(tmp_path))


def test_local_directory_is_used_as_is(tiny_llama):
    assert resolve_checkpoint(str(tiny_llama)) == tiny_llama


def test_directory_without_config_names_the_directory(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path}.*config.json"):
        resolve_checkpoint(str(tmp_path))


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory.*init-random"):
        resolve_checkpoint(str(tmp_path / "nope"))


def test_offline_hub_id_gives_a_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as caught:
        resolve_checkpoint("plinth-test/definitely-not-a-real-model", revision="main")
    message = str(caught.value)
    assert "plinth-test/definitely-not-a-real-model" in message
    assert "Hugging Face hub" in message
    assert "plinth model init-random --arch llama --size small --out DIR" in message
    assert isinstance(caught.value, RuntimeError)


def test_adopting_load_takes_whole_tensors_as_parameters_and_copies_fused_ones(tiny_llama):
    """``load_weights(adopt=True)`` (a GGUF's freshly dequantized tensors): a tensor that is a whole
    parameter becomes its storage (no second copy during the load); q/k/v and gate/up are copied into
    their fused parameter; the model is the one a copying load gives."""
    cfg = ModelConfig.from_pretrained(tiny_llama)
    fresh = {name: tensor.clone() for name, tensor in iter_weights(tiny_llama)}
    adopted, copied = CausalLM(cfg), CausalLM(cfg)
    adopted.load_weights(fresh.items(), adopt=True)
    copied.load_weights(fresh.items())
    embed, o_proj = "model.embed_tokens.weight", "model.layers.0.self_attn.o_proj.weight"
    assert adopted.embed_tokens.weight.data_ptr() == fresh[embed].data_ptr()
    assert adopted.layers[0].self_attn.o_proj.weight.data_ptr() == fresh[o_proj].data_ptr()
    assert copied.embed_tokens.weight.data_ptr() != fresh[embed].data_ptr()
    q_proj = fresh["model.layers.0.self_attn.q_proj.weight"]
    assert adopted.layers[0].self_attn.qkv_proj.weight.data_ptr() != q_proj.data_ptr()
    want = copied.state_dict()
    assert all(torch.equal(tensor, want[name]) for name, tensor in adopted.state_dict().items())
