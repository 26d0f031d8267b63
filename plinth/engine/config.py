"""The engine's one typed config: what to load, where, and the batching limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(slots=True)
class EngineConfig:
    """Settings for one :class:`~plinth.engine.LLMEngine`.

    ``model`` is a local checkpoint directory, a ``.gguf`` file (or a directory holding exactly one
    and no ``config.json``), or a Hugging Face id (downloaded on first use).
    ``load_format="dummy"`` builds random weights in memory from ``config.json`` (for benchmarks).
    ``kv_cache_blocks=None`` sizes the cache by need: ``max_num_seqs`` sequences of ``max_model_len``
    tokens, capped by a budget: ``kv_cache_memory_gb`` if set, else a quarter of the host memory
    available at start (CPU) or ``gpu_memory_utilization`` of the GPU.
    ``kv_cache_policy`` picks between prefix hits and resident memory (``BlockManager``): ``keep``
    hands out never-used blocks first, keeping every finished request's prefix until the cache is full;
    ``lean`` reuses freed blocks first, so a CPU cache's resident pages follow the load.
    """

    model: str
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    load_format: str = "auto"  # auto | dummy
    revision: str | None = None
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None
    block_size: int = 16
    kv_cache_blocks: int | None = None
    kv_cache_memory_gb: float | None = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    kv_cache_policy: Literal["keep", "lean"] = "keep"
    seed: int = 0
    enable_lora: bool = False
    max_loras: int = 8  # adapters resident in compute slots (distinct adapters per step)
    max_lora_rank: int = 16  # slot rank bucket: adapters of lower rank are zero-padded
    max_cpu_loras: int = 64  # adapters kept loaded in host memory (LRU)
    merge_lora: str | None = None  # an adapter folder merged into the weights at load (zero overhead)
    quantization: str | None = None  # None | int8 | int4: weight-only, CPU kernels (engine/quantization.py)
    batch_invariant: bool = False  # each request's numerics independent of its batch (engine/invariant.py)
