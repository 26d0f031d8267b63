"""Running a tool call: the vetted paths behind each tool type, and their results as observations.

The loop calls :func:`run_tool`; what touches tenants and stores is the caller's :class:`ToolBackend`
(the server's retrieves from the tenant's knowledge base, asks its dataset through the SQL ask path and
runs another agent's loop). The calculator runs here. Function tools never run here: they return
control to the caller (see :mod:`plinth.agents.loop`).

Observations are bounded text (:data:`MAX_OBSERVATION` characters): a model's context is small, and a
tool's output is untrusted data that the loop checks and marks before the model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plinth.agents.calculator import calculate
from plinth.agents.spec import ToolSpec
from plinth.agents.types import AgentRun

if TYPE_CHECKING:
    from plinth.knowledge import Hit
    from plinth.sql import AskResult

__all__ = ["MAX_OBSERVATION", "ToolBackend", "ToolOutcome", "run_tool"]

MAX_OBSERVATION = 2000
MAX_PASSAGE = 500
MAX_ROWS = 10


class ToolBackend(Protocol):
    """What the tools reach beyond the loop, one coroutine per tool type."""

    async def retrieve(self, tool: ToolSpec, query: str) -> list[Hit]:
        """Passages from ``tool``'s knowledge base (its ``filter`` and ``top_k`` applied)."""
        ...

    async def ask(self, tool: ToolSpec, question: str) -> AskResult:
        """``question`` asked of ``tool``'s dataset through the vetted SQL ask path."""
        ...

    async def invoke_agent(self, tool: ToolSpec, text: str) -> AgentRun:
        """A run of the agent ``tool`` names, on ``text``, in a fresh session (one level deeper)."""
        ...


@dataclass(slots=True)
class ToolOutcome:
    """A tool's result: the observation text, plus retrieved passages (for citations), a nested run's
    trace and the tokens it spent."""

    observation: str
    hits: list[Hit] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})


async def run_tool(
    tool: ToolSpec, arguments: dict[str, Any], backend: ToolBackend, first_source: int
) -> ToolOutcome:
    """Run one call; exceptions propagate (the loop turns them into an error observation).
    ``first_source`` numbers the passages a knowledge-base search returns ([n], across the run)."""
    if tool.type == "calculator":
        expression = _arg(arguments, "expression")
        return ToolOutcome(f"{expression.strip()} = {calculate(expression)}")
    if tool.type == "knowledge_base":
        hits = await backend.retrieve(tool, _arg(arguments, "query"))
        return ToolOutcome(_passages(hits, first_source), hits=hits)
    if tool.type == "sql":
        return ToolOutcome(_rows(await backend.ask(tool, _arg(arguments, "question"))))
    if tool.type == "agent":
        return _delegated(await backend.invoke_agent(tool, _arg(arguments, "input")))
    raise AssertionError(f"{tool.type} tools are not run by run_tool")


def _arg(arguments: dict[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the argument {key!r} must be a non-empty string")
    return value


def _passages(hits: Sequence[Hit], first: int) -> str:
    if not hits:
        return "No passages found."
    parts = []
    for n, hit in enumerate(hits, start=first):
        title = hit.metadata.get("title")
        head = f"[{n}] {title}: " if title else f"[{n}] "
        parts.append(head + _clip(hit.content, MAX_PASSAGE))
    return _clip("\n".join(parts), MAX_OBSERVATION)


def _rows(result: AskResult) -> str:
    lines = [f"Answer: {result.answer}", f"SQL: {result.sql}", " | ".join(result.columns)]
    lines += [" | ".join(str(v) for v in row) for row in result.rows[:MAX_ROWS]]
    if len(result.rows) > MAX_ROWS or result.truncated:
        lines.append(
            f"({len(result.rows)} rows{' or more' if result.truncated else ''}; first {MAX_ROWS} shown)"
        )
    return _clip("\n".join(lines), MAX_OBSERVATION)


def _delegated(run: AgentRun) -> ToolOutcome:
    usage = run.usage
    tokens = {"prompt": usage["prompt_tokens"], "completion": usage["completion_tokens"]}
    extra = {"agent_run": {"id": run.id, "status": run.status, "trace": [s.to_json() for s in run.trace]}}
    if run.status == "completed" and run.output is not None:
        return ToolOutcome(_clip(run.output, MAX_OBSERVATION), extra=extra, tokens=tokens)
    text = f"The agent ended with status {run.status}" + (f": {run.output}" if run.output else ".")
    return ToolOutcome(_clip(text, MAX_OBSERVATION), extra=extra, tokens=tokens)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
