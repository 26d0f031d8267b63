"""GrammarSpec and the compiler, without an engine: canonical content, the cache, what the compiled
matcher accepts (fed token ids of hand-written strings), and the spec on the wire to OpenAI-compatible
servers (read back by Plinth's own request schema, and sent by the openai_compat provider)."""

from __future__ import annotations

import json

import httpx
import pytest
from transformers import AutoTokenizer

from plinth.llm import ChatOptions, GrammarCompiler, GrammarError, GrammarSpec, OpenAICompatModel
from plinth.server.schemas import GuidedFields

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.fixture(scope="module")
def tok_and_compiler(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    return tokenizer, GrammarCompiler(tokenizer, 1820, [tokenizer.eos_token_id], cache_size=2)


def accepts(tokenizer, grammar, text: str) -> bool:
    """Whether a fresh matcher takes every token of ``text`` then EOS, and is then complete."""
    matcher = grammar.new_matcher()
    ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    return all(matcher.accept_token(t) for t in ids) and matcher.is_terminated()


def test_equal_content_is_one_cache_entry_and_the_cache_is_bounded(tok_and_compiler):
    _, compiler = tok_and_compiler
    first = compiler.compile(GrammarSpec.json_schema({"required": ["a"], "type": "object"}))
    assert compiler.compile(GrammarSpec.json_schema('{"type": "object", "required": ["a"]}')) is first
    compiler.compile(GrammarSpec.regex("a+"))
    compiler.compile(GrammarSpec.regex("b+"))  # evicts the least recently used: the schema
    assert compiler.compile(GrammarSpec.json_schema({"required": ["a"], "type": "object"})) is not first


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        (GrammarSpec.json_schema(SCHEMA), '{"a": 12}', '{"a": "x"}'),
        (GrammarSpec.json_object(), '{"x": [1, true, null]}', "[1]"),
        (GrammarSpec.regex(r"\d{3}-[a-z]+"), "123-abc", "12-abc"),
        (GrammarSpec.choice(["red", "green"]), "green", "blue"),
        (GrammarSpec.ebnf('root ::= "(" [0-9]+ ")"'), "(42)", "(4a)"),
    ],
)
def test_the_compiled_matcher_accepts_exactly_the_language(tok_and_compiler, spec, good, bad):
    tokenizer, compiler = tok_and_compiler
    grammar = compiler.compile(spec)
    assert accepts(tokenizer, grammar, good) and not accepts(tokenizer, grammar, bad)


def test_json_is_compact_with_fixed_separators(tok_and_compiler):
    """Free whitespace would let a model pad forever; json.dumps's separators are the only ones."""
    tokenizer, compiler = tok_and_compiler
    grammar = compiler.compile(GrammarSpec.json_schema({"type": "array", "items": {"type": "integer"}}))
    assert accepts(tokenizer, grammar, "[1, 2]")
    assert not accepts(tokenizer, grammar, "[1,2]") and not accepts(tokenizer, grammar, "[ 1, 2]")


def test_a_format_llguidance_does_not_know_is_refused_by_name(tok_and_compiler):
    _, compiler = tok_and_compiler
    with pytest.raises(GrammarError, match="ipv9") as err:
        compiler.compile(GrammarSpec.json_schema({"type": "string", "format": "ipv9"}, param="guided_json"))
    assert err.value.param == "guided_json"


@pytest.mark.parametrize(
    "spec",
    [
        GrammarSpec.json_schema(SCHEMA),
        GrammarSpec.regex("[a-z]+"),
        GrammarSpec.choice(["a", "b"]),
        GrammarSpec.ebnf('root ::= "x"'),
    ],
)
def test_request_fields_read_back_as_the_same_spec(spec):
    assert GuidedFields(**spec.request_fields()).grammar_spec() == spec


async def test_openai_compat_provider_sends_the_constraint():
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        message = {"role": "assistant", "content": '{"a": 1}'}
        return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "stop"}]})

    model = OpenAICompatModel("http://llm.test/v1", "m", transport=httpx.MockTransport(answer))
    options = ChatOptions(response_format=GrammarSpec.json_schema(SCHEMA))
    assert (await model.chat([{"role": "user", "content": "hi"}], options)).text == '{"a": 1}'
    sent = json.loads(requests[0].content)["response_format"]
    expected = {"name": "response", "schema": SCHEMA, "strict": True}
    assert sent == {"type": "json_schema", "json_schema": expected}
