"""SageMaker LMI: /invocations request/response shapes (single, list, details, jsonlines) and /ping."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import EOS, SCRIPT, ScriptedServedModel


@pytest.fixture
def model() -> ScriptedServedModel:
    return ScriptedServedModel()


@pytest.fixture
def client(tmp_path, model) -> TestClient:
    app, key = build_app(tmp_path, [model])
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


def test_ping(client):
    r = client.get("/ping")
    assert r.status_code == 200 and r.json() == {"status": "Healthy"}


def test_single_input_without_details(client, model):
    body = client.post("/invocations", json={"inputs": "What is DL?"}).json()
    assert body == {"generated_text": "".join(SCRIPT[:-1])}
    sp = model.calls[0][1]
    assert sp.max_tokens == 30 and sp.temperature == 0.0  # LMI defaults: 30 new tokens, greedy


def test_details_and_parameters(client, model):
    params = {"max_new_tokens": 2, "details": True, "do_sample": True, "temperature": 0.7, "top_k": 5}
    params |= {"seed": 3, "repetition_penalty": 1.2, "stop_sequences": ["zz"]}
    body = client.post("/invocations", json={"inputs": "q", "parameters": params}).json()
    assert body["generated_text"] == "Hello there"
    assert body["details"] == {
        "finish_reason": "length",
        "generated_tokens": 2,
        "inputs": "q",
        "tokens": [
            {"id": 10, "text": "Hello", "log_prob": -0.25},
            {"id": 11, "text": " there", "log_prob": -0.25},
        ],
    }
    _, sp, stop, _ = model.calls[0]
    assert (sp.temperature, sp.top_k, sp.seed, sp.repetition_penalty) == (0.7, 5, 3, 1.2)
    assert stop == ("zz",)


def test_eos_finish_reason_and_full_text(client):
    params = {"details": True, "return_full_text": True}
    body = client.post("/invocations", json={"inputs": "Q: ", "parameters": params}).json()
    assert body["generated_text"] == "Q: " + "".join(SCRIPT[:-1])
    assert body["details"]["finish_reason"] == "eos_token"
    assert body["details"]["tokens"][-1]["id"] == EOS


def test_list_inputs_return_a_list(client):
    body = client.post(
        "/invocations", json={"inputs": ["a", "b"], "parameters": {"max_new_tokens": 1}}
    ).json()
    assert body == [{"generated_text": "Hello"}, {"generated_text": "Hello"}]


@pytest.mark.parametrize("where", ["top", "parameters"])
def test_jsonlines_stream(client, where):
    body = {"inputs": "q", "parameters": {"max_new_tokens": 3, "details": True}}
    if where == "top":
        body["stream"] = True
    else:
        body["parameters"]["stream"] = True
    r = client.post("/invocations", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonlines")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line["token"]["id"] for line in lines] == [10, 11, 12]
    assert lines[0] == {"token": {"id": 10, "text": "Hello", "log_prob": -0.25}, "generated_text": None}
    assert lines[-1]["generated_text"] == "Hello there,"
    assert lines[-1]["details"] == {"finish_reason": "length", "generated_tokens": 3, "inputs": "q"}


def test_stream_with_list_input_is_400(client):
    r = client.post("/invocations", json={"inputs": ["a", "b"], "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "inputs"


def test_bad_parameter_is_400(client):
    r = client.post("/invocations", json={"inputs": "q", "parameters": {"do_sample": True, "top_p": 5}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_p"
