"""An agent's definition: a model, instructions, an optional guardrail, a step limit and tools.

:func:`parse_agent` checks the shape of a create/update body and returns an :class:`AgentSpec`; every
mistake is an :class:`AgentSpecError` naming the field (``tools.1.function.parameters``). What exists is
the caller's to check (the model, knowledge bases, datasets, other agents, the guardrail): the spec is
plain data and knows no tenants::

    spec = parse_agent({"name": "helper", "model": "smollm2-135m-instruct", "instructions": "Be brief.",
                        "tools": [{"type": "calculator"}]})
    spec.tools[0].name                                    # 'calculator'

Each tool has a ``name`` the model calls it by: given, else derived from what it points at
(``search_movies`` for the ``movies`` knowledge base, ``query_costs`` for the ``costs`` dataset, the
function's own name; an agent tool's name is filled in by the caller from the agent it names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from plinth.llm import GrammarError, GrammarSpec
from plinth.llm.grammar import grammar_definition

__all__ = [
    "DEFAULT_MAX_STEPS",
    "FINAL_ANSWER",
    "MAX_STEPS",
    "TOOL_TYPES",
    "AgentSpec",
    "AgentSpecError",
    "ToolSpec",
    "parse_agent",
    "tool_name",
]

TOOL_TYPES = ("knowledge_base", "sql", "calculator", "function", "agent")
DEFAULT_MAX_STEPS = 8
MAX_STEPS = 50
FINAL_ANSWER = "final_answer"  # the decision key that ends the loop; no tool may take the name
MAX_INSTRUCTIONS = 8000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEYS = {"name", "model", "instructions", "description", "guardrail", "max_steps", "tools"}
_TOOL_KEYS = {
    "knowledge_base": {"knowledge_base_id", "filter", "top_k"},
    "sql": {"dataset"},
    "calculator": set(),
    "function": {"function"},
    "agent": {"agent_id"},
}
_COMMON_KEYS = {"type", "name", "description", "requireConfirmation"}


class AgentSpecError(ValueError):
    """A body the caller must fix; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class ToolSpec:
    """One tool as the agent was given it; ``config`` holds the type's own fields as sent."""

    type: str
    name: str
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    require_confirmation: bool = False

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of this tool's arguments (what the model must fill in)."""
        return tool_parameters(self)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "name": self.name, **self.config}
        if self.description:
            body["description"] = self.description
        if self.require_confirmation:
            body["requireConfirmation"] = True
        return body


@dataclass(slots=True)
class AgentSpec:
    name: str
    model: str
    instructions: str
    tools: list[ToolSpec] = field(default_factory=list)
    description: str = ""
    guardrail: dict[str, str] | None = None  # {"guardrailIdentifier", "guardrailVersion"?}
    max_steps: int = DEFAULT_MAX_STEPS

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "instructions": self.instructions,
            "description": self.description,
            "guardrail": self.guardrail,
            "max_steps": self.max_steps,
            "tools": [t.to_json() for t in self.tools],
        }
        return body


def parse_agent(body: Any) -> AgentSpec:
    """The agent in ``body`` (a create/update request), checked; AgentSpecError naming the field."""
    if not isinstance(body, dict):
        raise AgentSpecError("The body must be a JSON object.")
    if unknown := sorted(set(body) - _KEYS):
        raise AgentSpecError(f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
    name = _text(body, "name", 64)
    model, instructions = _text(body, "model", 500), _text(body, "instructions", MAX_INSTRUCTIONS)
    description = _optional_text(body, "description", 1000)
    steps = body.get("max_steps", DEFAULT_MAX_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise AgentSpecError(f"max_steps must be an integer from 1 to {MAX_STEPS}.", "max_steps")
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        raise AgentSpecError("tools must be a list.", "tools")
    specs = [_tool(raw, f"tools.{i}") for i, raw in enumerate(tools)]
    spec = AgentSpec(name, model, instructions, specs, description, _guardrail(body.get("guardrail")), steps)
    check_tool_names(spec, unnamed_agents=True)
    return spec


def check_tool_names(spec: AgentSpec, *, unnamed_agents: bool = False) -> None:
    """Tool names are unique and valid; ``unnamed_agents`` lets agent tools wait for the name the
    caller gives them (call again once it did)."""
    seen: set[str] = set()
    for i, tool in enumerate(spec.tools):
        if unnamed_agents and tool.type == "agent" and not tool.name:
            continue
        if not _NAME.match(tool.name) or tool.name == FINAL_ANSWER:
            message = f"tool name {tool.name!r} must match [A-Za-z0-9_-]{{1,64}} and not be {FINAL_ANSWER!r}."
            raise AgentSpecError(message, f"tools.{i}.name")
        if tool.name in seen:
            raise AgentSpecError(f"Two tools are named {tool.name!r}; give one a name.", f"tools.{i}.name")
        seen.add(tool.name)


def tool_name(text: str) -> str:
    """``text`` made into a tool name (``movies-2024`` -> ``movies-2024``, ``my kb`` -> ``my_kb``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:64] or "tool"


def tool_parameters(tool: ToolSpec) -> dict[str, Any]:
    """The argument schema per tool type: short strings keep a small model's decisions short."""
    if tool.type == "function":
        return tool.config["function"].get("parameters") or {"type": "object", "properties": {}}
    field_name, max_length = {
        "knowledge_base": ("query", 150),
        "sql": ("question", 200),
        "agent": ("input", 300),
        "calculator": ("expression", 100),
    }[tool.type]
    prop: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": max_length}
    if tool.type == "calculator":
        prop["pattern"] = r"^[0-9.+\-*/%() ]+$"  # arithmetic only, so a small model cannot wander
    return {"type": "object", "properties": {field_name: prop}, "required": [field_name],
            "additionalProperties": False}  # fmt: skip


def _tool(raw: Any, param: str) -> ToolSpec:
    if not isinstance(raw, dict):
        raise AgentSpecError("A tool must be an object.", param)
    kind = raw.get("type")
    if kind not in TOOL_TYPES:
        raise AgentSpecError(f"type must be one of {', '.join(TOOL_TYPES)}.", f"{param}.type")
    if unknown := sorted(set(raw) - _COMMON_KEYS - _TOOL_KEYS[kind]):
        raise AgentSpecError(
            f"Unknown field(s) for a {kind} tool: {', '.join(unknown)}.", f"{param}.{unknown[0]}"
        )
    confirm = raw.get("requireConfirmation", False)
    if not isinstance(confirm, bool):
        raise AgentSpecError("requireConfirmation must be true or false.", f"{param}.requireConfirmation")
    description = _optional_text(raw, "description", 1000, param)
    config = {key: raw[key] for key in _TOOL_KEYS[kind] if key in raw}
    default = _check_config(kind, config, param)
    name = raw.get("name", default)
    if not isinstance(name, str):
        raise AgentSpecError("name must be a string.", f"{param}.name")
    return ToolSpec(kind, name, description, config, confirm)


def _check_config(kind: str, config: dict[str, Any], param: str) -> str:
    """Check the type's own fields; return the tool's default name."""
    if kind == "knowledge_base":
        kb = _text(config, "knowledge_base_id", 64, param)
        top_k = config.get("top_k", 5)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise AgentSpecError("top_k must be an integer from 1 to 20.", f"{param}.top_k")
        if "filter" in config and not isinstance(config["filter"], dict):
            raise AgentSpecError("filter must be a Bedrock metadata filter object.", f"{param}.filter")
        return f"search_{tool_name(kb)}"
    if kind == "sql":
        return f"query_{tool_name(_text(config, 'dataset', 64, param))}"
    if kind == "agent":
        _text(config, "agent_id", 64, param)
        return ""  # the caller names it after the agent
    if kind == "function":
        return _function(config.get("function"), f"{param}.function")
    return "calculator"


def _function(fn: Any, param: str) -> str:
    if not isinstance(fn, dict):
        raise AgentSpecError("function must be an object {name, description?, parameters}.", param)
    if unknown := sorted(set(fn) - {"name", "description", "parameters"}):
        raise AgentSpecError(f"Unknown field(s): {', '.join(unknown)}.", f"{param}.{unknown[0]}")
    name = _text(fn, "name", 64, param)
    _optional_text(fn, "description", 1000, param)
    schema = fn.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise AgentSpecError("parameters must be a JSON schema of an object.", f"{param}.parameters")
    try:
        grammar_definition(GrammarSpec.json_schema(schema, f"{param}.parameters"))
    except GrammarError as exc:
        raise AgentSpecError(exc.message, exc.param) from exc
    return name


def _guardrail(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise AgentSpecError(
            "guardrail must be an object {guardrailIdentifier, guardrailVersion?}.", "guardrail"
        )
    if unknown := sorted(set(raw) - {"guardrailIdentifier", "guardrailVersion"}):
        raise AgentSpecError(f"Unknown field(s): {', '.join(unknown)}.", f"guardrail.{unknown[0]}")
    identifier = _text(raw, "guardrailIdentifier", 64, "guardrail")
    version = raw.get("guardrailVersion")
    if version is not None and (not isinstance(version, str | int) or isinstance(version, bool)):
        raise AgentSpecError("guardrailVersion must be a string.", "guardrail.guardrailVersion")
    lookup = {"guardrailIdentifier": identifier}
    return lookup if version is None else {**lookup, "guardrailVersion": str(version)}


def _text(body: dict[str, Any], key: str, max_chars: int, prefix: str = "") -> str:
    value, param = body.get(key), f"{prefix}.{key}" if prefix else key
    if not isinstance(value, str) or not value.strip():
        raise AgentSpecError(f"{key} is required (a non-empty string).", param)
    if len(value) > max_chars:
        raise AgentSpecError(f"{key} is longer than {max_chars} characters.", param)
    return value


def _optional_text(body: dict[str, Any], key: str, max_chars: int, prefix: str = "") -> str:
    if body.get(key) is None:
        return ""
    return _text(body, key, max_chars, prefix) if body[key] != "" else ""
