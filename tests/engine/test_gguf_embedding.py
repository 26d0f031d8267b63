"""A GGUF's Q8_0 embedding table kept quantized: rows equal the load's dequantization bit for bit, and an
engine that keeps it decodes exactly what one holding the dense table decodes; a table the LM head still
multiplies by, or one stored in another type, stays dense."""

from __future__ import annotations

import pytest
import torch
from gguf_fixtures import write_gguf
from lora_fixtures import greedy_tokens_and_logprobs
from torch import nn

import plinth.engine.model_runner as model_runner
from plinth.engine import EngineConfig, LLMEngine
from plinth.engine.gguf_checkpoint import open_gguf
from plinth.engine.gguf_dequant import dequantize
from plinth.engine.gguf_embedding import Q8_0Embedding
from plinth.engine.prepack import can_prepack

PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]
BF16_PACKED = can_prepack(torch.device("cpu"), torch.bfloat16)


def dense_table(path, dtype: torch.dtype) -> torch.Tensor:
    [tensor] = [t for t in open_gguf(path).reader.tensors if t.name == "token_embd.weight"]
    return dequantize(tensor, dtype)


def engine(path, monkeypatch: pytest.MonkeyPatch | None = None, **kwargs) -> LLMEngine:
    if monkeypatch is not None:  # the same engine with the dense table, for comparison
        monkeypatch.setattr(model_runner, "keep_embedding_quantized", lambda model, path, dtype: False)
    return LLMEngine(EngineConfig(model=str(path), device="cpu", **kwargs))


CONFIGS = [
    pytest.param("llama", {"dtype": "float32"}, id="llama-float32-untied-head"),
    pytest.param("llama", {"dtype": "bfloat16", "quantization": "int4"}, id="llama-int4"),
    pytest.param(
        "qwen2",
        {"dtype": "bfloat16"},
        id="qwen2-bf16-packed-tied-head",
        marks=pytest.mark.skipif(not BF16_PACKED, reason="this CPU's oneDNN has no native bf16"),
    ),
]


@pytest.mark.parametrize(("arch", "kwargs"), CONFIGS)
def test_quantized_table_decodes_as_the_dense_one(
    arch, kwargs, tiny_checkpoint_factory, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(tiny_checkpoint_factory(arch), tmp_path / f"{arch}.gguf", "Q8_0")
    kept = engine(path, **kwargs)
    table = kept.runner.model.embed_tokens
    assert isinstance(table, Q8_0Embedding)
    dtype = kept.runner.dtype
    rows = table(torch.arange(table.num_embeddings))
    assert rows.dtype == dtype
    assert torch.equal(rows, dense_table(path, dtype))  # bit for bit (no NaN in a table)

    dense = engine(path, monkeypatch, **kwargs)
    assert isinstance(dense.runner.model.embed_tokens, nn.Embedding)
    assert greedy_tokens_and_logprobs(kept, PROMPTS, 6, None) == greedy_tokens_and_logprobs(
        dense, PROMPTS, 6, None
    )


def test_a_head_that_multiplies_by_the_table_keeps_it_dense(tiny_checkpoint_factory, tmp_path) -> None:
    path = write_gguf(tiny_checkpoint_factory("qwen2"), tmp_path / "qwen2.gguf", "Q8_0")
    model = engine(path, dtype="float32").runner.model  # float32 is not prepacked: the head is tied
    assert isinstance(model.embed_tokens, nn.Embedding)
    assert model.lm_head.weight is model.embed_tokens.weight


def test_a_table_stored_in_another_type_stays_dense(tiny_checkpoint_factory, tmp_path) -> None:
    path = write_gguf(tiny_checkpoint_factory("llama"), tmp_path / "llama.gguf", "Q4_0")
    assert isinstance(engine(path, dtype="float32").runner.model.embed_tokens, nn.Embedding)
