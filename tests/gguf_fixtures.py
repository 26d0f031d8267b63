"""Write GGUF files from Hugging Face checkpoints the way llama.cpp's converter does, for tests.

``write_gguf(hf_dir, out, qtype)`` writes the model's config keys, its tokenizer (vocabulary, merges,
token types, special ids, chat template) and every tensor: 1-D tensors (norms, biases) as F32 as
llama.cpp does, matrices in ``qtype``. Q and K rows of llama-architecture files (Llama, Mistral) are
permuted as llama.cpp's ``LlamaModel.permute`` does. gguf-py cannot quantize K-quants, so for those
``random_kquant_blocks`` builds valid raw blocks (finite scales, random quants) instead of the HF weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType, quants
from gguf.constants import GGML_QUANT_SIZES
from safetensors.numpy import load_file

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
K_QUANTS = ("Q4_K", "Q5_K", "Q6_K")
_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight"}  # fmt: skip


def gguf_name(hf_name: str) -> str:
    if hf_name in _TOP:
        return _TOP[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{_NAMES[module]}.{kind}"


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter: per head, rows [half 1 | half 2] -> interleaved pairs."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def random_kquant_blocks(rows: int, cols: int, qtype: str, seed: int = 0) -> np.ndarray:
    """Raw ``qtype`` blocks for a (rows, cols) matrix: random quants and sub-scales, small finite
    f16 super-block scales so dequantized values are of a trained model's size (~0.01-0.1)."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[qtype]]
    assert cols % block == 0
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    if qtype == "Q6_K":  # ql[128] qh[64] scales[16] d
        raw[..., 208:210] = _f16_bytes(rng, (rows, cols // block), 1e-4, 3e-4)
    else:  # d, dmin, then scales and quants
        raw[..., 0:2] = _f16_bytes(rng, (rows, cols // block), 1e-4, 4e-4)
        raw[..., 2:4] = _f16_bytes(rng, (rows, cols // block), 1e-4, 4e-4)
    return raw.reshape(rows, -1)


def _f16_bytes(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(np.float16)[..., None].view(np.uint8)


def write_gguf(
    hf_dir: Path,
    out: Path,
    qtype: str = "F32",
    name: str | None = None,
    eot_token_id: int | None = None,
    sampling: dict[str, float] | None = None,
) -> Path:
    """Convert the tiny checkpoint in ``hf_dir`` to ``out`` (a ``.gguf``) with matrices in ``qtype``;
    ``sampling`` adds ``general.sampling.<key>`` values (``temp``, ``top_p``, ...)."""
    config = json.loads((hf_dir / "config.json").read_text())
    arch = GGUF_ARCH[config["model_type"]]
    writer = GGUFWriter(out, arch)
    _write_config(writer, config, name or f"Tiny {config['model_type']}")
    for key, value in (sampling or {}).items():
        getattr(writer, f"add_sampling_{key}")(value)
    _write_tokenizer(writer, hf_dir, eot_token_id, arch)
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    for hf_name, tensor in load_file(hf_dir / "model.safetensors").items():
        target = gguf_name(hf_name)
        weight = tensor.astype(np.float32)
        kind = target.split(".")[2] if target.startswith("blk.") else ""
        if arch == "llama" and kind in heads:
            weight = llama_cpp_permute(weight, heads[kind])
        _add_tensor(writer, target, weight, qtype if weight.ndim == 2 else "F32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _add_tensor(writer: GGUFWriter, name: str, weight: np.ndarray, qtype: str) -> None:
    if qtype == "F32":
        writer.add_tensor(name, weight)
    elif qtype == "F16":
        writer.add_tensor(name, weight.astype(np.float16))
    elif qtype in K_QUANTS:
        raw = random_kquant_blocks(*weight.shape, qtype, seed=sum(map(ord, name)))
        writer.add_tensor(name, raw, raw_dtype=GGMLQuantizationType[qtype])
    else:
        kind = GGMLQuantizationType[qtype]
        writer.add_tensor(name, quants.quantize(weight, kind), raw_dtype=kind)


def _write_config(writer: GGUFWriter, config: dict, name: str) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_name(name)
    writer.add_license("apache-2.0")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.get("rope_theta") or config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])


def _write_tokenizer(writer: GGUFWriter, hf_dir: Path, eot_token_id: int | None, arch: str) -> None:
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    tok_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    special = {t["id"] for t in tokenizer["added_tokens"] if t["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    # The split regex, as llama.cpp names it: transformers gives qwen2-type checkpoints Qwen2's
    # regex whatever tokenizer.json says; llama ones keep ByteLevel's GPT-2 regex.
    writer.add_tokenizer_pre("qwen2" if arch.startswith("qwen") else "gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [TokenType.CONTROL if i in special else TokenType.NORMAL for i in range(len(tokens))]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab[tok_config["eos_token"]])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    if eot_token_id is not None:
        writer.add_eot_token_id(eot_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tok_config["chat_template"])
