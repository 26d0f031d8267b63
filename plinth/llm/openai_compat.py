"""The ChatModel protocol over any OpenAI-compatible server: vLLM, Ollama, OpenAI, or Plinth itself.

One HTTP client per call (``httpx.AsyncClient``), so a model object holds no connections and can be
shared across event loops; ``transport`` lets tests answer with ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from plinth.llm.base import ChatOptions, ChatResult, Message, ProviderError, Usage


class OpenAICompatModel:
    """``POST {base_url}/chat/completions``; ``base_url`` includes the version, as in the OpenAI SDK.

    >>> model = OpenAICompatModel("http://localhost:8000/v1", "qwen2.5-0.5b")   # doctest: +SKIP
    >>> (await model.chat([{"role": "user", "content": "Hi"}])).text              # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.transport = transport

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        payload = self._payload(messages, options, stream=False)
        async with self._client() as client:
            response = await _send(client, client.build_request("POST", "/chat/completions", json=payload))
        body = response.json()
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return ChatResult(
            choice["message"].get("content") or "",
            choice.get("finish_reason"),
            Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        )

    async def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        payload = self._payload(messages, options, stream=True)
        async with self._client() as client:
            request = client.build_request("POST", "/chat/completions", json=payload)
            response = await _send(client, request, stream=True)
            try:
                async for event in _sse_events(response):
                    if "error" in event:
                        raise ProviderError(response.status_code, _error_message(event))
                    for choice in event.get("choices") or []:
                        if text := (choice.get("delta") or {}).get("content"):
                            yield text
            finally:
                await response.aclose()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, transport=self.transport
        )

    def _payload(self, messages: list[Message], options: ChatOptions | None, stream: bool) -> dict[str, Any]:
        options = options or ChatOptions()
        payload: dict[str, Any] = {"model": self.name, "messages": list(messages), "stream": stream}
        for key in ("max_tokens", "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            if (value := getattr(options, key)) is not None:
                payload[key] = value
        if options.stop:
            payload["stop"] = list(options.stop)
        if options.response_format is not None:
            payload.update(options.response_format.request_fields())
        return payload


async def _send(client: httpx.AsyncClient, request: httpx.Request, stream: bool = False) -> httpx.Response:
    """Send, and turn transport failures and non-2xx answers into :class:`ProviderError`."""
    try:
        response = await client.send(request, stream=stream)
    except httpx.HTTPError as exc:
        raise ProviderError(None, f"{type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return response
    await response.aread()
    await response.aclose()
    raise ProviderError(response.status_code, _error_message(_json_or_text(response)))


async def _sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, up to ``data: [DONE]``."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:  # a blank line ends an event
            if (payload := "\n".join(data)) == "[DONE]":
                return
            data = []
            yield json.loads(payload)
    if data and (payload := "\n".join(data)) != "[DONE]":
        yield json.loads(payload)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_message(body: Any) -> str:
    """The server's own words: OpenAI ``{"error": {"message"}}``, FastAPI ``{"detail"}``, or the text."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if error or body.get("detail"):
            return str(error or body["detail"])
    return str(body)[:2000] or "(empty response)"
