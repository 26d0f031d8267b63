"""The OpenAI-compatible routes against a scripted model: shapes, streaming, usage, logprobs, params."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.llm.scripted_served import SCRIPT, ScriptedServedModel


@pytest.fixture
def model() -> ScriptedServedModel:
    return ScriptedServedModel()


@pytest.fixture
def client(tmp_path, model) -> TestClient:
    app, key = build_app(tmp_path, [model, ScriptedServedModel("rand", is_random=True)])
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


def sse_events(text: str) -> list:
    """Parse an SSE body into JSON payloads, keeping the final "[DONE]" marker as a string."""
    out = []
    for block in text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def test_models_lists_served_models_and_labels_random_weights(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    cards = {m["id"]: m for m in body["data"]}
    assert set(cards) == {"fake-model", "rand"}
    for card in cards.values():
        assert card["object"] == "model" and isinstance(card["created"], int) and card["owned_by"]
        assert card["parent"] is None
    assert cards["rand"]["plinth"] == {"random_weights": True}
    assert "random" in cards["rand"]["owned_by"]
    assert cards["fake-model"]["plinth"] == {"random_weights": False}


def test_chat_completion_shape_and_usage(client, model):
    body = client.post("/v1/chat/completions", json=CHAT).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "fake-model"
    [choice] = body["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(SCRIPT[:-1])},
        "logprobs": None,
        "finish_reason": "stop",
    }
    prompt_len = len(model.calls[0][0])
    assert body["usage"] == {
        "prompt_tokens": prompt_len,
        "completion_tokens": len(SCRIPT),
        "total_tokens": prompt_len + len(SCRIPT),
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_chat_maps_parameters_to_sampling_params(client, model):
    params = {
        "max_completion_tokens": 3,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 7,
        "min_p": 0.1,
        "presence_penalty": 0.2,
        "frequency_penalty": 0.3,
        "repetition_penalty": 1.1,
        "seed": 42,
        "stop": "xyz",
        "stop_token_ids": [5],
        "ignore_eos": True,
        "min_tokens": 1,
    }
    body = client.post("/v1/chat/completions", json={**CHAT, **params}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    _, sp, stop, _ = model.calls[0]
    assert (sp.max_tokens, sp.temperature, sp.top_p, sp.top_k, sp.min_p) == (3, 0.5, 0.9, 7, 0.1)
    assert (sp.presence_penalty, sp.frequency_penalty, sp.repetition_penalty) == (0.2, 0.3, 1.1)
    assert (sp.seed, sp.stop_token_ids, sp.ignore_eos, sp.min_tokens) == (42, (5,), True, 1)
    assert stop == ("xyz",) and sp.logprobs is None


def test_chat_default_max_tokens_fills_the_context(client, model):
    client.post("/v1/chat/completions", json=CHAT)
    prompt, sp, _, _ = model.calls[0]
    assert sp.max_tokens == model.max_model_len - len(prompt)


def test_chat_n_runs_n_requests_with_distinct_seeds(client, model):
    body = client.post("/v1/chat/completions", json={**CHAT, "n": 3, "seed": 7}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert sorted(call[1].seed for call in model.calls) == [7, 8, 9]
    assert len({call[3] for call in model.calls}) == 3  # distinct request ids
    assert body["usage"]["prompt_tokens"] == len(model.calls[0][0])  # the shared prompt counts once
    assert body["usage"]["completion_tokens"] == 3 * len(SCRIPT)


def test_chat_logprobs_shape(client, model):
    body = client.post("/v1/chat/completions", json={**CHAT, "logprobs": True, "top_logprobs": 2}).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == len(SCRIPT)
    first = content[0]
    assert first["token"] == "Hello" and first["logprob"] == -0.25 and first["bytes"] == list(b"Hello")
    assert [t["logprob"] for t in first["top_logprobs"]] == [-0.25, -1.5]
    assert model.calls[0][1].logprobs == 2


def test_chat_stream_chunks_and_done(client):
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "".join(SCRIPT[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_chat_stream_include_usage(client, model):
    r = client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = sse_events(r.text)
    *chunks, usage_chunk, done = events
    assert done == "[DONE]"
    assert all(c["usage"] is None for c in chunks)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == len(SCRIPT)
    assert usage_chunk["usage"]["prompt_tokens"] == len(model.calls[0][0])


def test_chat_stream_n2_has_both_indexes(client):
    events = sse_events(client.post("/v1/chat/completions", json={**CHAT, "n": 2, "stream": True}).text)
    chunks = events[:-1]
    for index in (0, 1):
        mine = [c for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["choices"][0]["delta"]["role"] == "assistant"
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in mine) == "".join(SCRIPT[:-1])


def test_chat_stream_logprobs(client):
    body = {**CHAT, "stream": True, "logprobs": True, "top_logprobs": 1}
    chunks = sse_events(client.post("/v1/chat/completions", json=body).text)[:-1]
    tokens = [
        t["token"]
        for c in chunks
        if c["choices"][0]["logprobs"]
        for t in c["choices"][0]["logprobs"]["content"]
    ]
    assert tokens == [*SCRIPT[:-1], "</s>"]


def test_completions_string_prompt(client, model):
    body = client.post("/v1/completions", json={"model": "fake-model", "prompt": "abc"}).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    [choice] = body["choices"]
    assert choice["text"] == "".join(SCRIPT[:-1]) and choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert model.calls[0][0] == model.encode("abc")
    assert model.calls[0][1].max_tokens == 16  # OpenAI's completions default


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (["ab", "cd"], [[1, 3 + ord("a") % 7, 3 + ord("b") % 7], [1, 3 + ord("c") % 7, 3 + ord("d") % 7]]),
        ([5, 6, 7], [[5, 6, 7]]),
        ([[5, 6], [7, 8, 9]], [[5, 6], [7, 8, 9]]),
    ],
)
def test_completions_prompt_forms(client, model, prompt, expected):
    body = client.post("/v1/completions", json={"model": "fake-model", "prompt": prompt, "n": 2}).json()
    assert [c["index"] for c in body["choices"]] == list(range(2 * len(expected)))
    assert [call[0] for call in model.calls[::2]] == expected
    assert body["usage"]["prompt_tokens"] == sum(len(p) for p in expected)


def test_completions_logprobs_shape(client):
    body = {"model": "fake-model", "prompt": "x", "logprobs": 2, "max_tokens": 2}
    lp = client.post("/v1/completions", json=body).json()["choices"][0]["logprobs"]
    assert lp["tokens"] == ["Hello", " there"]
    assert lp["token_logprobs"] == [-0.25, -0.25]
    assert lp["text_offset"] == [0, 5]
    assert lp["top_logprobs"][0] == {"Hello": -0.25, "<50>": -1.5}


def test_completions_stream_and_usage(client):
    body = {"model": "fake-model", "prompt": "x", "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(client.post("/v1/completions", json=body).text)
    *chunks, usage_chunk, done = events
    assert done == "[DONE]" and usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "".join(SCRIPT[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_cached_tokens_reported(tmp_path):
    app, key = build_app(tmp_path, [ScriptedServedModel(cached=4)])
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    body = client.post("/v1/chat/completions", json=CHAT).json()
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_embeddings_float_and_base64(client):
    body = client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["a b", "ccc"]}).json()
    assert body["object"] == "list" and body["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["data"][1] == {"object": "embedding", "index": 1, "embedding": [1.0, 3.0, 0.5]}
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    b64 = client.post(
        "/v1/embeddings",
        json={"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "ab", "encoding_format": "base64"},
    ).json()
    raw = base64.b64decode(b64["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [1.0, 2.0, 0.5]
