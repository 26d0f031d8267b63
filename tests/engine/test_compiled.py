"""``compile=True``: the decoder stack under ``torch.compile`` decodes what the eager engine decodes, with
prepacked bf16 weights and unmerged LoRA, and is compiled twice (any token count, and one token) however
the batch and the resident adapters change."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from lora_fixtures import greedy_tokens_and_logprobs, make_peft_adapter
from torch._dynamo.utils import counters

from plinth.engine import EngineConfig, LLMEngine
from plinth.engine.prepack import can_prepack

PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]
BF16_LOGPROB_ATOL = 2e-2  # fused kernels round bf16 intermediates differently from eager ones


@pytest.mark.slow  # Inductor builds two C++ graphs (about 30 s on 2 cores)
@pytest.mark.skipif(not can_prepack(torch.device("cpu"), torch.bfloat16), reason="no native bf16 oneDNN")
def test_compiled_engine_decodes_as_the_eager_one_without_recompiling(tiny_llama, tmp_path) -> None:
    adapter = make_peft_adapter(tiny_llama, tmp_path / "qv", targets=("q_proj", "v_proj", "down_proj"))
    config = EngineConfig(model=str(tiny_llama), dtype="bfloat16", device="cpu", enable_lora=True)
    eager = LLMEngine(config)
    torch._dynamo.reset()
    counters.clear()
    compiled = LLMEngine(dataclasses.replace(config, compile=True))

    runs = [(PROMPTS, None), (PROMPTS, "qv"), (PROMPTS[:1], "qv"), (PROMPTS[1:], None)]
    for index, (prompts, name) in enumerate(runs):
        if index == 1:  # an adapter arriving after compilation changes slot buffers, not the graph
            for engine in (eager, compiled):
                engine.add_lora("qv", adapter)
        got = greedy_tokens_and_logprobs(compiled, prompts, 6, name)
        want = greedy_tokens_and_logprobs(eager, prompts, 6, name)
        for (tokens, logprobs), (want_tokens, want_logprobs) in zip(got, want, strict=True):
            assert tokens == want_tokens
            torch.testing.assert_close(logprobs, want_logprobs, atol=BF16_LOGPROB_ATOL, rtol=0)
    assert counters["stats"]["unique_graphs"] == 2  # prefills of any length, and one-token steps
