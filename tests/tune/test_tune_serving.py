"""A trained adapter is served by Plinth's engine exactly as PEFT runs it.

The adapter is trained with a high learning rate so it visibly changes the model (an adapter that
barely moved from PEFT's zero-initialised B would match the base and prove nothing); then the engine's
greedy tokens and log-probabilities must equal PEFT's within 1e-4 (float32 on both sides).
"""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from tune_fixtures import chat_rows, write_jsonl

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.lora import TARGETS, load_adapter
from plinth.engine.model_config import ModelConfig
from plinth.tune import Hyperparameters, TuneJob, train

STEPS = 6
PROMPT = [1, 45, 300, 12, 7, 88, 2, 1, 33]


@pytest.fixture(scope="module")
def adapter(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("tuned")
    data = write_jsonl(root / "train.jsonl", chat_rows(8))
    hp = Hyperparameters(n_epochs=2, batch_size=4, r=4, alpha=8, learning_rate_multiplier=50, dropout=0.0)
    return train(TuneJob(model=str(tiny_llama), training_file=data, out=root / "lora", hyperparameters=hp))


def greedy(model, prompt: list[int]) -> tuple[list[int], list[float]]:
    ids, logprobs = list(prompt), []
    with torch.inference_mode():
        for _ in range(STEPS):
            scores = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            ids.append(int(scores.argmax()))
            logprobs.append(float(scores.max()))
    return ids[len(prompt) :], logprobs


def test_the_engine_loads_the_trained_adapter(tiny_llama, adapter) -> None:
    loaded = load_adapter(adapter.adapter_path, "tuned", ModelConfig.from_pretrained(tiny_llama), max_rank=16)
    assert loaded.rank == 4 and loaded.target_modules == frozenset(TARGETS)
    assert loaded.weights[(0, "q_proj")].scaling == 2.0
    assert loaded.base_model == str(tiny_llama)


def test_the_engine_serves_it_as_peft_runs_it(tiny_llama, adapter) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    base_logits = base(torch.tensor([PROMPT])).logits
    peft = PeftModel.from_pretrained(base, adapter.adapter_path).eval()
    tuned_logits = peft(torch.tensor([PROMPT])).logits
    assert (tuned_logits - base_logits).abs().max() > 0.05  # training really changed the model
    tokens, logprobs = greedy(peft, PROMPT)

    engine = LLMEngine(EngineConfig(model=str(tiny_llama), enable_lora=True, max_loras=2, max_lora_rank=16))
    engine.add_lora("tuned", adapter.adapter_path)
    params = SamplingParams(max_tokens=STEPS, temperature=0.0, ignore_eos=True, logprobs=0)
    engine.add_request(PROMPT, params, adapter="tuned")
    got_tokens, got_logprobs = [], []
    while engine.has_unfinished():
        for out in engine.step():
            got_tokens += out.new_token_ids
            got_logprobs += [lp.logprob for lp in out.new_logprobs or []]
    assert got_tokens == tokens
    torch.testing.assert_close(torch.tensor(got_logprobs), torch.tensor(logprobs), atol=1e-4, rtol=0)
