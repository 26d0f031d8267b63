"""Random checkpoints: presets, weights transformers accepts, tokenizer, chat template, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from plinth.engine.checkpoint import CHAT_TEMPLATE, init_random
from plinth.engine.presets import ARCHS, BOS_TOKEN_ID, EOS_TOKEN_ID, SPECIAL_TOKENS, preset
from plinth.engine.weights import has_weights

UNICODE_SAMPLES = [
    "plain ASCII, with punctuation!",
    "café naïve crème brûlée déjà vu Ærøskøbing",
    "emoji 🙂🚀🌍 and a family 👨‍👩‍👧 and a flag 🇵🇹",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "  leading spaces, trailing spaces  ",
    "tabs\tnewlines\n\nand \r\n windows endings",
    "math ∑ ≤ ≥ ≠ √ — and rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200b zero-width",
    "special tokens <|im_start|>user\nhi<|im_end|> decode back to themselves",
]


def _param_count(arch: str, size: str) -> int:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**preset(arch, size)))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_checkpoint_loads_in_transformers_and_runs(arch, tiny_checkpoint_factory):
    path = tiny_checkpoint_factory(arch)
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert type(model).__name__ == preset(arch, "tiny")["architectures"][0]
    with torch.inference_mode():
        logits = model(torch.tensor([[1, 40, 41, 300, 7]])).logits
    assert logits.shape == (1, 5, preset(arch, "tiny")["vocab_size"])
    assert torch.isfinite(logits).all()
    assert 0.01 < logits.std().item() < 10  # random but sane: neither collapsed nor exploding


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_match_their_size_names(arch):
    assert 0.5e6 <= _param_count(arch, "tiny") <= 2e6
    assert 70e6 <= _param_count(arch, "small") <= 160e6


def test_family_quirks_are_kept():
    assert preset("qwen3", "tiny")["head_dim"] * 4 != preset("qwen3", "tiny")["hidden_size"]
    assert preset("qwen2", "small")["tie_word_embeddings"] is True
    assert preset("llama", "small")["tie_word_embeddings"] is False
    tiny = preset("llama", "tiny")
    assert tiny["num_key_value_heads"] < tiny["num_attention_heads"]  # GQA
    with torch.device("meta"):
        qwen2 = AutoModelForCausalLM.from_config(AutoConfig.for_model(**preset("qwen2", "tiny")))
    assert qwen2.model.layers[0].self_attn.q_proj.bias is not None


def test_unknown_preset_lists_the_valid_choices():
    with pytest.raises(ValueError, match="llama, mistral, qwen2, qwen3.*tiny, small, 1b, 7b"):
        preset("gpt2", "tiny")
    with pytest.raises(ValueError, match="valid sizes"):
        preset("llama", "huge")


def test_config_is_labelled_random_and_matches_the_tokenizer(tiny_llama):
    config = json.loads((tiny_llama / "config.json").read_text())
    assert config["plinth_random_weights"] is True
    assert config["torch_dtype"] == "float32"
    assert "random" in (tiny_llama / "README.md").read_text().lower()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    assert len(tokenizer) <= config["vocab_size"]
    assert tokenizer.convert_ids_to_tokens(config["bos_token_id"]) == SPECIAL_TOKENS[BOS_TOKEN_ID]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == config["eos_token_id"]
    assert tokenizer.pad_token == "<|endoftext|>"
    generation = json.loads((tiny_llama / "generation_config.json").read_text())
    assert generation["eos_token_id"][0] == EOS_TOKEN_ID


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_tokenizer_round_trips_any_unicode(tiny_llama, text):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_single_ids(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]


def test_chat_template_renders_chatml(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 🙂"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 🙂<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text == expected
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert tokenizer.decode(ids) == expected
    assert json.loads((tiny_llama / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE


def test_same_seed_same_checkpoint_other_seed_other_weights(tmp_path, tiny_llama):
    again = init_random("llama", "tiny", tmp_path / "again", seed=0)
    other = init_random("llama", "tiny", tmp_path / "other", seed=1)
    first, second = load_file(tiny_llama / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (tiny_llama / name).read_bytes() == (again / name).read_bytes()
    different = load_file(other / "model.safetensors")
    assert not torch.equal(first["model.embed_tokens.weight"], different["model.embed_tokens.weight"])


@pytest.mark.parametrize(("arch", "size"), [("llama", "1b"), ("qwen3", "7b"), ("mistral", "7b")])
def test_large_sizes_write_config_and_tokenizer_only(tmp_path, arch, size):
    path = init_random(arch, size, tmp_path)
    assert not has_weights(path)
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == arch and config.vocab_size == preset(arch, size)["vocab_size"]
    assert len(AutoTokenizer.from_pretrained(path)) <= config.vocab_size


def test_rewriting_without_weights_removes_stale_ones(tmp_path):
    path = init_random("qwen2", "tiny", tmp_path)
    assert has_weights(path)
    init_random("qwen2", "tiny", path, write_weights=False)
    assert not has_weights(path)
