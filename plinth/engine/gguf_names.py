"""GGUF tensor names (llama.cpp's) -> Hugging Face names, for the Llama-family models the engine serves.

``hf_tensor_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"``; a name that is
not part of a llama/qwen2/qwen3 model maps to None (the loader refuses such a file).
"""

from __future__ import annotations

import re

__all__ = ["hf_tensor_name"]

_TOP_LEVEL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_IN_BLOCK = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def hf_tensor_name(name: str) -> str | None:
    """The Hugging Face name of GGUF tensor ``name``, or None when the engine has no such tensor."""
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    match = _BLOCK.fullmatch(name)
    if match is None or match[2] not in _IN_BLOCK:
        return None
    return f"model.layers.{match[1]}.{_IN_BLOCK[match[2]]}.{match[3]}"
