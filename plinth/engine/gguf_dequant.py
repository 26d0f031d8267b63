"""Dequantize one GGUF tensor to a torch tensor of the model's dtype in Hugging Face layout (rows, columns).

Uses the ``gguf`` library's numpy dequantizers (every type :data:`SUPPORTED_TYPES` lists). Measured
on SmolLM2's Q4_1/Q8_0 tensors with 2 threads: 1.3 s for all of them, against 6.7 s for a
whole-tensor torch version (uint8 bit operations, cat and float conversion are slow on CPU), so the
library's code is kept.

The library works in float32 and its intermediates are several times the result, so a whole
49152 x 576 embedding briefly held ~0.3 GB; rows are dequantized a chunk at a time and each chunk is
cast straight into the result (bf16 for a quantized file), which is bit-identical to casting the
whole float32 tensor (both round each value to nearest even) and keeps the load's peak RSS at the
model plus one chunk (``benchmarks/memory.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gguf import quants

__all__ = ["dequantize"]

CHUNK_VALUES = 1 << 18  # float32 values per chunk: 1 MB, a few times that in the library's intermediates


def dequantize(tensor: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``tensor`` (a ``gguf.ReaderTensor``) as a new ``dtype`` tensor of shape ``reversed(tensor.shape)``."""
    shape = tuple(int(n) for n in reversed(tensor.shape))
    out = torch.empty(shape, dtype=dtype)
    flat = out.view(-1, shape[-1])
    data = tensor.data.reshape(flat.shape[0], -1)  # one row of the tensor per row of raw bytes or values
    step = max(1, CHUNK_VALUES // shape[-1])
    for start in range(0, flat.shape[0], step):
        values = quants.dequantize(data[start : start + step], tensor.tensor_type)
        # A float32 tensor comes back as a read-only view of the map: copied (one chunk) for torch.
        flat[start : start + step].copy_(torch.from_numpy(np.require(values, np.float32, "W")))
    return out
