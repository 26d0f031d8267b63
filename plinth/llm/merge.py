"""``--merge-lora``: fold one LoRA adapter into a model's weights, so it is served at zero overhead.

``W' = W + scaling * B @ A`` for every adapted projection, written in place into the engine's (fused)
weights, before the engine serves anything. The engine's own ``LoraLinear.merge`` only exists when
LoRA slots are allocated; a merged model needs no slots, so this works on plain ``nn.Linear`` layers
through the engine's fused layout (q/k/v in ``qkv_proj``, gate/up in ``gate_up_proj``)::

    model = load_merged(settings.engine_config(base, enable_lora=False), Path("adapters/sql"), "sql")
    model.name, model.parent    # ("sql", "<base>")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plinth.engine import EngineConfig
from plinth.engine.lora import AdapterError, LoraAdapter, load_adapter, projection_shape
from plinth.engine.model_config import ModelConfig
from plinth.engine.weights import resolve_checkpoint
from plinth.llm.local import LocalModel

__all__ = ["MERGE_MAX_RANK", "load_merged", "merge_adapter", "merge_target"]

MERGE_MAX_RANK = 1 << 16  # merging has no slot buffers, so no rank limit beyond sanity
# fused projection -> (parent module, the Hugging Face projections it holds, in row order)
_FUSED = {
    "qkv_proj": ("self_attn", ("q_proj", "k_proj", "v_proj")),
    "o_proj": ("self_attn", ("o_proj",)),
    "gate_up_proj": ("mlp", ("gate_proj", "up_proj")),
    "down_proj": ("mlp", ("down_proj",)),
}


def load_merged(config: EngineConfig, adapter_dir: Path, name: str) -> LocalModel:
    """Load ``config.model`` with the adapter at ``adapter_dir`` merged in, served as ``name``."""
    model = LocalModel.load(config)
    engine = model.engine.engine
    try:
        adapter = load_adapter(Path(adapter_dir), name, engine.model_config, MERGE_MAX_RANK)
    except BaseException:
        model.shutdown()
        raise
    merge_adapter(engine.runner.model, adapter, engine.model_config)
    model.parent, model.name = model.name, name
    return model


@torch.no_grad()
def merge_adapter(model: Any, adapter: LoraAdapter, config: ModelConfig) -> None:
    """Add ``scaling * B @ A`` of every adapted projection to the engine model's fused weights."""
    for index, layer in enumerate(model.layers):
        for fused, (parent, names) in _FUSED.items():
            weight = getattr(getattr(layer, parent), fused).weight
            offset = 0
            for name in names:
                rows = projection_shape(config, name)[1]
                lora = adapter.weights.get((index, name))
                if lora is not None:
                    delta = (lora.b.double() @ lora.a.double()) * lora.scaling
                    weight[offset : offset + rows] += delta.to(device=weight.device, dtype=weight.dtype)
                offset += rows
            assert offset == weight.shape[0], f"{fused}: fused rows {weight.shape[0]} != {offset}"


def merge_target(models: list[str], adapter_dir: Path, name: str) -> str:
    """The first of ``models`` the adapter fits (reads configs and the adapter, builds no engine)."""
    problems = []
    for model in models:
        config = ModelConfig.from_pretrained(resolve_checkpoint(model, None), model)
        try:
            load_adapter(Path(adapter_dir), name, config, MERGE_MAX_RANK)
            return model
        except AdapterError as exc:
            problems.append(f"{model}: {exc.problem}")
    raise AdapterError(name, f"--merge-lora: it fits none of the served models ({'; '.join(problems)})")
