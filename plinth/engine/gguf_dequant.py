"""Dequantize one GGUF tensor to a float32 torch tensor in Hugging Face layout (rows, columns).

Uses the ``gguf`` library's numpy dequantizers (every type :data:`SUPPORTED_TYPES` lists).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gguf import quants

__all__ = ["dequantize"]


def dequantize(tensor: Any) -> torch.Tensor:
    """``tensor`` (a ``gguf.ReaderTensor``) as a new float32 tensor of shape ``reversed(tensor.shape)``."""
    values = np.asarray(quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    if not values.flags.writeable:  # float32 tensors come back as views of the read-only memory map
        values = values.copy()
    shape = tuple(int(n) for n in reversed(tensor.shape))
    return torch.from_numpy(values).reshape(shape)
