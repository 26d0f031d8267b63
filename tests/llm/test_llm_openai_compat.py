"""OpenAICompatModel against httpx.MockTransport: request shape, chat, SSE streaming, errors."""

import json

import httpx
import pytest

from plinth.llm import ChatOptions, OpenAICompatModel, ProviderError

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def sse(*events):
    lines = [f"data: {json.dumps(e) if isinstance(e, dict) else e}\n\n" for e in events]
    return "".join(lines).encode()


def chunk(text, finish=None):
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


class Server:
    """Records requests and answers with a canned response."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response

    def model(self, **kwargs):
        return OpenAICompatModel(
            "http://llm.test/v1", "qwen", api_key="sk-1", transport=httpx.MockTransport(self), **kwargs
        )


async def test_chat_sends_openai_request_and_parses_reply():
    body = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    server = Server(httpx.Response(200, json=body))
    result = await server.model().chat(MESSAGES, ChatOptions(max_tokens=5, temperature=0.0, stop=["\n"]))
    assert (result.text, result.finish_reason) == ("Hello!", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (9, 2)
    request = server.requests[0]
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    payload = json.loads(request.content)
    assert payload == {
        "model": "qwen",
        "messages": MESSAGES,
        "stream": False,
        "max_tokens": 5,
        "temperature": 0.0,
        "stop": ["\n"],
    }


async def test_stream_parses_server_sent_events_until_done():
    events = sse(
        {"choices": [{"delta": {"role": "assistant"}}]}, chunk("Hel"), chunk("lo 😀"), chunk("", "stop")
    )
    body = events + b"data: [DONE]\n\n" + sse(chunk("never"))
    server = Server(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    chunks = [c async for c in server.model().stream(MESSAGES)]
    assert chunks == ["Hel", "lo 😀"]
    assert json.loads(server.requests[0].content)["stream"] is True


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}},
            "too large",
        ),
        (401, {"detail": "bad key"}, "bad key"),
        (503, "upstream overloaded", "upstream overloaded"),
    ],
)
async def test_non_2xx_raises_provider_error_with_status_and_server_message(status, body, message):
    response = (
        httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    )
    model = Server(response).model()
    with pytest.raises(ProviderError) as info:
        await model.chat(MESSAGES)
    assert info.value.status == status and message in info.value.message
    with pytest.raises(ProviderError) as info:
        [c async for c in model.stream(MESSAGES)]
    assert info.value.status == status and message in info.value.message


async def test_error_event_inside_a_stream_raises():
    body = sse(chunk("partial"), {"error": {"message": "engine died", "code": 500}})
    model = Server(httpx.Response(200, content=body)).model()
    seen = []
    with pytest.raises(ProviderError, match="engine died"):
        async for c in model.stream(MESSAGES):
            seen.append(c)
    assert seen == ["partial"]


async def test_connection_failure_is_a_provider_error_without_status():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    model = OpenAICompatModel("http://down.test/v1", "m", transport=httpx.MockTransport(refuse))
    with pytest.raises(ProviderError, match="connection refused") as info:
        await model.chat(MESSAGES)
    assert info.value.status is None
