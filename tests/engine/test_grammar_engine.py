"""Constrained decoding in the engine: the batched mask, termination, and mixed batches.

The sampler tests use a hand-written matcher (a fixed allowed set), so the expected ids are computed
here, not by the code under test. The engine tests use real llguidance grammars on the tiny random
checkpoint; the mixed-batch test puts constrained, unconstrained and LoRA requests in the same steps
and checks the unconstrained ones are token-identical to a run without their constrained neighbours.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from lora_fixtures import make_peft_adapter
from transformers import AutoTokenizer

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.guided import allocate_bitmask, mask_grammar, unpack_bitmask
from plinth.engine.sampler import Sampler, SamplingState
from plinth.llm import GrammarCompiler, GrammarSpec

EOS = 3


class SetMatcher:
    """Allows ``allowed`` ids; terminates after ``length`` tokens; rejects ids outside the set."""

    def __init__(self, allowed: set[int], length: int = 99) -> None:
        self.allowed, self.length, self.accepted = allowed, length, []

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        bitmask[row] = 0
        for t in self.allowed:
            word = bitmask[row, t // 32].item() | (1 << (t % 32))
            bitmask[row, t // 32] = word - (1 << 32) if word >= 1 << 31 else word  # as int32

    def accept_token(self, token_id: int) -> bool:
        self.accepted.append(token_id)
        return token_id in self.allowed

    def is_terminated(self) -> bool:
        return len(self.accepted) >= self.length


class SetGrammar:
    def __init__(self, allowed: set[int], length: int = 99) -> None:
        self.allowed, self.length = allowed, length

    def new_matcher(self) -> SetMatcher:
        return SetMatcher(self.allowed, self.length)


def state(grammar: SetGrammar | None = None, **kw: object) -> SamplingState:
    return SamplingState.create(SamplingParams(grammar=grammar, **kw), [0], (EOS,))  # type: ignore[arg-type]


def test_unpack_bitmask_reads_little_endian_bits_across_words() -> None:
    bitmask = torch.zeros(2, 2, dtype=torch.int32)
    bitmask[0, 0], bitmask[0, 1], bitmask[1, 1] = 1 << 3, -(2**31), 1  # ids 3 and 63; id 32
    allowed = unpack_bitmask(bitmask, 40)
    assert allowed[0].nonzero().flatten().tolist() == [3]  # id 63 is beyond the vocabulary
    assert allowed[1].nonzero().flatten().tolist() == [32]
    assert unpack_bitmask(allocate_bitmask(1, 40), 40).all()


def test_mask_touches_only_constrained_rows() -> None:
    logits = torch.randn(3, 70, generator=torch.Generator().manual_seed(0))
    states = [state(), state(SetGrammar({5, 33, 64})), state()]
    masked = mask_grammar(logits, states)
    assert torch.equal(masked[0], logits[0]) and torch.equal(masked[2], logits[2])
    assert torch.isfinite(masked[1]).nonzero().flatten().tolist() == [5, 33, 64]
    assert torch.equal(masked[1, [5, 33, 64]], logits[1, [5, 33, 64]])
    assert mask_grammar(logits, [state(), state()]) is logits  # no constrained row: no copy


def test_sampler_picks_only_allowed_tokens_greedy_and_sampled() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    allowed = {7, 11, 40}
    batch = [state(SetGrammar(allowed), temperature=0.0), state(temperature=0.0)]
    batch += [state(SetGrammar(allowed), seed=s) for s in range(2)]
    ids, _ = Sampler()(logits, batch)
    assert ids[0] == max(allowed, key=lambda t: logits[0, t].item())
    assert ids[1] == logits[1].argmax().item()  # the unconstrained neighbour is plain argmax
    assert ids[2] in allowed and ids[3] in allowed


def test_logprobs_are_over_the_allowed_tokens() -> None:
    logits = torch.randn(1, 30, generator=torch.Generator().manual_seed(2))
    ids, logprobs = Sampler()(logits, [state(SetGrammar({1, 2}), temperature=0.0, logprobs=5)])
    entry = logprobs[0]
    assert entry is not None and ids[0] in (1, 2)
    finite = {t: v for t, v in entry.top.items() if v > float("-inf")}
    assert set(finite) == {1, 2}  # forbidden tokens have no probability
    reference = torch.log_softmax(logits[0, [1, 2]], dim=-1)  # renormalised over the allowed two
    assert [finite[1], finite[2]] == pytest.approx(reference.tolist(), abs=1e-6)


@pytest.fixture(scope="module")
def tiny(tiny_llama, tmp_path_factory):
    adapter = make_peft_adapter(tiny_llama, tmp_path_factory.mktemp("lora") / "a", r=4)
    config = EngineConfig(model=str(tiny_llama), device="cpu", dtype="float32", enable_lora=True)
    config.kv_cache_memory_gb = 0.1
    engine = LLMEngine(config)
    engine.add_lora("a", adapter)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    mc = engine.model_config
    return engine, tokenizer, GrammarCompiler(tokenizer, mc.vocab_size, mc.eos_token_ids)


def _drain(engine: LLMEngine, rids: list[str]) -> tuple[dict[str, list[int]], dict[str, str], list[int]]:
    tokens: dict[str, list[int]] = {r: [] for r in rids}
    reasons: dict[str, str] = {}
    batch_sizes = []
    while engine.has_unfinished():
        outputs = engine.step()
        batch_sizes.append(engine.stats().last_batch_size)
        for out in outputs:
            tokens[out.request_id] += out.new_token_ids
            if out.finished:
                reasons[out.request_id] = out.finish_reason or ""
    return tokens, reasons, batch_sizes


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "minimum": 0,
                   "maximum": 99}, "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3}},
    "required": ["name", "n", "tags"],
    "additionalProperties": False,
}  # fmt: skip


def test_mixed_batch_with_lora_leaves_unconstrained_outputs_unchanged(tiny) -> None:
    engine, tokenizer, compiler = tiny
    greedy = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    prompts = [
        torch.randint(3, 1800, (12,), generator=torch.Generator().manual_seed(i)).tolist() for i in range(4)
    ]
    free = [(prompts[0], None), (prompts[1], "a")]
    alone = [engine.add_request(p, greedy, adapter=a) for p, a in free]
    expected, _, _ = _drain(engine, alone)
    json_params = SamplingParams(
        max_tokens=200, temperature=0.0, grammar=compiler.compile(GrammarSpec.json_schema(SCHEMA))
    )
    regex_params = SamplingParams(
        max_tokens=200, seed=3, grammar=compiler.compile(GrammarSpec.regex(r"[a-z]{2,5}-\d{3}"))
    )
    mixed = [engine.add_request(p, greedy, adapter=a) for p, a in free]
    constrained = [
        engine.add_request(prompts[2], json_params, adapter="a"),
        engine.add_request(prompts[3], regex_params),
    ]
    tokens, reasons, batch_sizes = _drain(engine, mixed + constrained)
    assert batch_sizes[:2] == [4, 4]  # all four, two adapters, masked and not, in the same steps
    assert [tokens[r] for r in mixed] == [expected[r] for r in alone]
    json_text = tokenizer.decode(tokens[constrained[0]], skip_special_tokens=True)
    value = json.loads(json_text)
    assert set(value) == {"name", "n", "tags"} and 0 <= value["n"] <= 99 and len(value["name"]) <= 8
    assert re.fullmatch(
        r"[a-z]{2,5}-\d{3}", tokenizer.decode(tokens[constrained[1]], skip_special_tokens=True)
    )
    assert reasons[constrained[0]] == reasons[constrained[1]] == "stop"


def test_a_constrained_request_stops_when_its_grammar_ends_and_reports_length_when_cut(tiny) -> None:
    engine, tokenizer, compiler = tiny
    grammar = compiler.compile(GrammarSpec.choice(["hello world, again"]))
    prompt = [5, 6, 7]
    done = engine.add_request(prompt, SamplingParams(max_tokens=50, ignore_eos=True, grammar=grammar))
    cut = engine.add_request(prompt, SamplingParams(max_tokens=2, grammar=grammar))
    tokens, reasons, _ = _drain(engine, [done, cut])
    assert tokenizer.decode(tokens[done]) == "hello world, again" and reasons[done] == "stop"
    assert len(tokens[cut]) == 2 and reasons[cut] == "length"


def test_a_token_the_grammar_rejects_fails_the_request(tiny) -> None:
    """A matcher that rejects what its own mask allowed is a bug: the request ends with "error"."""
    engine, _, _ = tiny

    class Lying(SetGrammar):
        def new_matcher(self) -> SetMatcher:
            matcher = SetMatcher(self.allowed)
            matcher.accept_token = lambda token_id: False  # type: ignore[method-assign]
            return matcher

    rid = engine.add_request([5, 6, 7], SamplingParams(max_tokens=5, grammar=Lying({9, 10})))
    tokens, reasons, _ = _drain(engine, [rid])
    assert reasons[rid] == "error" and len(tokens[rid]) == 1 and engine.stats().kv_blocks_used == 0
