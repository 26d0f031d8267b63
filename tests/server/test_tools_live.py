"""Tool calling through a live server on the tiny random llama, with the official openai SDK: under
``tool_choice="required"`` or a named function every call parses and validates against its function's
schema whatever the (random) model prefers; streamed ``delta.tool_calls`` accumulate to the same
calls; a tool result in the history is answered."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from live_server import live_model_server

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"
ORDER = {
    "type": "object",
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 20},
        "express": {"type": "boolean"},
        "notes": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
    },
    "required": ["sku", "quantity"],
}
CITY = {"type": "object", "properties": {"city": {"enum": ["Oslo", "Rome", "Lima"]}}, "required": ["city"]}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "place_order", "description": "Order stock", "parameters": ORDER},
    },
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}},
]
SCHEMAS = {"place_order": ORDER, "get_weather": CITY}
USER = [{"role": "user", "content": "Order three widgets, then check the weather."}]


@pytest.fixture(scope="module")
def server(tiny_checkpoint_factory, tmp_path_factory):
    data = tmp_path_factory.mktemp("tools-e2e")
    with live_model_server(str(tiny_checkpoint_factory("llama")), data, MODEL) as (url, key, model):
        yield url, key


@pytest.fixture
def client(server) -> openai.OpenAI:
    url, key = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def _check(calls) -> None:
    assert calls
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_required_calls_always_validate(client):
    for seed in range(4):
        completion = client.chat.completions.create(
            model=MODEL, messages=USER, tools=TOOLS, tool_choice="required", max_tokens=400, seed=seed,
            temperature=1.0, parallel_tool_calls=seed % 2 == 0,
        )  # fmt: skip
        choice = completion.choices[0]
        if choice.finish_reason == "length":  # the random model may go on calling until the limit
            assert seed % 2 == 0
            continue
        assert choice.finish_reason == "tool_calls"
        _check(choice.message.tool_calls)
        if seed % 2:
            assert len(choice.message.tool_calls) == 1


def test_a_named_function_is_the_one_called(client):
    for seed in range(3):
        completion = client.chat.completions.create(
            model=MODEL, messages=USER, tools=TOOLS, max_tokens=200, seed=seed, temperature=1.0,
            tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        )  # fmt: skip
        (call,) = completion.choices[0].message.tool_calls
        assert call.function.name == "get_weather"
        _check([call])


def test_streamed_tool_call_deltas_accumulate_to_valid_calls(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=USER, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        max_tokens=300, seed=7, temperature=1.0, stream=True,
    )  # fmt: skip
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for part in delta.tool_calls or []:
            entry = calls.setdefault(part.index, {"name": "", "arguments": ""})
            entry["name"] += part.function.name or ""
            entry["arguments"] += part.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and len(calls) == 1
    for entry in calls.values():
        jsonschema.validate(json.loads(entry["arguments"]), SCHEMAS[entry["name"]])


def test_a_tool_result_in_the_history_is_answered(client):
    first = client.chat.completions.create(
        model=MODEL, messages=USER, tools=TOOLS, max_tokens=200, seed=1, parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    message = first.choices[0].message
    (call,) = message.tool_calls
    history = [*USER, message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]  # fmt: skip
    second = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, tool_choice="none", max_tokens=8
    )
    assert (
        second.choices[0].finish_reason in ("stop", "length") and second.choices[0].message.tool_calls is None
    )
