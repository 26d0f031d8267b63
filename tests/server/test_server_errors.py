"""Every failure answers in OpenAI's error shape with the right status, and never takes the server down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import ScriptedServedModel

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


class ExplodingModel(ScriptedServedModel):
    def stream(self, *args, **kwargs):
        raise RuntimeError("secret internal detail")


@pytest.fixture
def client(tmp_path) -> TestClient:
    app, key = build_app(tmp_path, [ScriptedServedModel(max_model_len=32), ExplodingModel("boom")])
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_400(client):
    r = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    err = error_of(r, 400)
    assert err["type"] == "invalid_request_error"


def test_missing_field_is_400_naming_it(client):
    err = error_of(client.post("/v1/chat/completions", json={"model": "fake-model"}), 400)
    assert err["param"] == "messages"


def test_wrong_type_is_400_naming_the_nested_field(client):
    body = {"model": "fake-model", "messages": [{"role": "wizard", "content": "hi"}]}
    err = error_of(client.post("/v1/chat/completions", json=body), 400)
    assert err["param"] == "messages.0.role"


def test_unknown_model_is_404_model_not_found(client):
    err = error_of(client.post("/v1/chat/completions", json={**CHAT, "model": "nope"}), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    err = error_of(client.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404)
    assert err["code"] == "model_not_found"


def test_prompt_longer_than_context_is_400_with_both_numbers(client):
    err = error_of(
        client.post("/v1/completions", json={"model": "fake-model", "prompt": list(range(40))}), 400
    )
    assert err["code"] == "context_length_exceeded"
    assert "32" in err["message"] and "40" in err["message"]


def test_prompt_plus_max_tokens_too_long_is_400_from_the_engine_check(client):
    body = {"model": "fake-model", "prompt": list(range(20)), "max_tokens": 20, "stream": True}
    err = error_of(client.post("/v1/completions", json=body), 400)
    assert err["code"] == "context_length_exceeded"
    assert "32" in err["message"] and "20" in err["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 3.0), ("top_p", 0.0), ("max_tokens", 0), ("presence_penalty", 5), ("min_p", 2.0)],
)
def test_out_of_range_sampling_param_is_400_naming_it(client, field, value):
    err = error_of(client.post("/v1/chat/completions", json={**CHAT, field: value}), 400)
    assert err["param"] == field


def test_n_and_top_logprobs_ranges(client):
    assert error_of(client.post("/v1/chat/completions", json={**CHAT, "n": 0}), 400)["param"] == "n"
    err = error_of(client.post("/v1/chat/completions", json={**CHAT, "top_logprobs": 2}), 400)
    assert err["param"] == "top_logprobs"  # top_logprobs without logprobs


def test_empty_prompt_list_is_400(client):
    err = error_of(client.post("/v1/completions", json={"model": "fake-model", "prompt": []}), 400)
    assert err["param"] == "prompt"


def test_unknown_route_404_and_wrong_method_405(client):
    assert error_of(client.get("/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(client.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_internal_error_is_500_without_details_and_server_survives(client):
    err = error_of(client.post("/v1/chat/completions", json={**CHAT, "model": "boom"}), 500)
    assert "secret" not in err["message"] and "Traceback" not in err["message"]
    assert err["type"] == "server_error"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_error_mid_stream_is_reported_in_band(tmp_path):
    class FailsAfterOne(ScriptedServedModel):
        async def _run(self, prompt, params, rid):
            async for delta in super()._run(prompt, params, rid):
                yield delta
                raise RuntimeError("engine fell over")

    app, key = build_app(tmp_path, [FailsAfterOne()])
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert '"error"' in r.text and "engine fell over" not in r.text
    assert r.text.endswith("data: [DONE]\n\n")
