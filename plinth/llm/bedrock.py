"""The ChatModel protocol over Amazon Bedrock's Converse API (``pip install plinth[bedrock]``).

boto3 is imported only when the first call needs a client, so Plinth runs without it. boto3 is
blocking, so calls run in a worker thread. Bedrock has no seed or penalties: those options are ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from plinth.llm.base import ChatOptions, ChatResult, Message, ProviderError, Usage

_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class BedrockModel:
    """``converse`` / ``converse_stream`` on ``bedrock-runtime``; ``client`` is for tests (a Stubber)."""

    def __init__(self, model_id: str, region: str | None = None, *, client: Any = None) -> None:
        self.name = model_id
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("bedrock-runtime", region_name=self.region)
        return self._client

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        response = await asyncio.to_thread(self._call, "converse", messages, options)
        content = response["output"]["message"]["content"]
        usage = response.get("usage", {})
        return ChatResult(
            "".join(block.get("text", "") for block in content),
            _finish_reason(response.get("stopReason")),
            Usage(usage.get("inputTokens", 0), usage.get("outputTokens", 0)),
        )

    async def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        response = await asyncio.to_thread(self._call, "converse_stream", messages, options)
        events = iter(response["stream"])
        while (event := await asyncio.to_thread(next, events, None)) is not None:
            if text := event.get("contentBlockDelta", {}).get("delta", {}).get("text"):
                yield text

    def _call(self, operation: str, messages: list[Message], options: ChatOptions | None) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**converse_request(self.name, messages, options))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise ProviderError(status, f"{error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise ProviderError(None, str(exc)) from exc


def converse_request(model_id: str, messages: list[Message], options: ChatOptions | None) -> dict[str, Any]:
    """The Converse request: system turns go to ``system``, the rest to ``messages``."""
    options = options or ChatOptions()
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": [
            {"role": m["role"], "content": [{"text": m["content"]}]}
            for m in messages
            if m["role"] != "system"
        ],
    }
    if system := [{"text": m["content"]} for m in messages if m["role"] == "system"]:
        request["system"] = system
    config = {
        "maxTokens": options.max_tokens,
        "temperature": options.temperature,
        "topP": options.top_p,
        "stopSequences": list(options.stop) or None,
    }
    if config := {k: v for k, v in config.items() if v is not None}:
        request["inferenceConfig"] = config
    return request


def _finish_reason(stop_reason: str | None) -> str | None:
    return _FINISH_REASONS.get(stop_reason, stop_reason) if stop_reason else None
