"""What a run produces and what a session keeps: trace steps, tool calls, the pending action, the run.

Every type has ``to_json`` (the HTTP shape) and the session types ``from_json`` (they live in the control
plane between invokes). A :class:`Step` is one entry of the trace::

    {"index": 0, "type": "model", "started_at": 1733300000.12, "duration_ms": 830,
     "tokens": {"prompt": 412, "completion": 31}, "model_output": "{\"thought\": ...}",
     "tool": "calculator", "arguments": {"expression": "6*7"}}
    {"index": 1, "type": "tool", ..., "tool": "calculator", "arguments": {...}, "observation": "42"}
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from plinth.llm import Message

__all__ = [
    "STATUSES",
    "AgentRun",
    "Call",
    "PendingAction",
    "SessionState",
    "Status",
    "Step",
    "new_id",
]

Status = Literal["completed", "requires_action", "max_steps_reached", "blocked", "failed"]
STATUSES: tuple[Status, ...] = ("completed", "requires_action", "max_steps_reached", "blocked", "failed")
StepType = Literal["model", "tool", "guardrail"]


def new_id(prefix: str) -> str:
    """``agent_3f9c...``, ``run_...``, ``call_...``: a prefix and 24 random hex digits."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(slots=True)
class Step:
    """One trace entry: a model decision, a tool call and its result, or a guardrail check."""

    index: int
    type: StepType
    started_at: float
    duration_ms: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    model_output: str | None = None
    tool: str | None = None
    arguments: Any = None
    observation: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # call_id, guardrail stage/action, nested trace

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "started_at": round(self.started_at, 3),
            "duration_ms": self.duration_ms,
            "tokens": dict(self.tokens),
        }
        optional = ("model_output", "tool", "arguments", "observation", "error")
        body |= {key: getattr(self, key) for key in optional if getattr(self, key) is not None}
        return body | self.extra


@dataclass(slots=True)
class Call:
    """A tool call the model decided on; ``call_id`` names it in ``required_action`` and its answers."""

    call_id: str
    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Call:
        return cls(raw["call_id"], raw["name"], raw["arguments"])


@dataclass(slots=True)
class PendingAction:
    """What a session waits for: the caller to run a function (``return_control``) or a person to
    approve a call (``confirmation``)."""

    type: Literal["return_control", "confirmation"]
    calls: list[Call]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "calls": [c.to_json() for c in self.calls]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PendingAction:
        return cls(raw["type"], [Call.from_json(c) for c in raw["calls"]])


@dataclass(slots=True)
class SessionState:
    """A conversation with one agent: the messages so far (no system prompt: it is rebuilt from the
    agent each run, so an edited agent applies at once) and the action it waits for, if any."""

    messages: list[Message] = field(default_factory=list)
    pending: PendingAction | None = None

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "pending": self.pending.to_json() if self.pending else None}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SessionState:
        pending = raw.get("pending")
        return cls(list(raw.get("messages", [])), PendingAction.from_json(pending) if pending else None)


@dataclass(slots=True)
class AgentRun:
    """The result of one invoke (see the HTTP contract in :mod:`plinth.server.agents_api`)."""

    id: str
    agent_id: str
    session_id: str
    status: Status = "completed"
    output: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    required_action: PendingAction | None = None
    trace: list[Step] = field(default_factory=list)

    @property
    def usage(self) -> dict[str, int]:
        prompt = sum(s.tokens.get("prompt", 0) for s in self.trace)
        completion = sum(s.tokens.get("completion", 0) for s in self.trace)
        steps = sum(1 for s in self.trace if s.type == "model")
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion, "model_steps": steps}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "agent.run",
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "status": self.status,
            "output": self.output,
            "citations": self.citations,
            "required_action": self.required_action.to_json() if self.required_action else None,
            "trace": [s.to_json() for s in self.trace],
            "usage": self.usage,
        }
