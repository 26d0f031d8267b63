"""Disconnects abort engine requests; /metrics and /health report what happened."""

from __future__ import annotations

import asyncio
import json

from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import ScriptedServedModel


async def drive_until_first_chunk(app, path: str, body: dict, key: str) -> list[dict]:
    """Call the ASGI app like a server would, and disconnect right after the first body chunk."""
    payload = json.dumps(body).encode()
    got_chunk = asyncio.Event()
    request_sent = False
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await got_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            got_chunk.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


async def test_sse_disconnect_aborts_every_choice(tmp_path):
    model = ScriptedServedModel(script=[f" t{i}" for i in range(200)], max_model_len=1000, delay=0.01)
    app, key = build_app(tmp_path, [model])
    body = {"model": "fake-model", "prompt": "x", "max_tokens": 200, "n": 2, "stream": True}
    sent = await drive_until_first_chunk(app, "/v1/completions", body, key)
    assert sent[0]["status"] == 200
    assert model.finished == []
    assert sorted(model.aborted) == sorted(call[3] for call in model.calls) and len(model.aborted) == 2


async def test_jsonlines_disconnect_aborts(tmp_path):
    model = ScriptedServedModel(script=[f" t{i}" for i in range(200)], max_model_len=1000, delay=0.01)
    app, key = build_app(tmp_path, [model])
    body = {"inputs": "x", "parameters": {"max_new_tokens": 200}, "stream": True}
    await drive_until_first_chunk(app, "/invocations", body, key)
    assert model.finished == [] and len(model.aborted) == 1


def test_metrics_after_requests(tmp_path):
    app, key = build_app(tmp_path)
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=chat).status_code == 200
    assert client.post("/v1/chat/completions", json={**chat, "model": "x"}).status_code == 404
    text = client.get("/metrics").text
    assert 'plinth_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'plinth_requests_total{method="POST",route="/v1/chat/completions",status="404"} 1.0' in text
    assert 'plinth_generation_tokens_total{model="fake-model"} 5.0' in text
    assert 'plinth_prompt_tokens_total{model="fake-model"}' in text
    assert 'plinth_num_requests_waiting{model="fake-model"} 3.0' in text
    assert 'plinth_num_requests_running{model="fake-model"} 1.0' in text
    assert 'plinth_batch_size{model="fake-model"} 1.0' in text
    assert 'plinth_kv_cache_usage_ratio{model="fake-model"} 0.25' in text
    for histogram in ("time_to_first_token", "e2e_request_latency", "time_per_output_token"):
        assert f'plinth_{histogram}_seconds_count{{model="fake-model"}} 1.0' in text


def test_metrics_registries_are_per_app(tmp_path):
    app1, _ = build_app(tmp_path / "a")
    app2, _ = build_app(tmp_path / "b")
    TestClient(app1).get("/health")
    assert 'route="/health"' not in TestClient(app2).get("/metrics").text


def test_health_reports_models(tmp_path):
    app, _ = build_app(tmp_path, [ScriptedServedModel(is_random=True)])
    body = TestClient(app).get("/health").json()
    assert body["status"] == "ok"
    [m] = body["models"]
    assert m["id"] == "fake-model" and m["random_weights"] is True and m["num_waiting"] == 3
