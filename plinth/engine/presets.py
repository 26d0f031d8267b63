"""Hugging Face ``config.json`` dicts for random checkpoints, by architecture and size.

Contract: ``preset(arch, size)`` returns a fresh dict in the hub's own format (``model_type``,
``architectures``, top-level ``rope_theta``), so a random checkpoint looks exactly like one downloaded
from the hub and exercises the same loading code. Shapes follow the real families:

- ``tiny``  (~0.7-0.9M params): 2 layers, GQA (4 heads, 2 kv heads) -- for unit and parity tests.
- ``small`` (~100M): GPT-2-small width, 16 layers, GQA -- for demos and benchmarks on CPU.
- ``1b``    Llama-3.2-1B shape; ``7b`` Llama-2-7B / Mistral-7B / Qwen2-7B / Qwen3-8B shapes --
  used with ``--load-format dummy`` for benchmarks, so only config and tokenizer are written.

Family quirks kept on purpose, because the engine must handle them: Qwen2 has q/k/v biases (implied by
the architecture, not a config field), Qwen3 has q/k RMSNorm and an explicit ``head_dim`` that is not
``hidden_size / num_attention_heads``, Qwen ties embeddings at small sizes, Llama-3.2-1B ties too. The
mixture-of-experts families route each token to 2 of their experts; the tiny Qwen3-MoE keeps a dense MLP
in its first layer (``mlp_only_layers``), so one tiny checkpoint has both kinds of layer; ``7b`` is
Mixtral-8x7B's shape and Qwen3-30B-A3B's.

Example::

    >>> preset("qwen3", "tiny")["head_dim"]
    64
"""

from __future__ import annotations

import copy
from typing import Any

ARCHS = ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe")
SIZES = ("tiny", "small", "1b", "7b")

# The tokenizer trained by checkpoint.py puts its special tokens first, in this order, so the ids
# below are fixed for every random checkpoint.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
BOS_TOKEN_ID = 0  # <|endoftext|>
EOS_TOKEN_ID = 2  # <|im_end|>: chat turns end with it
PAD_TOKEN_ID = 0
# Size of the tokenizer checkpoint.py trains (deterministic). tiny and small use exactly this vocabulary,
# so everything a random model samples decodes to visible text; 1b/7b keep their family's real vocab
# size (they are weightless, for speed benchmarks only).
RANDOM_TOKENIZER_VOCAB = 1820

_FAMILY: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False},
    "mistral": {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "rms_norm_eps": 1e-5,
                "rope_theta": 1000000.0, "sliding_window": None},
    "qwen2": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "rms_norm_eps": 1e-6,
              "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": None},
    "qwen3": {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "rms_norm_eps": 1e-6,
              "rope_theta": 1000000.0, "attention_bias": False, "use_sliding_window": False,
              "sliding_window": None},
    "mixtral": {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "rms_norm_eps": 1e-5,
                "rope_theta": 1000000.0, "sliding_window": None, "num_local_experts": 8,
                "num_experts_per_tok": 2, "router_jitter_noise": 0.0},
    "qwen3_moe": {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "rms_norm_eps": 1e-6,
                  "rope_theta": 1000000.0, "attention_bias": False, "use_sliding_window": False,
                  "sliding_window": None, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": True,
                  "decoder_sparse_step": 1, "mlp_only_layers": []},
}  # fmt: skip

_SHAPE: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 352, "vocab_size": RANDOM_TOKENIZER_VOCAB,
             "max_position_embeddings": 2048, "torch_dtype": "float32"},
    "small": {"hidden_size": 768, "num_hidden_layers": 16, "num_attention_heads": 12,
              "num_key_value_heads": 4, "intermediate_size": 2048, "vocab_size": RANDOM_TOKENIZER_VOCAB,
              "max_position_embeddings": 2048, "torch_dtype": "bfloat16"},
    "1b": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256,
           "max_position_embeddings": 8192, "torch_dtype": "bfloat16"},
    "7b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
           "max_position_embeddings": 4096, "torch_dtype": "bfloat16"},
}  # fmt: skip

# Where a family's real model of that size differs from the generic shape above.
_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("llama", "1b"): {"rope_theta": 500000.0, "tie_word_embeddings": True},  # Llama-3.2-1B
    ("mistral", "1b"): {"vocab_size": 32768},
    ("mistral", "7b"): {"num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32768,
                        "max_position_embeddings": 32768},  # Mistral-7B-v0.3
    ("qwen2", "1b"): {"vocab_size": 151936},
    ("qwen2", "7b"): {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28,
                      "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064,
                      "max_position_embeddings": 32768, "tie_word_embeddings": False},  # Qwen2-7B
    ("qwen3", "tiny"): {"head_dim": 64},  # deliberately != hidden/heads, as in real Qwen3 models
    ("qwen3", "small"): {"head_dim": 128},
    ("qwen3", "1b"): {"head_dim": 128, "vocab_size": 151936},
    ("qwen3", "7b"): {"hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32,
                      "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288,
                      "vocab_size": 151936, "max_position_embeddings": 40960,
                      "tie_word_embeddings": False},  # Qwen3-8B (there is no Qwen3-7B)
    ("mixtral", "tiny"): {"num_local_experts": 4},
    ("mixtral", "small"): {"num_local_experts": 4, "intermediate_size": 512},  # ~100M, as the others
    ("mixtral", "7b"): {"num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
                        "max_position_embeddings": 32768},  # Mixtral-8x7B
    ("qwen3_moe", "tiny"): {"head_dim": 64, "num_experts": 4, "moe_intermediate_size": 96,
                            "mlp_only_layers": [0]},
    ("qwen3_moe", "small"): {"head_dim": 128, "moe_intermediate_size": 256},
    ("qwen3_moe", "1b"): {"head_dim": 128, "vocab_size": 151936, "moe_intermediate_size": 1024},
    ("qwen3_moe", "7b"): {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
                          "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144,
                          "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
                          "vocab_size": 151936, "max_position_embeddings": 40960,
                          "tie_word_embeddings": False},  # Qwen3-30B-A3B
}  # fmt: skip


def preset(arch: str, size: str) -> dict[str, Any]:
    """Return a new hub-format config dict for ``arch`` x ``size``.

    Raises ValueError naming the valid choices, because this is reached straight from CLI flags.
    """
    if arch not in ARCHS or size not in SIZES:
        raise ValueError(
            f"unknown preset arch={arch!r} size={size!r}; "
            f"valid archs: {', '.join(ARCHS)}; valid sizes: {', '.join(SIZES)}"
        )
    config: dict[str, Any] = {
        **_FAMILY[arch],
        **_SHAPE[size],
        "tie_word_embeddings": arch.startswith("qwen"),
        **_OVERRIDES.get((arch, size), {}),
    }
    if "use_sliding_window" in config:
        config["max_window_layers"] = config["num_hidden_layers"]
    config.update(
        hidden_act="silu",
        initializer_range=0.02,
        attention_dropout=0.0,
        use_cache=True,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
    )
    return copy.deepcopy(config)
