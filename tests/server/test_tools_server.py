"""Tool calling on /v1/chat/completions against scripted replies: OpenAI's response and stream shapes,
the grammar a forced call gets, the prompt the tools and history become, and the 400s."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import ScriptedRepliesModel

PATH = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
USER = [{"role": "user", "content": "Weather in Oslo?"}]


def _client(tmp_path, replies: list[str]) -> tuple[TestClient, ScriptedRepliesModel]:
    model = ScriptedRepliesModel(replies, chunk_size=5)  # streamed as an engine does
    app, key = build_app(tmp_path, [model])
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False), model


def _chat(client: TestClient, **fields: Any) -> Any:
    return client.post(PATH, json={"model": "fake-model", "messages": USER, "tools": [WEATHER], **fields})


def test_a_call_in_the_reply_is_returned_as_tool_calls(tmp_path):
    client, model = _client(tmp_path, [f"Let me look.\n{CALL}"])
    response = _chat(client)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me look."
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert model.calls[-1][1].grammar is None  # auto: the model decides, unconstrained
    system = model.messages[-1][0]
    assert system["role"] == "system" and '"name": "get_weather"' in system["content"]


def test_a_plain_answer_stays_content(tmp_path):
    client, _ = _client(tmp_path, ["It is cold."])
    choice = _chat(client).json()["choices"][0]
    assert choice == {
        **choice,
        "message": {"role": "assistant", "content": "It is cold."},
        "finish_reason": "stop",
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "fragment"),
    [
        ("required", True, ")*"),
        ({"type": "function", "function": {"name": "get_weather"}}, False, '"const": "get_weather"'),
    ],
)
def test_a_forced_call_is_constrained_by_a_call_grammar(tmp_path, choice, parallel, fragment):
    client, model = _client(tmp_path, [CALL])
    response = _chat(client, tool_choice=choice, parallel_tool_calls=parallel)
    assert response.json()["choices"][0]["finish_reason"] == "tool_calls"
    spec = model.calls[-1][1].grammar.spec
    assert spec.kind == "grammar" and "<tool_call>" in spec.source and fragment in spec.source
    assert (")*" in spec.source) is parallel


def test_tool_choice_none_hides_the_tools_and_reads_no_calls(tmp_path):
    client, model = _client(tmp_path, [CALL])
    response = _chat(client, tool_choice="none")
    assert response.json()["choices"][0]["message"] == {"role": "assistant", "content": CALL}
    assert all("get_weather" not in m["content"] for m in model.messages[-1])


def test_streamed_calls_arrive_as_tool_call_deltas(tmp_path):
    client, _ = _client(tmp_path, [f"Sure. {CALL}\n{CALL.replace('Oslo', 'Rome')}"])
    response = _chat(client, stream=True)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events]
    content = "".join(d.get("content") or "" for d in deltas)
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert content == "Sure. "
    assert [c["index"] for c in calls] == [0, 1]
    assert [json.loads(c["function"]["arguments"])["city"] for c in calls] == ["Oslo", "Rome"]
    assert all(c["function"]["name"] == "get_weather" and c["id"] for c in calls)
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"][0]["finish_reason"]] == [
        "tool_calls"
    ]


def test_the_history_of_calls_and_results_reaches_the_prompt(tmp_path):
    client, model = _client(tmp_path, ["It is -3 C in Oslo."])
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
    ]  # fmt: skip
    response = client.post(PATH, json={"model": "fake-model", "messages": messages, "tools": [WEATHER]})
    assert response.json()["choices"][0]["message"]["content"] == "It is -3 C in Oslo."
    prompt = model.messages[-1]
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert '"arguments": {"city": "Oslo"}' in prompt[2]["content"] and "-3 C" in prompt[3]["content"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1]"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
         "tools[0].function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "string", "format": "no-such-format"}}}}}]},
         "tools[0].function.parameters"),
        ({"guided_regex": "a+"}, "guided_regex"),
        ({"messages": [*USER, {"role": "tool", "content": "x"}]}, "messages"),
        ({"messages": [*USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "not json"}}]}]}, "messages"),
    ],
)  # fmt: skip
def test_bad_tool_fields_are_400s_naming_the_field(tmp_path, fields, param):
    client, _ = _client(tmp_path, ["unused"])
    response = _chat(client, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
