"""LoRA adapters for multi-tenant serving: load and validate PEFT adapters (see ``adapter.py``)."""

from plinth.engine.lora.adapter import (
    TARGETS,
    AdapterError,
    LoraAdapter,
    LoraWeights,
    load_adapter,
    projection_shape,
)
from plinth.engine.lora.archive import resolve_adapter_source
from plinth.engine.lora.manager import LoraManager, LoraStats, UnknownAdapterError

__all__ = [
    "TARGETS",
    "AdapterError",
    "LoraAdapter",
    "LoraManager",
    "LoraStats",
    "LoraWeights",
    "load_adapter",
    "projection_shape",
    "resolve_adapter_source",
    "UnknownAdapterError",
]
