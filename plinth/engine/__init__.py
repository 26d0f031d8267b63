"""Plinth's inference engine: token ids in, token ids out (no text, HTTP, tenants or RAG here).

The GGUF metadata reader is exported lazily: it imports the ``gguf`` library, which a server loading
safetensors never needs (peak RSS, issue 18).
"""

from typing import TYPE_CHECKING

from plinth.engine.async_engine import AsyncLLMEngine
from plinth.engine.config import EngineConfig
from plinth.engine.guided import Grammar, TokenMatcher
from plinth.engine.llm_engine import EngineStats, LLMEngine, PromptTooLongError
from plinth.engine.lora import AdapterError, LoraAdapter, UnknownAdapterError
from plinth.engine.lora.manager import LoraStats
from plinth.engine.model_config import ModelConfig, UnsupportedModelError
from plinth.engine.outputs import RequestOutput, TokenLogprob
from plinth.engine.sampling_params import (
    BATCH_PRIORITY,
    INTERACTIVE_PRIORITY,
    SamplingParams,
    SamplingParamsError,
)
from plinth.lazy import lazy_exports

if TYPE_CHECKING:
    from plinth.engine.gguf_checkpoint import GGUFSummary, read_gguf_metadata

__all__ = [
    "BATCH_PRIORITY",
    "INTERACTIVE_PRIORITY",
    "AdapterError",
    "AsyncLLMEngine",
    "EngineConfig",
    "EngineStats",
    "GGUFSummary",
    "Grammar",
    "LLMEngine",
    "LoraAdapter",
    "LoraStats",
    "ModelConfig",
    "PromptTooLongError",
    "RequestOutput",
    "SamplingParams",
    "SamplingParamsError",
    "TokenLogprob",
    "TokenMatcher",
    "UnknownAdapterError",
    "UnsupportedModelError",
    "read_gguf_metadata",
]

__getattr__ = lazy_exports(
    __name__, {"GGUFSummary": "gguf_checkpoint", "read_gguf_metadata": "gguf_checkpoint"}
)
