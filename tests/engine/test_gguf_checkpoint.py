"""GGUF checkpoints: resolution, config from metadata, the catalog summary, and refusals at load time."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, quants
from gguf_fixtures import random_kquant_blocks, write_gguf
from safetensors.numpy import load_file

from plinth.engine import EngineConfig, LLMEngine, read_gguf_metadata
from plinth.engine.gguf_checkpoint import open_gguf
from plinth.engine.gguf_dequant import dequantize
from plinth.engine.model_config import ModelConfig, UnsupportedModelError
from plinth.engine.weights import CheckpointError, resolve_checkpoint

ARCHS = ["llama", "mistral", "qwen2", "qwen3"]
SHAPE_FIELDS = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                "vocab_size", "rms_norm_eps", "rope_theta", "max_position_embeddings",
                "tie_word_embeddings", "attention_bias", "qk_norm")  # fmt: skip


@pytest.fixture(scope="module")
def llama_gguf(tiny_checkpoint_factory, tmp_path_factory):
    return write_gguf(
        tiny_checkpoint_factory("llama"), tmp_path_factory.mktemp("gguf") / "llama.gguf", "Q8_0"
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_config_from_metadata_equals_config_json(arch, tiny_checkpoint_factory, tmp_path):
    hf_dir = tiny_checkpoint_factory(arch)
    path = write_gguf(hf_dir, tmp_path / f"{arch}.gguf")
    ours, theirs = ModelConfig.from_pretrained(path), ModelConfig.from_pretrained(hf_dir)
    assert ours.arch == ("llama" if arch == "mistral" else arch)  # llama.cpp writes Mistral as llama
    for name in SHAPE_FIELDS:
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name)), name
    assert ours.path == path and ours.name == arch
    assert ours.eos_token_ids == (2,)  # <|im_end|>, the tokenizer's eos


def test_end_of_turn_token_also_stops(tiny_llama, tmp_path):
    path = write_gguf(tiny_llama, tmp_path / "eot.gguf", eot_token_id=1)
    assert ModelConfig.from_pretrained(path).eos_token_ids == (2, 1)


def test_summary_for_the_catalog(llama_gguf, tiny_llama):
    summary = read_gguf_metadata(llama_gguf)
    assert summary.architecture == "llama"
    assert summary.quantization == "Q8_0"
    assert summary.license == "apache-2.0"
    assert summary.name == "Tiny llama"
    assert summary.context_length == 2048
    assert summary.parameters == sum(t.size for t in load_file(tiny_llama / "model.safetensors").values())


def test_gguf_file_and_single_gguf_folder_resolve_to_the_file(llama_gguf, tmp_path):
    assert resolve_checkpoint(str(llama_gguf)) == llama_gguf
    shutil.copy(llama_gguf, tmp_path / "model.gguf")
    assert resolve_checkpoint(str(tmp_path)) == tmp_path / "model.gguf"
    shutil.copy(llama_gguf, tmp_path / "other.gguf")
    with pytest.raises(CheckpointError, match="several GGUF files.*model.gguf, other.gguf"):
        resolve_checkpoint(str(tmp_path))


def test_folder_with_config_json_stays_a_hugging_face_checkpoint(tiny_llama, llama_gguf, tmp_path):
    folder = shutil.copytree(tiny_llama, tmp_path / "both")
    shutil.copy(llama_gguf, folder / "extra.gguf")
    assert resolve_checkpoint(str(folder)) == folder


@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K"])
def test_k_quant_dequantization_matches_gguf_library(qtype, tmp_path):
    raw = random_kquant_blocks(6, 512, qtype, seed=3)
    path = tmp_path / "k.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tensor("t", raw, raw_dtype=GGMLQuantizationType[qtype])
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    [tensor] = GGUFReader(path).tensors
    expected = quants.dequantize(raw, GGMLQuantizationType[qtype])
    assert expected.shape == (6, 512) and np.isfinite(expected).all() and expected.std() > 1e-3
    torch.testing.assert_close(dequantize(tensor), torch.from_numpy(expected), atol=0, rtol=0)


@pytest.mark.parametrize("qtype", ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_dequantization_matches_gguf_library(qtype, tmp_path, monkeypatch):
    weight = np.random.default_rng(0).normal(0, 0.05, size=(8, 64)).astype(np.float32)
    kind = GGMLQuantizationType[qtype]
    stored = {"F32": weight, "F16": weight.astype(np.float16)}.get(qtype)
    path = tmp_path / "q.gguf"
    writer = GGUFWriter(path, "llama")
    if stored is not None:
        writer.add_tensor("t", stored)
    else:
        writer.add_tensor("t", quants.quantize(weight, kind), raw_dtype=kind)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    [tensor] = GGUFReader(path).tensors
    expected = torch.from_numpy(quants.dequantize(tensor.data, kind).astype(np.float32))
    torch.testing.assert_close(dequantize(tensor), expected, atol=0, rtol=0)
    torch.testing.assert_close(dequantize(tensor), torch.from_numpy(weight), atol=0.02, rtol=0)
    # Rows a few at a time (3 rows of 64 per chunk, the last one short), cast straight to bf16: the
    # same bits as casting the library's whole float32 result.
    monkeypatch.setattr("plinth.engine.gguf_dequant.CHUNK_VALUES", 3 * 64)
    assert torch.equal(dequantize(tensor), expected)
    assert torch.equal(dequantize(tensor, torch.bfloat16), expected.to(torch.bfloat16))


def test_dequantization_of_a_vector(tmp_path):
    norm = np.random.default_rng(1).normal(1, 0.1, size=(576,)).astype(np.float32)
    path = tmp_path / "v.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tensor("norm", norm)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    [tensor] = GGUFReader(path).tensors
    assert torch.equal(dequantize(tensor, torch.bfloat16), torch.from_numpy(norm).to(torch.bfloat16))


# -- refused at load time, naming the file and what is wrong ------------------------------------


def test_truncated_file_is_refused_naming_the_first_incomplete_tensor(llama_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    data = llama_gguf.read_bytes()
    last = GGUFReader(llama_gguf).tensors[-1]
    cut.write_bytes(data[: last.data_offset + 10])
    with pytest.raises(CheckpointError, match=f"{cut}: tensor '{last.name}' ends at byte .* truncated"):
        LLMEngine(EngineConfig(model=str(cut)))


def test_file_cut_inside_the_header_is_refused(llama_gguf, tmp_path):
    cut = tmp_path / "header.gguf"
    cut.write_bytes(llama_gguf.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=f"{cut} is not a readable GGUF file"):
        LLMEngine(EngineConfig(model=str(cut)))


def test_file_that_is_not_gguf_is_refused(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(4096))
    with pytest.raises(CheckpointError, match=f"{bad} is not a readable GGUF file"):
        LLMEngine(EngineConfig(model=str(bad)))


def test_unsupported_quantization_type_is_refused(tmp_path):
    path = tmp_path / "q2k.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tensor(
        "token_embd.weight", random_kquant_blocks(4, 256, "Q4_K"), raw_dtype=GGMLQuantizationType.Q4_K
    )
    q2k = np.zeros((4, 84), dtype=np.uint8)  # Q2_K: 84 bytes per 256 values
    writer.add_tensor("blk.0.attn_q.weight", q2k, raw_dtype=GGMLQuantizationType.Q2_K)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(
        UnsupportedModelError, match=f"{path}: tensor 'blk.0.attn_q.weight'.*Q2_K.*not supported"
    ):
        LLMEngine(EngineConfig(model=str(path)))


def test_unsupported_architecture_is_refused(tmp_path):
    path = tmp_path / "phi.gguf"
    writer = GGUFWriter(path, "phi3")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match=f"{path}: general.architecture 'phi3' is not supported"):
        LLMEngine(EngineConfig(model=str(path)))


def test_mixture_of_experts_gguf_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "mixtral.gguf"
    writer = GGUFWriter(path, "llama")  # as llama.cpp writes Mixtral
    writer.add_expert_count(8)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(
        UnsupportedModelError, match=r"mixture-of-experts GGUF \(llama.expert_count 8\).*Hugging Face"
    ):
        LLMEngine(EngineConfig(model=str(path)))


def test_missing_metadata_key_is_named(tmp_path):
    path = tmp_path / "nokeys.gguf"
    writer = GGUFWriter(path, "qwen2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match=f"{path}: GGUF metadata key 'qwen2.attention.head_count'"):
        LLMEngine(EngineConfig(model=str(path)))


def test_foreign_tensor_is_refused(tmp_path):
    path = tmp_path / "extra.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tensor("blk.0.ffn_gate_exps.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match=f"{path}: tensor 'blk.0.ffn_gate_exps.weight' is not"):
        open_gguf(path)
