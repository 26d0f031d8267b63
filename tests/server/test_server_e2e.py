"""The real stack over HTTP: a tiny random llama in the engine, uvicorn on a free port, the official
openai SDK (sync, async, streaming) and plain httpx for LMI. Slower than the fake-model tests (seconds)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from live_server import live_model_server

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"
CHAT = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(tiny_checkpoint_factory, tmp_path_factory):
    """(base_url, api_key, model) for a live server; stopped and its engine shut down afterwards."""
    data = tmp_path_factory.mktemp("e2e")
    checkpoint = str(tiny_checkpoint_factory("llama"))
    with live_model_server(checkpoint, data, MODEL, max_num_seqs=8) as served:
        yield served


@pytest.fixture
def client(server) -> openai.OpenAI:
    url, key, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_models_and_random_label(client):
    [card] = client.models.list().data
    assert card.id == MODEL
    assert card.model_extra["plinth"] == {"random_weights": True}


def test_chat_sync_greedy_is_deterministic(client):
    kwargs = {"model": MODEL, "messages": CHAT, "max_tokens": 6, "temperature": 0}
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].finish_reason in {"length", "stop"}
    assert 1 <= first.usage.completion_tokens <= 6
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_chat_stream_matches_non_stream(client):
    kwargs = {"model": MODEL, "messages": CHAT, "max_tokens": 6, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    stream = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_chat_logprobs(client):
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)
    assert content[0].logprob == pytest.approx(content[0].top_logprobs[0].logprob)  # greedy = top-1


def test_completions_token_prompt_and_n(client):
    r = client.completions.create(model=MODEL, prompt=[[5, 6, 7], [8, 9]], max_tokens=4, n=2, seed=1)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.usage.prompt_tokens == 5


def test_async_client_concurrent_requests(server):
    url, key, _ = server

    async def main() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
        calls = [
            aclient.completions.create(model=MODEL, prompt="Hello", max_tokens=5, temperature=0)
            for _ in range(4)
        ]
        results = await asyncio.gather(*calls)
        await aclient.close()
        return [r.choices[0].text for r in results]

    texts = asyncio.run(main())
    assert len(set(texts)) == 1  # greedy and batched together: the same answer each time


def test_errors_through_the_sdk(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=CHAT)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=[1] * 5000, max_tokens=1)
    assert info.value.code == "context_length_exceeded"
    bad = openai.OpenAI(base_url=client.base_url, api_key="plinth-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_embeddings_base64_default_of_the_sdk(client):
    r = client.embeddings.create(model="all-MiniLM-L6-v2", input=["ab", "abc"])
    assert [d.embedding for d in r.data] == [[1.0, 2.0, 0.5], [1.0, 3.0, 0.5]]


def test_stream_close_aborts_engine_request(server, monkeypatch):
    url, key, model = server
    engine = model.engine.engine  # LocalModel -> AsyncLLMEngine -> LLMEngine
    aborted: list[str] = []
    real_abort = engine.abort
    monkeypatch.setattr(engine, "abort", lambda rid: (aborted.append(rid), real_abort(rid))[1])
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_lines())
    deadline = time.monotonic() + 20
    while not aborted or engine.stats().num_running or engine.stats().num_waiting:
        assert time.monotonic() < deadline, "the engine kept generating after the client left"
        time.sleep(0.02)
    assert engine.stats().kv_blocks_used == 0


def test_invocations_lmi(server):
    url, key, _ = server
    headers = {"Authorization": f"Bearer {key}"}
    body = {"inputs": "Hello", "parameters": {"max_new_tokens": 4, "details": True}}
    out = httpx.post(f"{url}/invocations", json=body, headers=headers, timeout=60).json()
    assert out["details"]["generated_tokens"] == len(out["details"]["tokens"]) <= 4
    with httpx.stream("POST", f"{url}/invocations", json={**body, "stream": True}, headers=headers) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["generated_text"] == out["generated_text"]
    assert [line["token"]["id"] for line in lines] == [t["id"] for t in out["details"]["tokens"]]
    assert httpx.get(f"{url}/ping").status_code == 200
    assert "plinth_time_to_first_token_seconds_count" in httpx.get(f"{url}/metrics").text


async def test_openai_compat_provider_against_live_server(server):
    """Plinth's own OpenAI-compatible provider, pointed at Plinth: same text as the engine directly."""
    from plinth.llm import ChatOptions, OpenAICompatModel, ProviderError

    url, key, model = server
    remote = OpenAICompatModel(f"{url}/v1", MODEL, api_key=key)
    options = ChatOptions(max_tokens=8, temperature=0)
    result = await remote.chat(CHAT, options)
    local = await model.chat(CHAT, options)
    assert result.text == local.text and result.finish_reason == local.finish_reason
    assert result.usage.completion_tokens == local.usage.completion_tokens
    streamed = "".join([piece async for piece in remote.stream(CHAT, options)])
    assert streamed == result.text
    with pytest.raises(ProviderError) as err:
        await OpenAICompatModel(f"{url}/v1", MODEL, api_key="pk-wrong").chat(CHAT, options)
    assert err.value.status == 401
