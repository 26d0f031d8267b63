"""Issue 16: every bad input is a clear 4xx in the error shape, and request resources are bounded.

Each test names the probed finding it pins: deep JSON, oversized bodies and prompts, content types,
strict request fields, adapter sources, knowledge-base configs, 405s and the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from plinth.config import Settings
from plinth.control import create_key
from plinth.engine import SamplingParams, SamplingParamsError
from plinth.llm.scripted_served import ScriptedServedModel
from plinth.server.errors import as_api_error
from plinth.server.limits import RequestLimitsMiddleware, json_depth

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
JSON_ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/adapters",
    "/v1/load_lora_adapter",
    "/v1/knowledge-bases",
    "/v1/knowledge-bases/kb/retrieve",
    "/v1/retrieve-and-generate",
    "/v1/sql/query",
    "/v1/sql/ask",
    "/v1/guardrails",
    "/v1/guardrails/g/apply",
    "/invocations",
    "/v1/admin/keys",
]


@pytest.fixture
def app_and_key(tmp_path):
    return build_app(tmp_path)


@pytest.fixture
def client(app_and_key) -> TestClient:
    app, key = app_and_key
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


@pytest.fixture
def settings(app_and_key) -> Settings:
    return app_and_key[0].state.plinth.settings


def error_of(response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    if param is not None:
        assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# --- JSON bodies: depth, size, content type ------------------------------------------------------


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_json_nested_1000_deep_is_400_on_every_json_route(client, route):
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = client.post(route, content=deep, headers={"Content-Type": "application/json"})
    assert "64" in error_of(r, 400, code="json_too_deep")["message"]


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": [1, {"b": "[[[{{"}]}') == 3
    assert json_depth(b'"[[["') == 0
    assert json_depth(b'{"q": "a \\" [ b"}') == 1


def test_recursion_error_anywhere_is_a_400_not_a_500():
    err = as_api_error(RecursionError("maximum recursion depth exceeded"))
    assert err.status == 400 and err.code == "too_deeply_nested"


def test_body_over_max_json_body_mb_is_413(client, settings):
    settings.max_json_body_mb = 0.01  # 10 KiB
    body = {"model": "fake-model", "prompt": "word " * 5000}
    err = error_of(client.post("/v1/completions", json=body), 413, code="request_too_large")
    assert "max_json_body_mb" in err["message"]


def test_body_over_limit_without_content_length_is_413(client, settings):
    settings.max_json_body_mb = 0.01
    chunks = (b" " * 4096 for _ in range(5))  # streamed: no Content-Length to refuse from
    r = client.post("/v1/completions", content=chunks, headers={"Content-Type": "application/json"})
    error_of(r, 413, code="request_too_large")


def test_text_plain_is_415_and_no_content_type_is_400(client):
    body = json.dumps(CHAT).encode()
    r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "text/plain"})
    assert "text/plain" in error_of(r, 415, code="unsupported_media_type")["message"]
    r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": ""})
    assert "Content-Type" in error_of(r, 400, code="invalid_json")["message"]
    r = client.post(
        "/v1/chat/completions", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200, r.text


def test_routes_without_a_body_still_take_an_empty_post(client):
    r = client.post("/v1/knowledge-bases/nope/sync")
    error_of(r, 404)  # reached the route: no content type is needed for no body


# --- prompts and batches --------------------------------------------------------------------------


def test_prompt_over_max_prompt_chars_is_400_before_tokenizing(client, settings):
    settings.max_prompt_chars = 100
    r = client.post("/v1/completions", json={"model": "fake-model", "prompt": "x" * 101})
    error_of(r, 400, param="prompt", code="prompt_too_long")
    r = client.post(
        "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": "x" * 101}]}
    )
    error_of(r, 400, param="messages", code="prompt_too_long")
    r = client.post("/invocations", json={"inputs": "x" * 101})
    error_of(r, 400, param="inputs", code="prompt_too_long")


def test_too_many_embedding_inputs_is_400(client, settings):
    r = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a"] * 20000})
    assert "2048" in error_of(r, 400, param="input", code="too_many_inputs")["message"]
    settings.max_batch_inputs = 2
    r = client.post("/v1/completions", json={"model": "fake-model", "prompt": ["a", "b", "c"]})
    error_of(r, 400, param="prompt", code="too_many_inputs")


# --- strict request fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("seed", 2**64, "seed"),
        ("seed", -1, "seed"),
        ("top_k", 1e29, "top_k"),
        ("stream", "yes", "stream"),
        ("logprobs", "true", "logprobs"),
        ("stop_token_ids", [-1], "stop_token_ids.0"),
    ],
)
def test_invalid_sampling_field_is_400_naming_it(client, field, value, param):
    err = error_of(client.post("/v1/chat/completions", json={**CHAT, field: value}), 400, param=param)
    assert "Overflow" not in err["message"]


def test_largest_seed_is_accepted(client):
    r = client.post("/v1/chat/completions", json={**CHAT, "seed": 2**63 - 1, "n": 2})
    assert r.status_code == 200, r.text


def test_engine_refuses_a_seed_torch_cannot_take():
    with pytest.raises(SamplingParamsError) as info:
        SamplingParams(seed=2**64)
    assert info.value.param == "seed"
    with pytest.raises(SamplingParamsError):
        SamplingParams(stop_token_ids=(-1,))


def test_invocations_fields_are_strict(client):
    r = client.post("/invocations", json={"inputs": "hi", "parameters": {"seed": 2**64}})
    error_of(r, 400, param="parameters.seed")
    r = client.post("/invocations", json={"inputs": "hi", "stream": "yes"})
    error_of(r, 400, param="stream")


def test_message_without_content_is_400(client):
    r = client.post("/v1/chat/completions", json={**CHAT, "messages": [{"role": "user"}]})
    assert "content" in error_of(r, 400, param="messages.0")["message"]
    r = client.post("/v1/chat/completions", json={**CHAT, "messages": [{"role": "system", "content": None}]})
    error_of(r, 400, param="messages.0")


def test_assistant_tool_call_turn_may_have_null_content(tmp_path):
    app, key = build_app(tmp_path, [ScriptedServedModel(max_model_len=1024)])
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    r = client.post("/v1/chat/completions", json={**CHAT, "messages": messages})
    assert r.status_code == 200, r.text


# --- adapters and knowledge bases -----------------------------------------------------------------


@pytest.mark.parametrize("admin", [False, True])
def test_adapter_source_of_256_or_more_chars_is_400(client, app_and_key, admin):
    headers = {}
    if admin:
        key = create_key(app_and_key[0].state.plinth.control_plane, "root", admin=True)
        headers = {"Authorization": f"Bearer {key}"}
    for source in ("x" * 256, "/tmp/" + "y" * 300, "z" * 5000):
        r = client.post("/v1/adapters", json={"source": source}, headers=headers)
        error_of(r, 400, param="source")
        body = {"lora_name": "a", "lora_path": source}
        error_of(client.post("/v1/load_lora_adapter", json=body, headers=headers), 400, param="lora_path")


def test_kb_with_huge_chunk_size_is_400(client):
    body = {"name": "big", "chunking": {"strategy": "fixed", "max_tokens": 1e30}}
    assert (
        "max_tokens"
        in error_of(client.post("/v1/knowledge-bases", json=body), 400, param="chunking")["message"]
    )


@pytest.mark.parametrize("embedder", ["no such model!", "/nowhere/at/all", "x" * 300])
def test_kb_with_an_embedder_that_does_not_exist_is_400(client, embedder):
    r = client.post("/v1/knowledge-bases", json={"name": "kb1", "embedder": embedder})
    error_of(r, 400, param="embedder", code="embedder_not_found")
    assert client.get("/v1/knowledge-bases/kb1").status_code == 404  # nothing was created


# --- routing and the OpenAPI document -------------------------------------------------------------


def test_405_names_the_allowed_methods(client):
    r = client.get("/v1/chat/completions")
    error_of(r, 405, code="method_not_allowed")
    assert r.headers["Allow"] == "POST"


def test_openapi_declares_every_body_and_error(client):
    doc = client.get("/openapi.json").json()
    assert "ErrorResponse" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "500" in responses, (method, path)
            if path.startswith("/v1/") or path == "/invocations":
                for status in ("400", "401", "404", "429"):
                    schema = responses[status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
            if method in ("post", "put") and path not in NO_BODY:
                assert "requestBody" in op, (method, path)
                assert {"413", "415"} <= set(responses), (method, path)
    adapters = doc["paths"]["/v1/adapters"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(adapters)


def test_openapi_documents_the_evaluation_spec_and_every_ref_resolves(client):
    """POST /v1/evaluations reads its body itself (to word its own 400s) but documents the model that
    validates it, nested models included; every reference points at a component that exists."""
    doc = client.get("/openapi.json").json()
    text, schemas = json.dumps(doc), doc["components"]["schemas"]
    refs = re.findall(r'"\$ref": "([^"]+)"', text)
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs), refs
    body = doc["paths"]["/v1/evaluations"]["post"]["requestBody"]
    spec = body["content"]["application/json"]["schema"]
    assert body["required"] and spec["required"] == ["dataset", "targets"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["targets"]["items"] == {"$ref": "#/components/schemas/TargetSpec"}
    assert (spec["properties"]["targets"]["minItems"], spec["properties"]["targets"]["maxItems"]) == (1, 2)
    assert schemas["TargetSpec"]["required"] == ["model"] and "criteria" in schemas["JudgeSpec"]["properties"]


NO_BODY = {
    "/v1/knowledge-bases/{kb}/sync",
    "/v1/fine_tuning/jobs/{job_id}/cancel",
    "/v1/batches/{batch_id}/cancel",
    "/v1/evaluations/{evaluation_id}/cancel",
}


# --- cancellation ---------------------------------------------------------------------------------


def test_client_disconnect_cancels_the_request():
    """A request whose client goes away is cancelled (its engine requests are aborted with it)."""
    events: list[str] = []

    async def slow(request):
        await request.body()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return JSONResponse({})

    app = RequestLimitsMiddleware(Starlette(routes=[Route("/slow", slow, methods=["POST"])]), Settings())
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}, {"type": "http.disconnect"}]

    async def receive():
        message = messages.pop(0)
        if message["type"] == "http.disconnect":
            await asyncio.sleep(0.1)
        return message

    async def send(message):
        events.append(message["type"])

    scope = {
        "type": "http", "method": "POST", "path": "/slow", "raw_path": b"/slow", "query_string": b"",
        "headers": [(b"content-type", b"application/json")], "root_path": "", "scheme": "http",
        "server": ("test", 80), "client": ("test", 1), "http_version": "1.1",
    }  # fmt: skip

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=5))
    assert events == ["cancelled"]


def test_sql_ask_generation_is_bounded():
    from plinth.sql.ask import ASK_OPTIONS

    assert ASK_OPTIONS.max_tokens is not None and ASK_OPTIONS.max_tokens <= 512
    assert any("```" in stop for stop in ASK_OPTIONS.stop)


@pytest.mark.parametrize("source", [{}, [], 1])
def test_guardrail_apply_with_a_non_string_source_is_400(client, source):
    """Found by the schemathesis run: an unhashable ``source`` was a 500."""
    r = client.post("/v1/guardrails/g/apply", json={"source": source, "content": []})
    error_of(r, 400, param="source")


def test_client_disconnect_aborts_the_engine_request(tmp_path):
    """The whole app: a chat completion whose client goes away mid-generation is aborted in the model."""
    model = ScriptedServedModel(max_model_len=1024, delay=0.2)
    app, key = build_app(tmp_path, [model])
    body = json.dumps({**CHAT, "max_tokens": 8}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive():
        message = messages.pop(0)
        if message["type"] == "http.disconnect":
            await asyncio.sleep(0.5)  # the client leaves while tokens are being generated
        return message

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode())]
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "headers": headers, "root_path": "", "scheme": "http", "server": ("test", 80),
        "client": ("test", 1), "http_version": "1.1", "app": app,
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    assert model.aborted and not model.finished
    assert not any(m["type"] == "http.response.start" for m in sent)
