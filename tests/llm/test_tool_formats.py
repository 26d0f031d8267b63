"""Tool-call formats: which one a chat template teaches, the prompt each renders, the calls each parses,
and the grammar each builds -- checked by feeding tokens to a real llguidance matcher."""

from __future__ import annotations

import json

import pytest
import tool_templates

from plinth.llm import GrammarCompiler, ToolCall, ToolCallStream, ToolChoice, ToolSpec, detect_tool_format
from plinth.llm.tokenizer import load_tokenizer
from plinth.llm.tool_formats import HermesFormat, Llama3Format, MistralFormat, ToolFormat

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
)
ADD = ToolSpec(
    "add", "Add numbers", {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
)
TOOLS = [WEATHER, ADD]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [ToolCall("abcdefghi", "get_weather", '{"city": "Oslo"}')],
    },
    {"role": "tool", "tool_call_id": "abcdefghi", "name": "get_weather", "content": "-3 C, snow"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return load_tokenizer(tiny_llama)


def _with_template(tokenizer, template):
    tokenizer.chat_template = template
    return tokenizer


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (tool_templates.HERMES, HermesFormat),
        (tool_templates.LLAMA3, Llama3Format),
        (tool_templates.MISTRAL, MistralFormat),
        (tool_templates.CHATML_NO_TOOLS, ToolFormat),
        ("{{ raise_exception('no tools here') if tools else 'x' }}", ToolFormat),
    ],
)
def test_the_format_is_the_one_the_template_teaches(tokenizer, template, expected):
    assert type(detect_tool_format(_with_template(tokenizer, template))) is expected


@pytest.mark.parametrize(
    ("template", "fmt", "needles"),
    [
        (tool_templates.HERMES, HermesFormat(), ['"name": "get_weather"', "<tool_response>\n-3 C, snow"]),
        (tool_templates.LLAMA3, Llama3Format(), ['"parameters": {"city": "Oslo"}', "ipython<|end"]),
        (tool_templates.MISTRAL, MistralFormat(), ['[TOOL_CALLS][{"name": "get_weather"', "[TOOL_RESULTS]"]),
        (
            tool_templates.CHATML_NO_TOOLS,
            ToolFormat(),
            ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
             'user\n<tool_response>\n{"name": "get_weather", "content": "-3 C, snow"}'],
        ),
    ],
)  # fmt: skip
def test_history_and_tools_reach_the_template(tokenizer, template, fmt, needles):
    messages, tools = fmt.render(HISTORY, TOOLS)
    text = _with_template(tokenizer, template).apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    assert "add" in text and "The weather in a city" in text  # the tool list is in the prompt
    for needle in needles:
        assert needle in text


def test_the_default_format_teaches_in_the_system_message_and_keeps_roles_plain():
    messages, tools = ToolFormat().render([*HISTORY, {**HISTORY[3], "content": "windy"}], TOOLS)
    assert tools is None
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("Be brief.\n\nYou can call functions.")
    assert messages[3]["content"].count("<tool_response>") == 2  # parallel results: one user turn
    assert set().union(*messages) == {"role", "content"}


@pytest.mark.parametrize("fmt", [ToolFormat(), HermesFormat(), Llama3Format(), MistralFormat()])
def test_each_format_parses_the_calls_it_writes(fmt):
    call = ToolCall("x", "get_weather", '{"city": "S\\u00e3o Paulo", "unit": "c"}')
    text = (
        fmt.call_text(call) if not isinstance(fmt, MistralFormat) else f"[TOOL_CALLS] [{fmt.call_text(call)}]"
    )
    content, calls = fmt.parse(text)
    assert content is None
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "São Paulo", "unit": "c"})
    ]
    assert len({c.id for c in calls}) == 1 and calls[0].id != "x"
    if isinstance(fmt, MistralFormat):
        assert len(calls[0].id) == 9 and calls[0].id.isalnum()


def test_hermes_parsing_keeps_content_and_several_calls_and_leaves_broken_ones_as_text():
    fmt = ToolFormat()
    first = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    text = f'Checking.\n{first}\n<tool_call>{{"name": "add", "arguments": {{"a": 2}}}}</tool_call>'
    content, calls = fmt.parse(text)
    assert content == "Checking." and [c.arguments for c in calls] == ['{"a": 1}', '{"a": 2}']
    assert fmt.parse("<tool_call>\n{not json") == ("<tool_call>\n{not json", [])
    assert fmt.parse("no calls") == ("no calls", [])
    assert Llama3Format().parse('{"answer": 4}') == ('{"answer": 4}', [])  # JSON, but not a call


def test_streaming_passes_content_and_holds_calls_until_the_end():
    stream = ToolCallStream(ToolFormat(), forced=False)
    pieces = ["Sure", ". <", "tool", '_call>\n{"name": "add", ', '"arguments": {"a": 3}}\n</tool_call>']
    assert [stream.feed(p) for p in pieces] == ["Sure", ". ", "", "", ""]
    content, calls = stream.finish()
    assert content == "" and [c.arguments for c in calls] == ['{"a": 3}']
    plain = ToolCallStream(ToolFormat(), forced=False)
    assert plain.feed("a < b") == "a < b" and plain.finish() == ("", [])
    forced = ToolCallStream(Llama3Format(), forced=True)
    assert forced.feed('{"name": "add", "parameters": {"a": 1}}') == ""
    assert [c.name for c in forced.finish()[1]] == ["add"]


def _accepts(compiler: GrammarCompiler, tokenizer, grammar, text: str) -> bool:
    matcher = compiler.compile(grammar).new_matcher()
    ids = tokenizer.encode(text, add_special_tokens=False)
    return (
        all(matcher.accept_token(t) for t in ids)
        and matcher.accept_token(tokenizer.eos_token_id)
        and matcher.is_terminated()
    )


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        (ToolFormat(), '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>',
         ['<tool_call>\n{"name": "get_weathr", "arguments": {"city": "Rome"}}\n</tool_call>',
          '<tool_call>\n{"name": "get_weather", "arguments": {"unit": "c"}}\n</tool_call>',
          '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome", "x": 1}}\n</tool_call>',
          "It is sunny."]),
        (Llama3Format(), '{"name": "add", "parameters": {"a": 7}}',
         ['{"name": "add", "parameters": {"a": "7"}}', '{"name": "add", "arguments": {"a": 7}}']),
        (MistralFormat(), '[TOOL_CALLS][{"name": "add", "arguments": {"a": 7}}, '
                          '{"name": "add", "arguments": {"a": 8}}]',
         ['[{"name": "add", "arguments": {"a": 7}}]']),
    ],
)  # fmt: skip
def test_a_required_call_grammar_admits_only_valid_calls(tokenizer, fmt, good, bad):
    compiler = GrammarCompiler(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    grammar = fmt.grammar(TOOLS, ToolChoice("required"))
    assert _accepts(compiler, tokenizer, grammar, good)
    for text in bad:
        assert not _accepts(compiler, tokenizer, grammar, text), text


def test_named_and_single_call_grammars(tokenizer):
    compiler = GrammarCompiler(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    add = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    weather = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    named = ToolFormat().grammar(TOOLS, ToolChoice("named", "add"))
    assert _accepts(compiler, tokenizer, named, add) and not _accepts(compiler, tokenizer, named, weather)
    assert _accepts(compiler, tokenizer, named, f"{add}\n{add}")
    single = ToolFormat().grammar(TOOLS, ToolChoice("named", "add"), parallel=False)
    assert not _accepts(compiler, tokenizer, single, f"{add}\n{add}")
    either = ToolFormat().grammar(
        TOOLS,
        ToolChoice("auto"),
        otherwise={"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    )
    assert _accepts(compiler, tokenizer, either, weather) and _accepts(
        compiler, tokenizer, either, '{"x": 5}'
    )
    assert not _accepts(compiler, tokenizer, either, "free text")


def test_a_special_marker_token_is_forced_by_id(tokenizer):
    tok = load_tokenizer(tokenizer.name_or_path)
    tok.add_special_tokens({"additional_special_tokens": ["[TOOL_CALLS]"]})
    fmt = MistralFormat({"[TOOL_CALLS]": tok.convert_tokens_to_ids("[TOOL_CALLS]")})
    grammar = fmt.grammar(TOOLS, ToolChoice("required"))
    assert f"<[{tok.convert_tokens_to_ids('[TOOL_CALLS]')}]>" in grammar.source
    compiler = GrammarCompiler(tok, len(tok), [tok.eos_token_id])
    matcher = compiler.compile(grammar).new_matcher()
    assert matcher.accept_token(tok.convert_tokens_to_ids("[TOOL_CALLS]"))
