"""A GGUF's Q8_0 token-embedding table kept in its 8-bit blocks, dequantized row by row at lookup.

Why: a lookup reads one row per token, so the table needs no matmul layout. Once the LM head has its
own copy (oneDNN-packed bf16, or int8/int4 under ``--quantization``), the dense embedding table is a
second full copy of the same matrix held only for lookups: 57 MB of bf16 for SmolLM2's 49,152 x 576
table, against 30 MB as the file stores it (int8 values, one fp16 scale per 32). Q4_1 files such as the
packaged SmolLM2's keep this table in Q8_0.

Exact: a row is ``int8 value * fp16 scale`` in float32, rounded once to the model's dtype, which is
what the load's dequantization (:func:`plinth.engine.gguf_dequant.dequantize`) computes, so the
embeddings equal the dense table's bit for bit (``tests/engine/test_gguf_embedding.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["Q8_0Embedding", "keep_embedding_quantized"]

_BLOCK = 32  # values per Q8_0 block, after a 2-byte fp16 scale
_TENSOR = "token_embd.weight"
_CHUNK_ROWS = 4096  # rows copied between page drops: 2.5 MB of SmolLM2's file


class Q8_0Embedding(nn.Module):
    """``nn.Embedding``'s lookup over Q8_0 blocks: ``values`` int8 ``[vocab, hidden]``, ``scales``
    fp16 ``[vocab, hidden / 32]``; rows come out in ``dtype``."""

    values: torch.Tensor
    scales: torch.Tensor

    def __init__(self, vocab: int, hidden: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("values", torch.empty(vocab, hidden, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(vocab, hidden // _BLOCK, dtype=torch.float16))
        self.dtype, self.num_embeddings, self.embedding_dim = dtype, vocab, hidden

    def fill(self, start: int, blocks: np.ndarray) -> None:
        """Copy rows ``start:`` from ``blocks``, a GGUF tensor's raw bytes, one row of blocks per row."""
        rows = blocks.reshape(blocks.shape[0], -1, _BLOCK + 2)
        end = start + rows.shape[0]
        scales = np.ascontiguousarray(rows[..., :2]).view(np.float16)[..., 0]
        values = np.ascontiguousarray(rows[..., 2:]).view(np.int8).reshape(rows.shape[0], -1)
        self.scales[start:end] = torch.from_numpy(scales)
        self.values[start:end] = torch.from_numpy(values)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        values = self.values[ids].view(*ids.shape, -1, _BLOCK).float()
        rows = values * self.scales[ids].float().unsqueeze(-1)
        return rows.view(*ids.shape, self.embedding_dim).to(self.dtype)


def keep_embedding_quantized(model: nn.Module, path: Path, dtype: torch.dtype) -> bool:
    """Give ``model`` (a :class:`~plinth.engine.model.CausalLM` loaded from the GGUF file ``path``) a
    :class:`Q8_0Embedding` in place of its dense table, when the file stores the table as Q8_0 and the
    LM head no longer shares the dense weight (it was packed or quantized). Returns whether it did.

    The dense table is dropped before the blocks are copied, and the file's pages after each chunk, so
    this step does not raise the load's peak RSS."""
    embed, head = getattr(model, "embed_tokens", None), getattr(model, "lm_head", None)
    if not isinstance(embed, nn.Embedding) or embed.weight.device.type != "cpu":
        return False
    if head is not None and getattr(head, "weight", None) is embed.weight:
        return False  # a tied head still multiplies by the dense table
    from plinth.engine.gguf_checkpoint import open_gguf  # the gguf library only for GGUF files
    from plinth.engine.gguf_weights import drop_pages

    gguf = open_gguf(path)
    tensor = next((t for t in gguf.reader.tensors if t.name == _TENSOR), None)
    if tensor is None or tensor.tensor_type.name != "Q8_0":
        return False
    hidden, vocab = (int(n) for n in tensor.shape)  # ggml order
    if (vocab, hidden) != tuple(embed.weight.shape):
        return False
    embed.weight = None  # type: ignore[assignment]  # freed here, before its replacement is filled
    quantized = Q8_0Embedding(vocab, hidden, dtype)
    raw, row_bytes = tensor.data, tensor.data.shape[1]
    for start in range(0, vocab, _CHUNK_ROWS):
        chunk = raw[start : start + _CHUNK_ROWS]
        quantized.fill(start, chunk)
        drop_pages(gguf, tensor.data_offset + (start + chunk.shape[0]) * row_bytes)
    model.embed_tokens = quantized
    return True
