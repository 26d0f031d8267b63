"""``--merge-lora``: fold one adapter into the base weights, served at zero overhead.

``W' = W + scaling * B @ A`` for every adapted projection, written in place into the model's fused
weights (q/k/v rows of ``qkv_proj``, gate/up rows of ``gate_up_proj``) right after loading, before
the engine serves anything. A merged model needs no adapter slots.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from plinth.engine.lora.adapter import LoraAdapter, load_adapter, projection_shape

if TYPE_CHECKING:  # the model imports the LoRA layers: a runtime import here would be a cycle
    from plinth.engine.model import CausalLM

MERGE_MAX_RANK = 1 << 16  # no slot buffers to fit, so no rank limit beyond sanity
# fused projection -> (parent module, the Hugging Face projections it holds, in row order)
FUSED = {
    "qkv_proj": ("self_attn", ("q_proj", "k_proj", "v_proj")),
    "o_proj": ("self_attn", ("o_proj",)),
    "gate_up_proj": ("mlp", ("gate_proj", "up_proj")),
    "down_proj": ("mlp", ("down_proj",)),
}


def merge_adapter_dir(model: CausalLM, adapter_dir: Path) -> LoraAdapter:
    """Load (validating against the model) and merge the adapter at ``adapter_dir``."""
    adapter = load_adapter(adapter_dir, adapter_dir.name, model.cfg, MERGE_MAX_RANK)
    merge_adapter(model, adapter)
    return adapter


@torch.no_grad()
def merge_adapter(model: CausalLM, adapter: LoraAdapter) -> None:
    for index, layer in enumerate(model.layers):
        for fused, (parent, names) in FUSED.items():
            weight = getattr(getattr(layer, parent), fused).weight
            offset = 0
            for name in names:
                rows = projection_shape(model.cfg, name)[1]
                lora = adapter.weights.get((index, name))
                if lora is not None:
                    delta = (lora.b.double() @ lora.a.double()) * lora.scaling
                    weight[offset : offset + rows] += delta.to(device=weight.device, dtype=weight.dtype)
                offset += rows
            assert offset == weight.shape[0], f"{fused}: fused rows {weight.shape[0]} != {offset}"
