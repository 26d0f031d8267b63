"""Agents: a model that decides, step by step, which tool to call until it can answer.

An :class:`AgentSpec` (from :func:`parse_agent`) names a model, instructions, a guardrail, a step limit
and tools (knowledge base, SQL dataset, calculator, caller-run functions, other agents).
:func:`run_agent` runs the loop for an :class:`Agent` (the spec with its chat model, a
:class:`ToolBackend` and a guard) over a :class:`SessionState`, yielding each :class:`Step` and then
the :class:`AgentRun`. The server stores agents and sessions in the control plane and provides the
backend; tests pass a :class:`~plinth.llm.ScriptedModel` and a fake backend.
"""

from plinth.agents.calculator import CalculatorError, calculate
from plinth.agents.loop import (
    DECLINED,
    WITHHELD,
    Agent,
    Invoke,
    ResumeError,
    check_invoke,
    run_agent,
    run_to_end,
)
from plinth.agents.prompts import decision_format, parse_decision
from plinth.agents.spec import (
    DEFAULT_MAX_STEPS,
    MAX_STEPS,
    TOOL_TYPES,
    AgentSpec,
    AgentSpecError,
    ToolSpec,
    check_tool_names,
    parse_agent,
    tool_name,
)
from plinth.agents.tools import ToolBackend, ToolOutcome
from plinth.agents.types import STATUSES, AgentRun, Call, PendingAction, SessionState, Step, new_id

__all__ = [
    "DECLINED",
    "DEFAULT_MAX_STEPS",
    "MAX_STEPS",
    "STATUSES",
    "TOOL_TYPES",
    "WITHHELD",
    "Agent",
    "AgentRun",
    "AgentSpec",
    "AgentSpecError",
    "CalculatorError",
    "Call",
    "Invoke",
    "PendingAction",
    "ResumeError",
    "SessionState",
    "Step",
    "ToolBackend",
    "ToolOutcome",
    "ToolSpec",
    "calculate",
    "check_invoke",
    "check_tool_names",
    "decision_format",
    "new_id",
    "parse_agent",
    "parse_decision",
    "run_agent",
    "run_to_end",
    "tool_name",
]
