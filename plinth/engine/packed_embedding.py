"""Token embeddings looked up in the packed LM head of a model whose head and embedding are tied.

Why: a tied model's embedding table and LM head are one matrix. Packed for ``plinth::bf16_linear`` as
a copy, the head would leave the table a second full copy held only for lookups: 57 MB of bf16 for
SmolLM2-135M's 49,152 x 576 table (30 MB as the GGUF's Q8_0 blocks, which
:mod:`plinth.engine.gguf_embedding` kept). A lookup reads one row per token, so it can read it where
the packed head holds it: the head is packed over the table's own memory and the table's layout is
gone (issue 18: peak RSS against llama.cpp's; packing a copy first and dropping the table after still
held both for a moment, and that moment was the start-up peak).

Exact: the packing moves bf16 values without changing them, so the rows equal the table's bit for bit
(``tests/engine/test_packed_embedding.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from plinth.engine.prepack import NativeBf16Weight, native_fits
from plinth.engine.quantization import NATIVE_BLOCK, QuantizedLinear, interleave, interleaved_blocks

__all__ = ["PackedHeadEmbedding", "embed_from_packed_head"]


class PackedHeadEmbedding(nn.Module):
    """``nn.Embedding``'s lookup over the rows of a ``[vocab, hidden]`` weight packed by
    :func:`~plinth.engine.prepack.pack_native`: ``[vocab / 16, hidden / 2, 32]``, blocks of 16 rows, per
    block and pair of columns the rows' two values side by side, the blocks' pairs in groups
    (:func:`~plinth.engine.quantization.interleave`)."""

    groups: torch.Tensor
    rest: torch.Tensor

    def __init__(self, packed: torch.Tensor) -> None:
        super().__init__()
        blocks, pairs, _ = packed.shape
        self.num_embeddings, self.embedding_dim = blocks * NATIVE_BLOCK, pairs * 2
        groups, rest = interleaved_blocks(packed)  # views of the head's storage: no copy
        self.group = interleave()
        self.grouped = self.group * groups.shape[0]
        # [group, block in group, row, pair, value] and [block, row, pair, value]
        self.register_buffer(
            "groups", groups.unflatten(-1, (NATIVE_BLOCK, 2)).transpose(2, 3), persistent=False
        )
        self.register_buffer("rest", rest.unflatten(-1, (NATIVE_BLOCK, 2)).transpose(1, 2), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        block, row = ids // NATIVE_BLOCK, ids % NATIVE_BLOCK
        group = self.group
        if self.grouped == self.num_embeddings // NATIVE_BLOCK:  # every block in a whole group
            rows = self.groups[block // group, block % group, row]
        else:
            rows = ids.new_empty((*ids.shape, self.embedding_dim // 2, 2), dtype=self.groups.dtype)
            grouped = block < self.grouped
            b, r = block[grouped], row[grouped]
            rows[grouped] = self.groups[b // group, b % group, r]
            rows[~grouped] = self.rest[block[~grouped] - self.grouped, row[~grouped]]
        return rows.reshape(*ids.shape, self.embedding_dim)


def embed_from_packed_head(model: nn.Module) -> bool:
    """Pack a tied LM head of ``model`` (a :class:`~plinth.engine.model.CausalLM`) for Plinth's bf16
    kernel over the table's own memory, and give the model a :class:`PackedHeadEmbedding` over it in
    place of the table: one copy of the matrix at every moment. Run it before
    :func:`~plinth.engine.prepack.prepack_linears`. Returns whether it did (else nothing changed)."""
    embed, head = getattr(model, "embed_tokens", None), getattr(model, "lm_head", None)
    cfg = getattr(model, "cfg", None)
    if not isinstance(embed, nn.Embedding) or not getattr(cfg, "tie_word_embeddings", False):
        return False
    if type(head) is not nn.Linear or head.weight is not embed.weight or head.bias is not None:
        return False
    if embed.weight.dtype != torch.bfloat16 or not native_fits(embed.weight):
        return False
    with torch.no_grad():
        model.lm_head = QuantizedLinear(head, NativeBf16Weight(embed.weight, in_place=True))
    model.embed_tokens = PackedHeadEmbedding(model.lm_head.qweight.packed)
    return True
