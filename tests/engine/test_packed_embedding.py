"""A tied model whose LM head is packed for Plinth's bf16 kernel looks its token embeddings up in the
packed head: the rows equal the table's bit for bit (blocks in groups of four and the blocks after
them), the engine decodes what one holding the table decodes, and the table is gone."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from lora_fixtures import greedy_tokens_and_logprobs
from torch import nn

import plinth.engine.model_runner as model_runner
from plinth.engine import EngineConfig, LLMEngine, native
from plinth.engine.packed_embedding import PackedHeadEmbedding, embed_from_packed_head
from plinth.engine.prepack import pack_native

pytestmark = pytest.mark.skipif(
    not native.has("bf16_linear"), reason="built for CPUs with AVX512-BF16 or AVX2"
)


@pytest.mark.parametrize("vocab", [64 * 16, 65 * 16, 3 * 16])  # 16 blocks; 16 and a lone one; no group
def test_rows_are_the_tables_bit_for_bit(vocab) -> None:
    table = torch.randn(vocab, 40).bfloat16()
    embed = PackedHeadEmbedding(pack_native(table))
    assert torch.equal(embed(torch.arange(vocab)), table)
    ids = torch.randint(0, vocab, (3, 7))
    assert torch.equal(embed(ids), table[ids])


def test_a_tied_packed_model_drops_its_table_and_decodes_the_same(
    tiny_checkpoint_factory, tmp_path, monkeypatch
) -> None:
    """The tiny Qwen2 (tied) with a 1,824-token vocabulary, in blocks of 16, so its head is packed."""
    path = tmp_path / "tied"
    shutil.copytree(tiny_checkpoint_factory("qwen2"), path, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "vocab_size": 1824}))
    settings = EngineConfig(model=str(path), dtype="bfloat16", load_format="dummy")
    packed = LLMEngine(settings)
    assert isinstance(packed.runner.model.embed_tokens, PackedHeadEmbedding)
    monkeypatch.setattr(model_runner, "embed_from_packed_head", lambda model: False)
    table = LLMEngine(settings)
    assert isinstance(table.runner.model.embed_tokens, nn.Embedding)
    prompts = [[5, 17, 300, 42, 1823], [1000, 3, 3, 250]]
    assert greedy_tokens_and_logprobs(packed, prompts, 6, None) == greedy_tokens_and_logprobs(
        table, prompts, 6, None
    )


class _Tied(nn.Module):
    def __init__(self, vocab: int, hidden: int, tied: bool = True) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(tie_word_embeddings=tied)
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.embed_tokens.weight


def test_a_tied_head_is_packed_over_its_tables_memory_and_the_rows_read_from_it() -> None:
    model = _Tied(65 * 16, 40).bfloat16()
    table, pointer = model.embed_tokens.weight.detach().clone(), model.embed_tokens.weight.data_ptr()
    assert embed_from_packed_head(model)
    assert model.lm_head.qweight.packed.data_ptr() == pointer  # one copy of the matrix, not two
    ids = torch.randint(0, 65 * 16, (4, 9))
    assert torch.equal(model.embed_tokens(ids), table[ids])
    x = torch.randn(3, 40).bfloat16()
    torch.testing.assert_close(model.lm_head(x), F.linear(x, table))


def test_an_untied_or_unpackable_head_is_left_as_it_is() -> None:
    for model in (_Tied(64, 40, tied=False).bfloat16(), _Tied(60, 40).bfloat16(), _Tied(64, 40).float()):
        before = dict(model.named_children())
        assert not embed_from_packed_head(model)
        assert dict(model.named_children()) == before
