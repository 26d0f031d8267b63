"""Owns the model weights and the KV cache on one device; turns a scheduled batch into logits."""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from plinth.engine import native
from plinth.engine.allocator import HeapTrimmer, keep_freed_memory, release_freed_memory
from plinth.engine.attention import AttentionMetadata, SeqSpan, prompt_blocks, short_prefill
from plinth.engine.config import EngineConfig
from plinth.engine.gguf_embedding import keep_embedding_quantized
from plinth.engine.invariant import tile_rows
from plinth.engine.lora.layers import LoraBatch, LoraContext
from plinth.engine.model import CausalLM
from plinth.engine.model_config import ModelConfig
from plinth.engine.packed_embedding import embed_from_packed_head
from plinth.engine.prepack import can_prepack, onednn_bf16, prepack_linears
from plinth.engine.scheduler import ScheduledSeq
from plinth.engine.weights import has_weights, is_gguf, iter_weights

HOST_KV_SHARE = 0.25  # of available host memory, the most an unconfigured CPU KV cache may take
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available on this machine")
    return device


def resolve_dtype(name: str, device: torch.device, checkpoint_dtype: str) -> torch.dtype:
    """``auto``: the checkpoint's half-precision dtype where it runs fast (any GPU; a CPU where oneDNN
    or Plinth's kernels multiply bf16, :func:`~plinth.engine.prepack.can_prepack`: AVX512-BF16/AMX, or
    AVX2, where Plinth's kernel reads half float32's bytes and one stream of SmolLM2 decoded 2.7x as
    fast as in float32, ``benchmarks/README.md``), else float32."""
    if name != "auto":
        if name not in DTYPES:
            raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
        return DTYPES[name]
    stored = DTYPES.get(checkpoint_dtype.removeprefix("torch."), torch.float32)
    if device.type == "cuda":
        return torch.float16 if stored == torch.float16 else torch.bfloat16
    if stored == torch.bfloat16 and can_prepack(device, torch.bfloat16):
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def _no_random_init() -> Iterator[None]:
    """Skip nn.Linear/nn.Embedding random initialisation while the model is built: every weight is
    then loaded or dummy-filled (load_weights checks that none is left), and on CPU the wasted
    uniform_/normal_ calls cost about as much as dequantizing a small GGUF."""
    classes: tuple[type[nn.Module], ...] = (nn.Linear, nn.Embedding)
    saved = [getattr(cls, "reset_parameters") for cls in classes]  # noqa: B009
    for cls in classes:
        setattr(cls, "reset_parameters", lambda self: None)  # noqa: B010 (a method, patched for a moment)
    try:
        yield
    finally:
        for owner, method in zip(classes, saved, strict=True):
            setattr(owner, "reset_parameters", method)  # noqa: B010


def available_host_memory() -> int:
    """Bytes the kernel could hand out now without swapping (``MemAvailable``)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/meminfo") as meminfo:
        line = next(row for row in meminfo if row.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def zeroed(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.zeros``, but on CPU in an anonymous memory map: the kernel hands out zero pages as they
    are first written, so a 2 GiB KV cache costs no time at start and resident memory only as far as
    it is used (malloc'd zeros are written out eagerly: keep_freed_memory keeps them off mmap)."""
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    pages = mmap.mmap(-1, math.prod(shape) * dtype.itemsize)  # the tensor keeps the map alive
    return torch.frombuffer(pages, dtype=torch.uint8).view(dtype).view(shape)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class ModelRunner:
    """Builds the model (real or dummy weights), sizes and allocates the paged KV cache, runs steps."""

    def __init__(self, model_config: ModelConfig, config: EngineConfig) -> None:
        self.cfg, self.config = model_config, config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device, model_config.torch_dtype)
        self.trimmer: HeapTrimmer | None = None
        if self.device.type == "cpu":
            if keep_freed_memory():
                self.trimmer = HeapTrimmer()
            native.available()  # built (first time, ~7 s) or loaded now, not in the first request
        torch.manual_seed(config.seed)
        lora = LoraContext(config.max_lora_rank, config.max_loras, config.batch_invariant)
        cpu_bf16 = self.device.type == "cpu" and self.dtype == torch.bfloat16
        lora.float32_products = cpu_bf16 and not onednn_bf16()
        self.lora = lora if config.enable_lora else None
        with _default_dtype(self.dtype), self.device, _no_random_init():
            self.model = CausalLM(model_config, self.lora)
        if self.lora is not None and self.device.type == "cuda":
            # on a GPU the KV cache takes what memory is free, so the slots must exist before it; on a
            # CPU they wait for the first adapter (peak RSS: LoraLinear.allocate_slots)
            for layer in self.lora.layers:
                layer.allocate_slots()
        self._load_weights()
        if self.device.type == "cpu":
            release_freed_memory()  # the dequantization's buffers, before prepack or quantization allocate
        if config.quantization is not None:
            self._quantize(config.quantization)
        elif can_prepack(self.device, self.dtype):
            embed_from_packed_head(self.model)  # a tied head packed over its table, rows read from it
            with torch.no_grad():
                prepack_linears(self.model)
        if config.load_format != "dummy" and is_gguf(model_config.path):
            # after the head took its own copy: the table then serves lookups only
            keep_embedding_quantized(self.model, model_config.path, self.dtype)
        if config.batch_invariant:
            tile_rows(self.model)
        self.model.fuse_decode_layers()
        if self.device.type == "cpu":
            release_freed_memory()  # the load's transient float buffers
        self.model.eval()
        self.block_size = config.block_size
        self.prompt_blocks = prompt_blocks(self.device, self.dtype, model_config.head_dim)
        self.num_blocks = self._num_kv_blocks()
        shape = (self.num_blocks * self.block_size, model_config.num_kv_heads, model_config.head_dim)
        self.kv_caches = [
            (zeroed(shape, self.dtype, self.device), zeroed(shape, self.dtype, self.device))
            for _ in range(model_config.num_layers)
        ]

    def _load_weights(self) -> None:
        if self.config.load_format == "dummy":
            self.model.init_dummy_weights(self.config.seed)
            return
        if not has_weights(self.cfg.path):
            raise ValueError(
                f"{self.cfg.path} has no weight files; pass load_format='dummy' (--load-format dummy) to "
                "benchmark it with random weights generated in memory"
            )
        gguf = is_gguf(self.cfg.path)
        with torch.no_grad():
            weights = iter_weights(self.cfg.path, self.dtype)
            if self.device.type == "cpu":
                weights = _trimmed(weights)
                if gguf and self.config.quantization is not None and self.config.merge_lora is None:
                    weights = self._quantized_as_read(weights, self.config.quantization)
            # a GGUF's tensors are dequantized into fresh buffers: the model takes them as they are
            self.model.load_weights(weights, adopt=gguf)
        if self.config.merge_lora is not None:
            from plinth.engine.lora.merge import merge_adapter_dir

            merge_adapter_dir(self.model, Path(self.config.merge_lora))

    def _quantized_as_read(
        self, weights: Iterator[tuple[str, torch.Tensor]], method: str
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """``weights`` (a GGUF's), quantizing each decoder layer once its last tensor is in, so the
        whole float model is never resident: an int4 server's start-up peak was the bf16 load
        (``benchmarks/memory.py``). Where a layer's tensors end is read from the file's header."""
        from plinth.engine.gguf_checkpoint import matrix_type, open_gguf
        from plinth.engine.gguf_weights import gguf_weight_names
        from plinth.engine.quantization import quantizer, replace_weights

        gguf = open_gguf(Path(self.cfg.path))
        if method == "int8" and (stored := matrix_type(gguf)) in _FOUR_BIT_GGUF:
            # Measured on the packaged SmolLM2 (Q4_1): int4's groups of 32 hold every weight exactly,
            # int8's one scale per output channel adds 0.8-1.2 % relative error to each linear, and
            # its greedy answers degenerate ("1. **1.1.1...").
            log.warning(
                "--quantization int8 rounds this %s file's 4-bit weights again, one scale per output "
                "channel (about 1 %% error a linear); --quantization int4 keeps a Q4_1 file's groups exactly",
                stored,
            )
        make = quantizer(self.model, method)
        layers = [_layer_index(name) for name in gguf_weight_names(gguf)]
        last = {index: at for at, index in enumerate(layers) if index is not None}
        for at, (name, tensor) in enumerate(weights):
            yield name, tensor
            index = _layer_index(name)
            if index is not None and last.get(index) == at:  # the layer is whole: quantize it now
                replace_weights(self.model.layers[index], make)
                release_freed_memory()

    def _quantize(self, method: str) -> None:
        if self.device.type != "cpu":
            raise ValueError(f"quantization {method!r} runs on CPU kernels; device is {self.device}")
        from plinth.engine.quantization import quantize_linears

        with torch.no_grad():
            quantize_linears(self.model, method)

    def _block_bytes(self) -> int:
        cfg = self.cfg
        per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * self.dtype.itemsize
        return per_token * self.block_size

    def _num_kv_blocks(self) -> int:
        """Blocks to allocate: configured, or what the memory budget holds, but no more than can be used."""
        if self.config.kv_cache_blocks:
            return self.config.kv_cache_blocks
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            budget = free - total * (1 - self.config.gpu_memory_utilization)
        elif self.config.kv_cache_memory_gb is not None:
            budget = self.config.kv_cache_memory_gb * 2**30
        else:
            budget = available_host_memory() * HOST_KV_SHARE
        usable = self.config.max_num_seqs * -(-self.cfg.max_model_len // self.block_size)
        return max(1, min(int(budget // self._block_bytes()), usable))

    @torch.inference_mode()
    def run(self, batch: list[ScheduledSeq], interrupt: Callable[[], bool] | None = None) -> torch.Tensor:
        """Forward every scheduled token; return the logits of the sampling rows, in batch order, in the
        model's dtype (the sampler widens them to float32 where it needs to: a greedy batch's argmax does
        not, and copying 16 rows of 49,152 bf16 logits took ~0.3 ms of each 16-stream decode step).
        Raises :class:`~plinth.engine.model.StepInterrupted` when ``interrupt`` says yes between layers."""
        input_ids: list[int] = []
        positions: list[int] = []
        sample_rows: list[int] = []
        kept_spans: list[tuple[int, int, int | None]] = []  # lora_spans' form for the sampling rows alone
        spans = []
        lora_spans: list[tuple[int, int, int | None]] = []
        for item in batch:
            start = item.seq.num_computed
            lora_spans.append((len(input_ids), item.num_new, item.seq.lora_slot))
            input_ids.extend(item.seq.token_ids[start : start + item.num_new])
            positions.extend(range(start, start + item.num_new))
            spans.append(SeqSpan(item.seq.block_table, start, item.num_new))
            if item.samples:
                kept_spans.append((len(sample_rows), 1, item.seq.lora_slot))
                sample_rows.append(len(input_ids) - 1)
        meta = AttentionMetadata.build(spans, self.block_size, self.device, self.config.batch_invariant,
                                       self.prompt_blocks)  # fmt: skip
        ids = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        pos = torch.tensor(positions, dtype=torch.long, device=self.device)
        rows = None  # a decode-only step samples every row
        if len(sample_rows) < len(input_ids):
            rows = torch.tensor(sample_rows, dtype=torch.long, device=self.device)
        if self.lora is not None:
            lora = LoraBatch.build(lora_spans, self.device, self.dtype, self.config.batch_invariant,
                                   row_wise=meta.rows is not None and short_prefill(spans))  # fmt: skip
            self.lora.batch = None if lora.empty else lora  # no adapter token: the layers skip at once
            # the sampling rows' own batch (one row each), for the last layer past its attention
            kept = None
            if rows is not None and not lora.empty:
                kept = LoraBatch.build(kept_spans, self.device, self.dtype, self.config.batch_invariant)
            self.lora.kept = None if kept is None or kept.empty else kept
        hidden = self.model(ids, pos, self.kv_caches, meta, interrupt, rows)
        logits = self.model.compute_logits(hidden)
        del hidden  # the step's activations are all free now
        if self.trimmer is not None:
            self.trimmer.after_step(len(input_ids))
        return logits


def _layer_index(name: str | None) -> int | None:
    """``i`` for a Hugging Face name ``model.layers.{i}.…``, else None."""
    match = _LAYER.match(name or "")
    return int(match[1]) if match else None


_LAYER = re.compile(r"model\.layers\.(\d+)\.")
_FOUR_BIT_GGUF = ("Q4_0", "Q4_1", "Q4_K")  # matrix types int8 re-rounds (see _quantized_as_read)


def _trimmed(
    weights: Iterator[tuple[str, torch.Tensor]], every: int = 4 << 20
) -> Iterator[tuple[str, torch.Tensor]]:
    """``weights``, handing the heap's free pages back after every ``every`` bytes loaded.

    With freed memory kept in the process (:func:`~plinth.engine.allocator.keep_freed_memory`), each
    tensor's transient buffers (a GGUF's dequantization chunks, a fused tensor's copy) leave touched
    pages behind that the next tensors do not all reuse: loading SmolLM2 grew 55 MB past the model
    before the trim after it, and that was the start-up peak (``benchmarks/memory.py``)."""
    loaded = 0
    for name, tensor in weights:
        yield name, tensor
        loaded += tensor.nbytes
        if loaded >= every:
            release_freed_memory()
            loaded = 0
