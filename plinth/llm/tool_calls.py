"""Function tools as data: what a request offers the model, what it must do with them, what it called.

The server turns OpenAI's ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` into these; a
:class:`~plinth.llm.tool_formats.ToolFormat` writes them into the prompt in the model's own convention,
builds the grammar that forces a call, and reads calls back out of the generated text.

>>> ToolChoice.parse("required").forces_call
True
>>> ToolChoice.parse({"type": "function", "function": {"name": "f"}}).name
'f'
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolCall", "ToolChoice", "ToolSpec", "new_call_id"]

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One function the model may call; ``parameters`` is a JSON schema for its arguments object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_openai(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}``: the shape chat templates take as ``tools``."""
        function = {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}
        return {"type": "function", "function": function}


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``mode`` is ``none`` (answer in text), ``auto`` (the model decides), ``required`` (at least one
    call) or ``named`` (exactly a call of ``name``)."""

    mode: str = "auto"
    name: str | None = None

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | None) -> ToolChoice:
        """OpenAI's ``tool_choice`` (a mode string or ``{"type": "function", "function": {"name"}}``)."""
        if value is None:
            return cls()
        if isinstance(value, str):
            if value not in ("none", "auto", "required"):
                raise ValueError(f"unknown tool_choice {value!r}: use none, auto, required or a function")
            return cls(value)
        return cls("named", str(value["function"]["name"]))

    @property
    def forces_call(self) -> bool:
        return self.mode in ("required", "named")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: ``arguments`` is JSON text (OpenAI's shape), an object."""

    id: str
    name: str
    arguments: str

    def as_openai(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return call if index is None else {"index": index, **call}

    def arguments_object(self) -> dict[str, Any]:
        """The arguments parsed (chat templates want an object, not text); ValueError when not one."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError("tool call arguments must be a JSON object")
        return value


def new_call_id(length: int | None = None) -> str:
    """``call_`` and 24 random characters (OpenAI's look), or exactly ``length`` alphanumerics (Mistral's
    templates insist on nine)."""
    if length is not None:
        return "".join(secrets.choice(_ALNUM) for _ in range(length))
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))
