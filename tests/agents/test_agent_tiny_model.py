"""The real loop on a tiny random-weight model: whatever it samples, the decision grammar makes every
reply a valid decision for one of the agent's tools (or the final answer), with arguments that fit."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from agent_fakes import FUNCTION, FakeBackend, ask_result, hit, spec

from plinth.agents import Agent, Invoke, SessionState, run_to_end
from plinth.engine import EngineConfig
from plinth.llm.local import LocalModel

pytestmark = pytest.mark.slow

TOOLS = (
    {"type": "calculator"},
    {"type": "knowledge_base", "knowledge_base_id": "movies"},
    {"type": "sql", "dataset": "costs"},
    FUNCTION,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_decision_of_a_random_model_parses(tiny_checkpoint_factory, seed):
    cfg = EngineConfig(model=str(tiny_checkpoint_factory("llama")), device="cpu", dtype="float32", seed=seed)
    cfg.kv_cache_memory_gb = 0.05
    model = LocalModel.load(cfg, name="tiny")
    try:
        agent_spec = spec(*TOOLS, max_steps=2)
        backend = FakeBackend(hits=[hit(1, "Alien", "Alien (1979).")], ask=ask_result())
        agent = Agent("agent_1", agent_spec, model.as_chat_model(), backend)
        run = asyncio.run(run_to_end(agent, SessionState(), Invoke(text="What is 6 times 7?")))
    finally:
        model.shutdown()
    decisions = [s for s in run.trace if s.type == "model"]
    assert decisions and run.status in ("completed", "requires_action", "max_steps_reached")
    for step in decisions:
        assert step.error is None, step.model_output
        raw = json.loads(step.model_output)
        if "final_answer" not in raw:
            tool = agent_spec.tool(raw["tool"])
            assert tool is not None
            jsonschema.validate(raw["tool_input"], tool.parameters)
