"""The shape of a Llama-family checkpoint, read from its Hugging Face ``config.json``.

One dataclass covers Llama 2/3, Mistral, Qwen2/2.5 and Qwen3: they differ only in a few switches
(qkv bias, qk-norm, rope scaling, tied embeddings), so the engine has one model implementation. The
mixture-of-experts families Mixtral and Qwen3-MoE are the same decoder with a routed set of gated MLPs
in place of the MLP of some or all layers (:attr:`ModelConfig.sparse_layers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.engine.errors import UnsupportedModelError

ARCHITECTURES = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "mixtral": "mixtral",
    "qwen3_moe": "qwen3_moe",
}
_MOE = ("mixtral", "qwen3_moe")


@dataclass(slots=True)
class ModelConfig:
    """Everything the engine needs to know about a checkpoint's architecture.

    >>> cfg = ModelConfig.from_dict({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    ...     "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})
    >>> cfg.head_dim, cfg.num_kv_heads
    (16, 4)
    """

    arch: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    eos_token_ids: tuple[int, ...] = ()
    generation_defaults: dict[str, Any] = field(default_factory=dict)
    bos_token_id: int | None = None
    torch_dtype: str = "float32"
    is_random: bool = False
    max_model_len: int = 4096
    name: str = ""
    path: Path = field(default_factory=Path)
    # Mixture of experts (0 experts: a dense model). Each layer in ``sparse_layers`` routes every token to
    # its ``num_experts_per_tok`` most probable experts (gated MLPs of ``moe_intermediate_size``) and adds
    # their outputs weighted by those probabilities, renormalized over the chosen ones when
    # ``norm_topk_prob``; Mixtral keeps the weights in float32 for that product (``router_float32``),
    # Qwen3-MoE rounds them to the model's dtype first, as their reference implementations do.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False
    router_float32: bool = False
    sparse_layers: tuple[int, ...] = ()

    @classmethod
    def from_pretrained(cls, path: Path, name: str = "", max_model_len: int | None = None) -> ModelConfig:
        """Read ``config.json`` (and ``generation_config.json`` for extra EOS ids and sampling defaults)
        from a checkpoint directory, or the metadata of a ``.gguf`` file."""
        if path.suffix == ".gguf":
            return cls._from_gguf(path, name, max_model_len)
        raw = json.loads((path / "config.json").read_text())
        gen_path = path / "generation_config.json"
        generation = json.loads(gen_path.read_text()) if gen_path.exists() else {}
        cfg = cls.from_dict(
            raw, extra_eos=_as_ids(generation.get("eos_token_id")), max_model_len=max_model_len
        )
        cfg.generation_defaults = sampling_defaults(generation)
        cfg.name, cfg.path = name or path.name, path
        return cfg

    @classmethod
    def _from_gguf(cls, path: Path, name: str, max_model_len: int | None) -> ModelConfig:
        from plinth.engine import gguf_checkpoint  # the gguf library only for GGUF files

        gguf = gguf_checkpoint.open_gguf(path)
        cfg = cls.from_dict(gguf_checkpoint.gguf_hf_config(gguf), max_model_len=max_model_len)
        cfg.generation_defaults = gguf_checkpoint.generation_defaults(gguf)
        cfg.name, cfg.path = name or path.stem, path
        return cfg

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], extra_eos: tuple[int, ...] = (), max_model_len: int | None = None
    ) -> ModelConfig:
        model_type = raw.get("model_type", "")
        if model_type not in ARCHITECTURES:
            raise UnsupportedModelError(
                f"model_type {model_type!r} is not supported; Plinth serves {sorted(ARCHITECTURES)}"
            )
        heads = raw["num_attention_heads"]
        rope = raw.get("rope_scaling") or raw.get("rope_parameters") or None
        rope_theta = raw.get("rope_theta") or (rope or {}).get("rope_theta") or 10000.0
        if rope is not None and rope.get("rope_type", rope.get("type", "default")) == "default":
            rope = None
        limit = _context_limit(raw)
        eos = tuple(dict.fromkeys(_as_ids(raw.get("eos_token_id")) + extra_eos))
        experts = int(raw.get("num_local_experts") or raw.get("num_experts") or 0)
        experts = experts if model_type in _MOE else 0
        return cls(
            arch=ARCHITECTURES[model_type],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_layers=raw["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=raw.get("num_key_value_heads") or heads,
            head_dim=raw.get("head_dim") or raw["hidden_size"] // heads,
            vocab_size=raw["vocab_size"],
            rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope_theta),
            rope_scaling=rope,
            max_position_embeddings=raw.get("max_position_embeddings", 4096),
            tie_word_embeddings=raw.get("tie_word_embeddings", False),
            attention_bias=raw.get("attention_bias", model_type == "qwen2"),
            qk_norm=model_type in ("qwen3", "qwen3_moe"),
            eos_token_ids=eos,
            bos_token_id=raw.get("bos_token_id"),
            torch_dtype=str(raw.get("torch_dtype") or raw.get("dtype") or "float32"),
            is_random=bool(raw.get("plinth_random_weights", False)),
            max_model_len=min(max_model_len or limit, limit),
            num_experts=experts,
            num_experts_per_tok=int(raw.get("num_experts_per_tok") or 0) if experts else 0,
            moe_intermediate_size=int(raw.get("moe_intermediate_size") or raw["intermediate_size"]),
            norm_topk_prob=model_type == "mixtral" or bool(raw.get("norm_topk_prob", False)),
            router_float32=model_type == "mixtral",
            sparse_layers=_sparse_layers(raw, experts),
        )


def sampling_defaults(generation_config: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings a ``generation_config.json`` recommends, as SamplingParams fields.

    temperature/top_p/top_k count only with ``do_sample: true`` (transformers ignores them otherwise);
    ``max_new_tokens`` becomes ``max_tokens``.
    """
    keys = ["repetition_penalty", "max_new_tokens"]
    if generation_config.get("do_sample"):
        keys += ["temperature", "top_p", "top_k"]
    found = {key: generation_config[key] for key in keys if generation_config.get(key) is not None}
    if "max_new_tokens" in found:
        found["max_tokens"] = found.pop("max_new_tokens")
    return found


def _sparse_layers(raw: dict[str, Any], experts: int) -> tuple[int, ...]:
    """The layers whose MLP is a mixture of experts: every layer of Mixtral; in Qwen3-MoE every
    ``decoder_sparse_step``-th one not listed in ``mlp_only_layers`` (those keep a dense MLP)."""
    if not experts:
        return ()
    step = int(raw.get("decoder_sparse_step") or 1)
    dense = set(raw.get("mlp_only_layers") or ())
    return tuple(i for i in range(raw["num_hidden_layers"]) if (i + 1) % step == 0 and i not in dense)


def _context_limit(raw: dict[str, Any]) -> int:
    """Longest context served correctly: Mistral v0.1's sliding window caps it (we attend fully)."""
    limit = raw.get("max_position_embeddings", 4096)
    window = raw.get("sliding_window")
    if window and raw.get("use_sliding_window", raw.get("model_type") in ("mistral", "mixtral")):
        limit = min(limit, window)
    return int(limit)


def _as_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (int(value),)
