"""Stream a GGUF checkpoint's tensors as torch tensors under Hugging Face names.

Contract: ``iter_gguf_weights(gguf, dtype)`` yields ``(hf_name, tensor)`` one tensor at a time,
dequantized straight to ``dtype`` (:func:`plinth.engine.gguf_dequant.dequantize`), each a fresh
tensor nothing else holds, so ``CausalLM.load_weights(..., adopt=True)`` takes it as the parameter:
peak memory is the model plus one dequantized chunk, and for a tensor fused with others (q/k/v,
gate/up), one tensor of the model's dtype. llama.cpp's converter permutes the rows
of Q and K for the ``llama`` architecture (Llama and Mistral) to suit its RoPE kernel; that is undone
here. qwen2/qwen3 files are written unpermuted (the converter's Qwen classes do not permute;
transformers' GGUF loader agrees).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import torch

from plinth.engine.errors import CheckpointError
from plinth.engine.gguf_checkpoint import GGUFFile, gguf_hf_config
from plinth.engine.gguf_dequant import dequantize
from plinth.engine.gguf_names import hf_tensor_name

__all__ = ["drop_pages", "gguf_weight_names", "iter_gguf_weights", "unpermute_rows"]


def iter_gguf_weights(
    gguf: GGUFFile, dtype: torch.dtype = torch.float32
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield every tensor of ``gguf`` as ``(hf_name, dtype tensor)`` in Hugging Face layout."""
    config = gguf_hf_config(gguf)
    permuted = gguf.architecture == "llama"
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    for tensor in gguf.reader.tensors:
        name = hf_tensor_name(tensor.name)
        if name is None:  # open_gguf refuses such files; guard against a reader handed in unchecked
            raise CheckpointError(f"{gguf.path}: unexpected tensor {tensor.name!r}")
        weight = dequantize(tensor, dtype)
        drop_pages(gguf, tensor.data_offset + tensor.n_bytes)
        kind = tensor.name.split(".")[2] if tensor.name.startswith("blk.") else ""
        if permuted and kind in heads:
            weight = unpermute_rows(weight, heads[kind])
        yield name, weight


def gguf_weight_names(gguf: GGUFFile) -> list[str | None]:
    """The Hugging Face names :func:`iter_gguf_weights` yields, in its order, read from the header
    alone (None for a tensor it would refuse)."""
    return [hf_tensor_name(tensor.name) for tensor in gguf.reader.tensors]


def drop_pages(gguf: GGUFFile, end: int) -> None:
    """Take the mapped file's pages before byte ``end`` out of the resident set once they are read (they
    count in peak RSS until the reader is closed: ~90 MB for SmolLM2's Q4_1 file); read again, they come
    back from the page cache.

    Every page before ``end``, not the last tensor's alone: a read fault also maps the pages around it
    (the kernel's fault-around, 64 KB), and those of a tensor dropped before stayed resident, ~19 MB of
    SmolLM2's file by the end of the load, which was then the server's peak."""
    base = gguf.reader.data.base
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.base
    if base is not None and end > 0:
        base.madvise(mmap.MADV_DONTNEED, 0, end)


def unpermute_rows(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K permutation: within each head, rows were reordered from HF's
    ``[first half | second half]`` rotary layout to interleaved pairs; put them back."""
    rows = weight.shape[0]
    pairs = weight.reshape(num_heads, rows // num_heads // 2, 2, *weight.shape[1:])
    return pairs.transpose(1, 2).reshape(weight.shape)
