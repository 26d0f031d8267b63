"""Dequantize one GGUF tensor to a float32 torch tensor in Hugging Face layout (rows, columns).

The common llama.cpp types (F32, F16, BF16, Q8_0, Q4_0, Q4_1) are decoded here with whole-tensor
torch ops, several times faster on CPU than the ``gguf`` library's numpy code, which works in row
groups; every other supported type (Q5_0, Q5_1, the K-quants) goes through ``gguf.quants``. Tests
check that both paths give exactly what ``gguf.quants.dequantize`` gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, quants

__all__ = ["dequantize"]


def dequantize(tensor: Any) -> torch.Tensor:
    """``tensor`` (a ``gguf.ReaderTensor``) as a new float32 tensor of shape ``reversed(tensor.shape)``."""
    shape = tuple(int(n) for n in reversed(tensor.shape))
    decode = _TORCH_DECODERS.get(tensor.tensor_type)
    if decode is not None:
        raw = np.array(tensor.data, copy=True)  # the file's bytes, off the read-only memory map
        return decode(torch.from_numpy(raw.reshape(-1).view(np.uint8))).reshape(shape)
    values = np.asarray(quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    if not values.flags.writeable:  # returned as a view of the read-only memory map
        values = values.copy()
    return torch.from_numpy(values).reshape(shape)


def _scale(blocks: torch.Tensor, start: int) -> torch.Tensor:
    """The little-endian f16 at byte ``start`` of every block, as a float32 column."""
    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """ggml packs element j in the low nibble of byte j and element j+16 in its high nibble."""
    return torch.cat((packed & 0x0F, packed >> 4), dim=1).float()


def _q8_0(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 34)  # f16 scale, 32 int8
    return _scale(blocks, 0) * blocks[:, 2:].contiguous().view(torch.int8).float()


def _q4_0(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 18)  # f16 scale, 16 bytes of 4-bit values offset by 8
    return _scale(blocks, 0) * (_nibbles(blocks[:, 2:]) - 8)


def _q4_1(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 20)  # f16 scale, f16 minimum, 16 bytes of 4-bit values
    return _scale(blocks, 0) * _nibbles(blocks[:, 4:]) + _scale(blocks, 2)


def _f16(raw: torch.Tensor) -> torch.Tensor:
    return raw.view(torch.float16).float()


def _bf16(raw: torch.Tensor) -> torch.Tensor:
    return raw.view(torch.bfloat16).float()


def _f32(raw: torch.Tensor) -> torch.Tensor:
    return raw.view(torch.float32)


_TORCH_DECODERS: dict[GGMLQuantizationType, Callable[[torch.Tensor], torch.Tensor]] = {
    GGMLQuantizationType.F32: _f32,
    GGMLQuantizationType.F16: _f16,
    GGMLQuantizationType.BF16: _bf16,
    GGMLQuantizationType.Q8_0: _q8_0,
    GGMLQuantizationType.Q4_0: _q4_0,
    GGMLQuantizationType.Q4_1: _q4_1,
}
