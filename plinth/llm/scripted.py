"""The shipped test double for :class:`~plinth.llm.base.ChatModel` (as httpx ships MockTransport).

Features are tested against it without a model: it answers from a script and records every call.

>>> import asyncio
>>> model = ScriptedModel(["Paris."])
>>> asyncio.run(model.chat([{"role": "user", "content": "Capital of France?"}])).text
'Paris.'
>>> model.calls[0].messages[0]["content"]
'Capital of France?'
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from plinth.llm.base import ChatOptions, ChatResult, Message, Usage


@dataclass(slots=True)
class ScriptedCall:
    messages: list[Message]
    options: ChatOptions | None


class ScriptedModel:
    """Replies in order from a list, or computed from the messages by a function.

    Stop strings in ``options.stop`` cut the reply as a real model would; usage counts words. Running out
    of scripted replies is an error, so a test notices an unexpected extra call.
    """

    def __init__(self, replies: list[str] | Callable[[list[Message]], str], name: str = "scripted") -> None:
        self.name = name
        self.replies = replies
        self.calls: list[ScriptedCall] = []

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        return self._reply(messages, options)

    async def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        for chunk in re.findall(r"\S*\s*", self._reply(messages, options).text):
            if chunk:
                yield chunk

    def _reply(self, messages: list[Message], options: ChatOptions | None) -> ChatResult:
        self.calls.append(
            ScriptedCall([m.copy() for m in messages], options)
        )  # a snapshot: callers reuse lists
        text = self._next_text(messages)
        for stop in options.stop if options else ():
            text = text.split(stop, 1)[0] if stop else text
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return ChatResult(text, "stop", Usage(prompt_tokens, len(text.split())))

    def _next_text(self, messages: list[Message]) -> str:
        if callable(self.replies):
            return self.replies(messages)
        index = len(self.calls) - 1
        if index >= len(self.replies):
            raise RuntimeError(f"ScriptedModel has {len(self.replies)} replies but got call {index + 1}")
        return self.replies[index]
