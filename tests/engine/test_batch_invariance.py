"""Batch-invariant mode: a request's logits are bitwise the same alone and inside any batch.

The model is the tiny random llama widened to SmolLM2-135M's matrix shapes (hidden 576, MLP 1536, 9
query and 3 KV heads; 2 layers, random weights in memory), because kernels choose their algorithm by
shape: at the tiny llama's width bf16 results happen not to depend on the row count. Every case here
differs with the mode off on the development CPU (AVX512-BF16: oneDNN's bf16 product of a row changes
past 32 rows, MKL's float32 one between 1 and 4 rows; see ``benchmarks/invariance_probe.py``): a prompt
prefilled beside others, prefilled in two chunks (what a prefix-cache hit does), a decode beside other
decodes and a prefill, and a request decoded alone or in a crowd through the scheduler.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs

from plinth.engine import EngineConfig, LLMEngine
from plinth.engine.attention import AttentionMetadata, SeqSpan

PROMPT_LEN = 60
SMOLLM2_SHAPES = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
                  "num_key_value_heads": 3, "num_hidden_layers": 2}  # fmt: skip


@pytest.fixture(scope="module")
def wide_llama(tiny_llama, tmp_path_factory):
    path = tmp_path_factory.mktemp("wide-llama")
    shutil.copytree(tiny_llama, path, dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **SMOLLM2_SHAPES}))
    return path


def _prompt(n: int, seed: int) -> list[int]:
    return torch.randint(3, 500, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


class Steps:
    """Runs hand-built steps on an engine's model; every request gets its own cache blocks."""

    def __init__(self, engine: LLMEngine) -> None:
        self.runner, self.next_block = engine.runner, 0

    def table(self, tokens: int) -> list[int]:
        n = -(-tokens // self.runner.block_size)
        self.next_block += n
        return list(range(self.next_block - n, self.next_block))

    @torch.inference_mode()
    def run(self, requests: list[tuple[list[int], SeqSpan]]) -> list[torch.Tensor]:
        """One step over (token ids, span) pairs; each request's logits for its new tokens."""
        ids = [t for tokens, s in requests for t in tokens[s.start : s.start + s.num_new]]
        pos = [p for _, s in requests for p in range(s.start, s.start + s.num_new)]
        runner = self.runner
        meta = AttentionMetadata.build(
            [s for _, s in requests], runner.block_size, runner.device, runner.config.batch_invariant
        )
        hidden = runner.model(torch.tensor(ids), torch.tensor(pos), runner.kv_caches, meta)
        logits = runner.model.compute_logits(hidden).float()
        return list(logits.split([s.num_new for _, s in requests]))

    def prefill(self, tokens: list[int], extra: int = 0) -> tuple[list[int], torch.Tensor]:
        table = self.table(len(tokens) + extra)
        return table, self.run([(tokens, SeqSpan(table, 0, len(tokens)))])[0]


def _engine(path, dtype: str) -> LLMEngine:
    config = EngineConfig(model=str(path), device="cpu", dtype=dtype, load_format="dummy",
                          kv_cache_blocks=128, batch_invariant=True)  # fmt: skip
    return LLMEngine(config)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_prompt_prefilled_beside_others_or_in_chunks_gets_the_same_logits(wide_llama, dtype):
    steps = Steps(_engine(wide_llama, dtype))
    short, others = _prompt(30, 0), [_prompt(20, 1), _prompt(33, 2)]
    _, alone = steps.prefill(short)
    beside = [(p, SeqSpan(steps.table(len(p)), 0, len(p))) for p in (others[0], short, others[1])]
    assert torch.equal(steps.run(beside)[1], alone)
    prompt = _prompt(PROMPT_LEN, 0)
    _, alone = steps.prefill(prompt)
    for split in (40, 50):  # the first chunk's K/V read back from the cache, as on a prefix hit
        table = steps.table(PROMPT_LEN)
        steps.run([(prompt, SeqSpan(table, 0, split))])
        tail = steps.run([(prompt, SeqSpan(table, split, PROMPT_LEN - split))])[0]
        assert torch.equal(tail, alone[split:]), split


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_decode_gets_the_same_logits_beside_other_decodes_and_a_prefill(wide_llama, dtype):
    steps = Steps(_engine(wide_llama, dtype))
    prompt = _prompt(PROMPT_LEN, 0)
    table, logits = steps.prefill(prompt, extra=1)
    tokens = [*prompt, int(logits[-1].argmax())]
    alone = steps.run([(tokens, SeqSpan(table, PROMPT_LEN, 1))])[0]
    batch = [(tokens, SeqSpan(table, PROMPT_LEN, 1))]
    for seed, length in ((3, 9), (4, 16), (5, 23)):
        other = _prompt(length, seed)
        other_table, _ = steps.prefill(other, extra=1)
        batch.append(([*other, 7], SeqSpan(other_table, length, 1)))
    batch.append((_prompt(30, 6), SeqSpan(steps.table(30), 0, 30)))  # a prefill in the same step
    assert torch.equal(steps.run(batch)[0], alone)
    assert torch.equal(steps.run(batch[:3])[0], alone)


def test_greedy_tokens_and_logprobs_alone_equal_those_in_a_busy_engine(wide_llama):
    """Through the scheduler: one request alone, then with 11 others of other lengths queued with it
    (mixed prefill and decode steps, shared cache blocks): the same tokens and bitwise the same logprobs."""
    prompt = _prompt(PROMPT_LEN, 0)
    alone = greedy_tokens_and_logprobs(_engine(wide_llama, "bfloat16"), [prompt], 12, None)[0]
    crowd = [_prompt(10 + 17 * i, 10 + i) for i in range(11)]
    busy = greedy_tokens_and_logprobs(
        _engine(wide_llama, "bfloat16"), [*crowd[:5], prompt, *crowd[5:]], 12, None
    )
    assert busy[5] == alone
