"""Agent definitions and the calculator: shapes are checked with the exact field named; arithmetic is
parsed, never evaluated."""

from __future__ import annotations

import pytest
from agent_fakes import FUNCTION

from plinth.agents import AgentSpecError, CalculatorError, calculate, parse_agent, parse_decision

BASE = {"name": "helper", "model": "m", "instructions": "Help."}


@pytest.mark.parametrize(
    ("expression", "value"),
    [("(12 + 30) * 2", "84"), ("7 / 2", "3.5"), ("2 ** 10", "1024"), ("2^3", "8"), ("-4 + 10 % 3", "-3"),
     ("1e3 / 4", "250"), ("0.1 + 0.2", "0.3"), ("17 // 5", "3")],
)  # fmt: skip
def test_calculator_computes(expression: str, value: str) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('id')", "abs(-1)", "x + 1", "'a' * 3", "1 / 0", "9 ** 9999", "1 +", "[1][0]"],
)
def test_calculator_refuses_anything_else(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculate(expression)


def test_defaults_and_tool_names() -> None:
    tools = [{"type": "calculator"}, {"type": "knowledge_base", "knowledge_base_id": "my movies"},
             {"type": "sql", "dataset": "costs"}, FUNCTION]  # fmt: skip
    spec = parse_agent({**BASE, "tools": tools})
    assert spec.max_steps == 8 and spec.guardrail is None
    assert [t.name for t in spec.tools] == ["calculator", "search_my_movies", "query_costs", "book_meeting"]
    assert spec.to_json()["tools"][1] == {"type": "knowledge_base", "name": "search_my_movies",
                                          "knowledge_base_id": "my movies"}  # fmt: skip
    assert parse_agent(spec.to_json()).to_json() == spec.to_json()  # stored and read back unchanged


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"name": ""}, "name"),
        ({"model": 3}, "model"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 51}, "max_steps"),
        ({"color": "red"}, "color"),
        ({"tools": {}}, "tools"),
        ({"tools": [{"type": "web"}]}, "tools.0.type"),
        ({"tools": [{"type": "sql"}]}, "tools.0.dataset"),
        ({"tools": [{"type": "sql", "dataset": "c", "top_k": 3}]}, "tools.0.top_k"),
        ({"tools": [{"type": "knowledge_base", "knowledge_base_id": "k", "top_k": 99}]}, "tools.0.top_k"),
        ({"tools": [{"type": "calculator"}, {"type": "calculator"}]}, "tools.1.name"),
        ({"tools": [{"type": "calculator", "name": "final_answer"}]}, "tools.0.name"),
        ({"tools": [{"type": "calculator", "requireConfirmation": "yes"}]}, "tools.0.requireConfirmation"),
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools.0.function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
         "tools.0.function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}}}]},
         "tools.0.function.parameters"),
        ({"guardrail": {"guardrailIdentifier": ""}}, "guardrail.guardrailIdentifier"),
        ({"guardrail": {"id": "x"}}, "guardrail.id"),
    ],
)  # fmt: skip
def test_mistakes_name_the_field(change: dict, param: str) -> None:
    with pytest.raises(AgentSpecError) as exc:
        parse_agent({**BASE, **change})
    assert exc.value.param == param, exc.value


def test_decisions_parse_or_say_why() -> None:
    spec = parse_agent({**BASE, "tools": [{"type": "calculator"}]})
    decision = parse_decision(
        '{"thought": "t", "tool": "calculator", "tool_input": {"expression": "1"}}', spec
    )
    assert (decision.tool, decision.arguments, decision.answer) == ("calculator", {"expression": "1"}, None)
    assert parse_decision('{"final_answer": "done"}', spec).answer == "done"
    with pytest.raises(ValueError, match="unknown tool"):
        parse_decision('{"tool": "web", "tool_input": {}}', spec)
