"""Guardrails on the raw-prompt routes, ``/v1/completions`` and LMI's ``/invocations``, through the real
guard (Presidio PII): prompts are checked (masked or blocked) before the model sees them, replies before
they leave, whole or streamed; token-id prompts under a guardrail are refused. ``ScriptedServedModel``
records the prompt ids it was given, so a test can say what the model saw, or that it was never called.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import ScriptedServedModel

SSN = "536-22-1234"
MASK = "{US_SOCIAL_SECURITY_NUMBER}"
BLOCKED_IN, BLOCKED_OUT = "Input blocked by policy.", "Output blocked by policy."
LEAKY = ("Your SSN is ", "536-", "22-", "1234", " as asked", ".")  # the last entry becomes EOS


def policy(action: str, *, default: bool = False) -> dict[str, Any]:
    return {
        "name": f"ssn-{action.lower()}",
        "blockedInputMessaging": BLOCKED_IN,
        "blockedOutputsMessaging": BLOCKED_OUT,
        "sensitiveInformationPolicyConfig": {
            "piiEntitiesConfig": [{"type": "US_SOCIAL_SECURITY_NUMBER", "action": action}]
        },
        "isDefault": default,
    }


def setup(tmp_path: Any, action: str | None, *, script: Any = None, default: bool = False) -> Any:
    model = ScriptedServedModel(max_model_len=4096, **({"script": script} if script else {}))
    app, key = build_app(tmp_path, [model])
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    gid = ""
    if action is not None:
        created = client.post("/v1/guardrails", json=policy(action, default=default))
        assert created.status_code == 201, created.text
        gid = "" if default else created.json()["guardrailId"]
    return client, model, gid


def config(gid: str) -> dict[str, Any]:
    return {"guardrailConfig": {"guardrailIdentifier": gid}} if gid else {}


def complete(client: TestClient, gid: str, prompt: Any, **extra: Any) -> Any:
    body = {"model": "fake-model", "prompt": prompt, **config(gid), **extra}
    return client.post("/v1/completions", json=body)


def invoke(client: TestClient, gid: str, inputs: Any, **extra: Any) -> Any:
    return client.post("/invocations", json={"inputs": inputs, **config(gid), **extra})


def sse(response: Any) -> list[Any]:
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


# --- /v1/completions ---------------------------------------------------------------------------------


def test_completion_prompt_is_masked_before_the_model_sees_it(tmp_path):
    client, model, gid = setup(tmp_path, "ANONYMIZE")
    response = complete(client, gid, f"My SSN is {SSN}.", max_tokens=3)
    assert response.status_code == 200, response.text
    data = response.json()
    assert model.calls[0][0] == model.encode(f"My SSN is {MASK}.")
    assert data["choices"][0]["text"] == "Hello there," and SSN not in response.text
    assert data["guardrail"]["action"] == "GUARDRAIL_INTERVENED" and data["guardrail"]["stage"] == "input"


@pytest.mark.parametrize("stream", [False, True])
def test_a_blocked_completion_prompt_never_reaches_the_model(tmp_path, stream: bool):
    client, model, gid = setup(tmp_path, "BLOCK")
    response = complete(client, gid, ["Hi there", f"SSN {SSN}"], n=2, stream=stream)
    assert response.status_code == 200, response.text
    assert model.calls == [] and SSN not in response.text
    if stream:
        events = sse(response)
        assert events[-1] == "[DONE]"
        finals = [e for e in events[:-1] if e["choices"][0]["finish_reason"]]
        choices = [f["choices"][0] for f in finals]
        guardrail = finals[-1]["guardrail"]
    else:
        data = response.json()
        choices, guardrail = data["choices"], data["guardrail"]
        assert data["usage"]["completion_tokens"] == 0
    assert sorted(c["index"] for c in choices) == [0, 1, 2, 3]
    assert {c["text"] for c in choices} == {BLOCKED_IN} and {c["finish_reason"] for c in choices} == {
        "content_filter"
    }
    assert guardrail["action"] == "GUARDRAIL_INTERVENED" and guardrail["stage"] == "input"


def test_token_id_prompts_under_a_guardrail_are_a_400(tmp_path):
    client, model, gid = setup(tmp_path, "BLOCK")
    response = complete(client, gid, [[5, 6, 7]])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "prompt" and "token-id" in error["message"] and model.calls == []
    assert complete(client, "", [[5, 6, 7]]).status_code == 200  # no guardrail: ids are fine


def test_the_tenant_default_guards_completions(tmp_path):
    client, model, _ = setup(tmp_path, "BLOCK", default=True)
    data = complete(client, "", f"SSN {SSN}").json()
    assert data["choices"][0]["text"] == BLOCKED_IN and model.calls == []
    assert complete(client, "", [[5, 6, 7]]).status_code == 400


def test_a_completion_leaking_an_ssn_is_masked_and_loses_its_logprobs(tmp_path):
    client, _, gid = setup(tmp_path, "ANONYMIZE", script=LEAKY)
    data = complete(client, gid, "Tell me", logprobs=1).json()
    [choice] = data["choices"]
    assert choice["text"] == f"Your SSN is {MASK} as asked" and choice["finish_reason"] == "stop"
    assert choice["logprobs"]["tokens"] == []
    assert data["guardrail"]["stage"] == "output"


def test_a_streamed_completion_never_sends_the_ssn(tmp_path):
    client, model, gid = setup(tmp_path, "BLOCK", script=LEAKY)
    response = complete(client, gid, "Tell me", stream=True, logprobs=1)
    assert response.status_code == 200, response.text
    events = sse(response)
    # What a client can read: every streamed piece of text and every logprob token (ids are random hex,
    # so the raw body may hold "1234" by chance).
    seen = "".join(
        choice["text"] + "".join((choice.get("logprobs") or {}).get("tokens") or [])
        for event in events[:-1]
        for choice in event["choices"]
    )
    assert SSN not in response.text and "1234" not in seen and "536-" not in seen
    final = events[-2]["choices"][0]
    assert final["text"] == BLOCKED_OUT and final["finish_reason"] == "content_filter"
    assert events[-2]["guardrail"]["stage"] == "output" and (model.aborted or model.finished)


def test_without_a_policy_completions_are_unchanged(tmp_path):
    client, _, _ = setup(tmp_path, None, script=LEAKY)
    data = complete(client, "", "Tell me").json()
    assert "guardrail" not in data and SSN in data["choices"][0]["text"]


@pytest.mark.parametrize("route", ["/v1/completions", "/invocations"])
def test_a_bad_guardrail_config_is_a_400_naming_the_field(tmp_path, route: str):
    client, model, _ = setup(tmp_path, "BLOCK")
    body = {"model": "fake-model", "prompt": "hi", "inputs": "hi", "guardrailConfig": {"trace": "on"}}
    response = client.post(route, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "guardrailConfig.guardrailIdentifier" and model.calls == []


# --- /invocations ------------------------------------------------------------------------------------


def test_invocation_input_is_masked_and_details_show_what_ran(tmp_path):
    client, model, gid = setup(tmp_path, "ANONYMIZE")
    params = {"max_new_tokens": 2, "details": True}
    data = invoke(client, gid, f"My SSN is {SSN}", parameters=params).json()
    assert model.calls[0][0] == model.encode(f"My SSN is {MASK}")
    assert data["details"]["inputs"] == f"My SSN is {MASK}" and data["generated_text"] == "Hello there"
    assert data["guardrail"]["stage"] == "input" and data["guardrail"]["action"] == "GUARDRAIL_INTERVENED"


def test_a_blocked_invocation_input_stops_every_input(tmp_path):
    client, model, gid = setup(tmp_path, "BLOCK")
    outputs = invoke(client, gid, ["Hello", f"SSN {SSN}"], parameters={"details": True}).json()
    assert model.calls == [] and len(outputs) == 2
    for out in outputs:
        assert out["generated_text"] == BLOCKED_IN and out["details"]["finish_reason"] == "content_filter"
        assert out["details"]["tokens"] == [] and out["guardrail"]["stage"] == "input"


def test_an_invocation_output_leaking_an_ssn_is_blocked_without_its_tokens(tmp_path):
    client, _, gid = setup(tmp_path, "BLOCK", script=LEAKY)
    response = invoke(client, gid, "Tell me", parameters={"details": True})
    data = response.json()
    assert data["generated_text"] == BLOCKED_OUT and data["details"]["finish_reason"] == "content_filter"
    assert data["details"]["tokens"] == [] and "1234" not in response.text
    assert data["guardrail"]["stage"] == "output"


def test_a_streamed_invocation_sends_checked_text_only(tmp_path):
    client, _, gid = setup(tmp_path, "ANONYMIZE", script=LEAKY)
    response = invoke(client, gid, "Tell me", stream=True)
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert "1234" not in response.text and all(line["token"]["id"] is None for line in lines)
    assert "".join(line["token"]["text"] for line in lines) == f"Your SSN is {MASK} as asked"
    assert lines[-1]["generated_text"] == f"Your SSN is {MASK} as asked"
    assert lines[-1]["guardrail"]["stage"] == "output"


def test_without_a_policy_invocation_streams_are_per_token(tmp_path):
    client, _, _ = setup(tmp_path, None, script=LEAKY)
    lines = [json.loads(line) for line in invoke(client, "", "Tell me", stream=True).text.splitlines()]
    assert [line["token"]["id"] for line in lines] == [10, 11, 12, 13, 14, 2]
    assert "guardrail" not in lines[-1] and SSN in lines[-1]["generated_text"]
