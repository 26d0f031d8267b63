"""The one seam every feature talks to: a chat model, wherever it runs.

Features (agents, knowledge, sql, guard, evals) take a :class:`ChatModel` and never learn whether it is
the in-process engine, an OpenAI-compatible server, Bedrock, or the scripted test double. The protocol is
two verbs over the same inputs: ``chat`` for a whole reply, ``stream`` for text deltas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    from plinth.llm.grammar import GrammarSpec

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat turn, OpenAI-shaped: ``{"role": "user", "content": "Hi"}``."""

    role: Role
    content: str


@dataclass(slots=True)
class ChatOptions:
    """Per-call generation settings; ``None`` means "the provider's default".

    Providers map what they support and ignore the rest (Bedrock has no seed or penalties).
    ``response_format`` asks for structured output (``GrammarSpec.json_schema(schema)``, a regex, a
    choice list or a grammar): the local model enforces it token by token.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Sequence[str] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: GrammarSpec | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class ChatResult:
    """A whole reply. ``finish_reason`` is ``"stop"``, ``"length"`` or a provider-specific reason."""

    text: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)


class ProviderError(RuntimeError):
    """A remote provider refused or failed a call; ``status`` is its HTTP status (None: no response)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"provider error {status}: {message}" if status else f"provider error: {message}")
        self.status = status
        self.message = message


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat messages.

    >>> from plinth.llm import ScriptedModel
    >>> isinstance(ScriptedModel(["hi"]), ChatModel)
    True
    """

    name: str

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        """The whole reply to ``messages``."""
        ...

    def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        """The reply as text deltas; their concatenation equals ``chat(...).text``."""
        ...
