"""Doubles for the agent tests (no tests here): a tool backend with canned results, a guard that blocks
marked text, and helpers to script decisions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from plinth.agents import Agent, AgentRun, AgentSpec, Invoke, SessionState, ToolSpec, parse_agent, run_to_end
from plinth.guard.verdict import GuardResult
from plinth.knowledge import Hit
from plinth.sql import AskResult

FUNCTION = {
    "type": "function",
    "function": {
        "name": "book_meeting",
        "description": "Book a meeting room.",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {"type": "string", "maxLength": 20},
                "hours": {"type": "integer", "minimum": 1, "maximum": 12},
            },
            "required": ["room", "hours"],
            "additionalProperties": False,
        },
    },
}


def call(tool: str, thought: str = "I should use a tool.", **arguments: Any) -> str:
    """A scripted tool decision, as the grammar writes it."""
    return json.dumps({"thought": thought, "tool": tool, "tool_input": arguments})


def answer(text: str) -> str:
    return json.dumps({"final_answer": text})


def spec(*tools: dict[str, Any], max_steps: int = 8, name: str = "helper") -> AgentSpec:
    body = {"name": name, "model": "m", "instructions": "Help the user.", "max_steps": max_steps}
    return parse_agent({**body, "tools": list(tools)})


def hit(n: int, title: str, content: str) -> Hit:
    return Hit(
        f"doc{n}#0", f"doc{n}", content, 0.5, {"title": title}, {"type": "WEB", "url": f"https://x/{n}"}
    )


class FakeBackend:
    """Canned results per tool type; a tool whose result is an exception raises it."""

    def __init__(
        self, hits: Sequence[Hit] = (), ask: Any = None, agents: dict[str, Agent] | None = None
    ) -> None:
        self.hits, self.ask_result, self.agents = list(hits), ask, agents or {}
        self.calls: list[tuple[str, str]] = []

    async def retrieve(self, tool: ToolSpec, query: str) -> list[Hit]:
        self.calls.append((tool.name, query))
        return self.hits

    async def ask(self, tool: ToolSpec, question: str) -> AskResult:
        self.calls.append((tool.name, question))
        if isinstance(self.ask_result, Exception):
            raise self.ask_result
        return self.ask_result

    async def invoke_agent(self, tool: ToolSpec, text: str) -> AgentRun:
        self.calls.append((tool.name, text))
        return await run_to_end(self.agents[tool.config["agent_id"]], SessionState(), Invoke(text=text))


class MarkerGuard:
    """Blocks any text containing ``word``, at every stage; masks digits at output when ``mask``."""

    def __init__(self, word: str = "IGNORE") -> None:
        self.word = word
        self.checked: list[tuple[str, str]] = []

    def _check(self, stage: str, text: str) -> GuardResult:
        self.checked.append((stage, text))
        if self.word in text:
            return GuardResult("GUARDRAIL_INTERVENED", "Sorry, blocked.", True, [], [{"stage": stage}])
        return GuardResult("NONE", text, False, [], [])

    async def input(self, text: str) -> GuardResult:
        return self._check("input", text)

    async def data(self, texts: Sequence[str], context: Any = None) -> list[GuardResult]:
        return [self._check("data", t) for t in texts]

    async def output(self, text: str, context: Any = None) -> GuardResult:
        return self._check("output", text)


def ask_result(answer_text: str = "The total cost is 1234.5.") -> AskResult:
    return AskResult("q", "SELECT SUM(cost) AS total FROM cur", ["total"], [[1234.5]], None, answer_text, 1)
