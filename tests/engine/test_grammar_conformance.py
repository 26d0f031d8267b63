"""Conformance: every constrained output of a random-weight model parses and validates.

200 random JSON schemas and 60 random regexes (tests/grammar_cases.py: nested objects, arrays, enums,
bounded numbers, required/optional, dates, patterns) run as one batch through the engine on the tiny
random checkpoint, sampled (seeded) or greedy. The model knows nothing of JSON, so every valid output
is the grammar's doing; each is checked with ``jsonschema`` / Python's ``re``, never with llguidance.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import torch
from grammar_cases import regexes, schemas
from transformers import AutoTokenizer

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.llm import GrammarCompiler, GrammarSpec

pytestmark = pytest.mark.slow

MAX_TOKENS = 1500  # far above the longest output any case allows; hitting it would be a failure


@pytest.fixture(scope="module")
def setup(tiny_llama):
    config = EngineConfig(model=str(tiny_llama), device="cpu", dtype="float32", max_num_seqs=512)
    config.kv_cache_memory_gb = 0.5
    engine = LLMEngine(config)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    mc = engine.model_config
    return engine, tokenizer, GrammarCompiler(tokenizer, mc.vocab_size, mc.eos_token_ids)


def run(
    engine: LLMEngine, specs: list[GrammarSpec], compiler: GrammarCompiler
) -> list[tuple[list[int], str]]:
    """Generate once per spec, all in one continuous batch; (token ids, finish_reason) per spec."""
    ids = []
    for i, spec in enumerate(specs):
        prompt = torch.randint(3, 1800, (8,), generator=torch.Generator().manual_seed(i)).tolist()
        temperature = 0.0 if i % 4 == 0 else 1.0  # greedy on random weights loops; the grammar ends it
        params = SamplingParams(
            max_tokens=MAX_TOKENS, temperature=temperature, seed=i, grammar=compiler.compile(spec)
        )
        ids.append(engine.add_request(prompt, params))
    produced: dict[str, list[int]] = {rid: [] for rid in ids}
    reasons: dict[str, str] = {}
    while engine.has_unfinished():
        for out in engine.step():
            produced[out.request_id] += out.new_token_ids
            if out.finished:
                reasons[out.request_id] = out.finish_reason or ""
    return [(produced[rid], reasons[rid]) for rid in ids]


def test_every_output_of_200_random_schemas_validates(setup):
    engine, tokenizer, compiler = setup
    cases = schemas(200, seed=14)
    results = run(engine, [GrammarSpec.json_schema(s) for s in cases], compiler)
    failures, texts = [], []
    for schema, (ids, reason) in zip(cases, results, strict=True):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        texts.append(text)
        try:
            assert reason == "stop", f"finish_reason {reason} after {len(ids)} tokens"
            checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
            jsonschema.Draft202012Validator(schema, format_checker=checker).validate(json.loads(text))
        except (AssertionError, ValueError, jsonschema.ValidationError) as exc:
            failures.append((schema, text, str(exc)[:200]))
    print(f"\n{len(cases) - len(failures)}/{len(cases)} schema outputs valid")
    assert not failures, [f[2] for f in failures]
    assert len(set(texts)) > 180  # real, varied outputs, not one trivial object
    assert sum(len(json.loads(t)) > 0 for t in texts) > 150  # most objects have properties


def test_every_output_of_60_random_regexes_matches(setup):
    engine, tokenizer, compiler = setup
    patterns = regexes(60, seed=14)
    results = run(engine, [GrammarSpec.regex(p) for p in patterns], compiler)
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in results]
    bad = [(p, t, r) for p, t, (_, r) in zip(patterns, texts, results, strict=True)
           if r != "stop" or re.fullmatch(p, t) is None]  # fmt: skip
    print(f"\n{len(patterns) - len(bad)}/{len(patterns)} regex outputs match")
    assert not bad, bad[:3]
    assert len(set(texts)) > 50


def test_choices_and_an_ebnf_grammar(setup):
    engine, tokenizer, compiler = setup
    options = ["alpha", "beta", "gamma delta"]
    gbnf = 'root ::= "(" num ("+" num)? ")"\nnum ::= [0-9] | [1-9] [0-9]'
    specs = [GrammarSpec.choice(options)] * 10 + [GrammarSpec.ebnf(gbnf)] * 10
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in run(engine, specs, compiler)]
    assert all(t in options for t in texts[:10]), texts[:10]
    assert all(re.fullmatch(r"\((\d|[1-9]\d)(\+(\d|[1-9]\d))?\)", t) for t in texts[10:]), texts[10:]
