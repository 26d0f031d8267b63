"""Constrained-decoding fields on the routes, against the scripted model: what reaches the engine
params, and the 400s (OpenAI error body, ``param`` naming the field, the message naming the feature)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm import GrammarSpec
from plinth.llm.scripted_served import ScriptedServedModel

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
CHAT_PATH = "/v1/chat/completions"
COMPLETION = {"model": "fake-model", "prompt": "hi"}


@pytest.fixture
def model() -> ScriptedServedModel:
    return ScriptedServedModel()


@pytest.fixture
def client(tmp_path, model) -> TestClient:
    app, key = build_app(tmp_path, [model])
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


def _spec(model: ScriptedServedModel) -> GrammarSpec | None:
    grammar = model.calls[-1][1].grammar
    return None if grammar is None else grammar.spec  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "base", "fields", "expected"),
    [
        ("/v1/chat/completions", CHAT, {"response_format": {"type": "json_schema", "json_schema":
         {"name": "a", "schema": SCHEMA, "strict": True}}}, GrammarSpec.json_schema(SCHEMA)),
        ("/v1/chat/completions", CHAT, {"response_format": {"type": "json_object"}},
         GrammarSpec.json_schema({"type": "object"})),
        ("/v1/chat/completions", CHAT, {"response_format": {"type": "text"}}, None),
        ("/v1/chat/completions", CHAT, {"guided_json": SCHEMA}, GrammarSpec.json_schema(SCHEMA)),
        ("/v1/completions", COMPLETION, {"guided_regex": "[a-z]+"}, GrammarSpec.regex("[a-z]+")),
        ("/v1/completions", COMPLETION, {"guided_choice": ["yes", "no"]}, GrammarSpec.choice(["yes", "no"])),
        ("/v1/completions", COMPLETION, {"guided_grammar": 'root ::= "a"'}, GrammarSpec.ebnf('root ::= "a"')),
        ("/v1/completions", COMPLETION, {"guided_json": '{"type": "string"}'},
         GrammarSpec.json_schema({"type": "string"})),
    ],
)  # fmt: skip
def test_the_constraint_reaches_the_engine_params(client, model, path, base, fields, expected):
    response = client.post(path, json={**base, **fields, "n": 2})
    assert response.status_code == 200, response.text
    assert _spec(model) == expected
    assert model.calls[-1][1].grammar is model.calls[-2][1].grammar  # compiled once for both choices


def test_streaming_request_carries_the_constraint(client, model):
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True, "guided_regex": "a+"})
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    assert _spec(model) == GrammarSpec.regex("a+")


def test_invocations_take_guided_parameters(client, model):
    body = {"inputs": "hi", "parameters": {"guided_choice": ["x", "y"]}}
    assert client.post("/invocations", json=body).status_code == 200
    assert _spec(model) == GrammarSpec.choice(["x", "y"])
    body = {"inputs": "hi", "parameters": {"response_format": {"type": "json_object"}}, "stream": True}
    assert client.post("/invocations", json=body).status_code == 200
    assert _spec(model) == GrammarSpec.json_object()


@pytest.mark.parametrize(
    ("path", "fields", "param", "named"),
    [
        ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {"name": "a",
         "schema": {"type": "array", "uniqueItems": True}}}}, "response_format", "uniqueItems"),
        ("/v1/chat/completions", {"guided_json": {"not": {"type": "string"}}}, "guided_json", '"not"'),
        (CHAT_PATH, {"guided_json": {"type": "string", "format": "ipv7"}}, "guided_json", "ipv7"),
        ("/v1/completions", {"guided_regex": "(?=a)b"}, "guided_regex", "look-around"),
        ("/v1/completions", {"guided_grammar": "start: missing_rule"}, "guided_grammar", "missing_rule"),
        ("/v1/completions", {"guided_choice": []}, "guided_choice", "non-empty"),
        ("/v1/completions", {"guided_json": "{not json"}, "guided_json", "not valid JSON"),
        (CHAT_PATH, {"guided_regex": "a", "guided_choice": ["a"]}, "guided_choice", "at most one"),
        ("/v1/chat/completions", {"response_format": {"type": "json_schema"}}, "response_format", "required"),
    ],
)  # fmt: skip
def test_unsupported_constraints_are_400s_naming_the_field(client, model, path, fields, param, named):
    base = CHAT if path.startswith("/v1/chat") else COMPLETION
    response = client.post(path, json={**base, **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert named in error["message"]
    assert model.calls == []  # nothing was generated


def test_invocations_unsupported_constraint_is_a_400(client, model):
    body = {"inputs": "hi", "parameters": {"guided_json": {"type": "array", "uniqueItems": True}}}
    response = client.post("/invocations", json=body)
    assert response.status_code == 400 and "uniqueItems" in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == "guided_json" and model.calls == []
