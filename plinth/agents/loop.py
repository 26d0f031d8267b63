"""The agent loop: the model decides -> a tool runs -> the model sees the result -> ... -> an answer.

::

    agent = Agent("agent_1", spec, chat, backend, guard)           # guard: a GuardHook, or None
    async for item in run_agent(agent, state, Invoke(text="What is 6*7?")):
        ...                                                        # Step, Step, ..., then the AgentRun

Contract:

- Each decision is one model call constrained to the decision grammar (:mod:`plinth.agents.prompts`),
  so a local model's reply always parses and its arguments fit the tool's schema. A reply that still
  does not parse (a provider without grammars, a script) is an error observation the model sees.
- At most ``spec.max_steps`` decisions per invoke; then the status is ``max_steps_reached``.
- A tool that raises is an observation ``error: ...`` (the step records ``error``); the loop goes on.
- A ``function`` tool returns control: status ``requires_action`` with the call in ``required_action``;
  the next invoke brings ``return_control_results`` and the loop goes on with them as observations.
  A tool with ``requireConfirmation`` waits the same way for ``confirmations``: approved, the call runs
  as its type (a function then returns control); denied, the model observes that the user declined.
- Under a guard: the input is checked first (blocked: status ``blocked``, the policy's message is the
  output, nothing is kept in the session); every tool result, the caller's included, is checked as
  untrusted data (blocked: the model sees that it was withheld) and datamarked; the final answer is
  checked at ``output`` (blocked: status ``blocked``). Interventions are ``guardrail`` steps.
- ``state`` (the session) is updated in place; the caller stores it after the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.agents.prompts import (
    DecisionError,
    decision_message,
    decision_options,
    history,
    observation_message,
    parse_decision,
    repeated_message,
    system_message,
    user_message,
)
from plinth.agents.spec import AgentSpec, ToolSpec
from plinth.agents.tools import ToolBackend, ToolOutcome, run_tool
from plinth.agents.types import AgentRun, Call, PendingAction, SessionState, Step, new_id
from plinth.guard import DetectContext, new_marker
from plinth.knowledge import build_citations, reference
from plinth.llm import ChatModel

if TYPE_CHECKING:
    from plinth.guard import GuardHook, GuardResult
    from plinth.knowledge import Hit

__all__ = [
    "DECLINED",
    "WITHHELD",
    "Agent",
    "Invoke",
    "ResumeError",
    "check_invoke",
    "run_agent",
    "run_to_end",
]

DECLINED = "The user declined to run this call."
WITHHELD = "The tool result was withheld by the guardrail."
HISTORY_MESSAGES = 24  # what the model sees of a session
SESSION_MESSAGES = 200  # what a session keeps


class ResumeError(ValueError):
    """An invoke that does not fit the session (results for no pending call, a missing answer...)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass(slots=True)
class Agent:
    """An agent ready to run: its id and spec, its model, its tools' backend and its guard."""

    id: str
    spec: AgentSpec
    chat: ChatModel
    backend: ToolBackend
    guard: GuardHook | None = None


@dataclass(slots=True)
class Invoke:
    """One invoke's request: new input, or answers to the pending action (call id -> output/approval)."""

    text: str | None = None
    results: dict[str, str] | None = None
    confirmations: dict[str, bool] | None = None
    run_id: str = field(default_factory=lambda: new_id("run"))
    session_id: str = field(default_factory=lambda: new_id("sess"))


def check_invoke(state: SessionState, invoke: Invoke) -> None:
    """ResumeError unless ``invoke`` answers exactly what the session waits for (or is new input)."""
    pending = state.pending
    if pending is None:
        for param, given in (
            ("return_control_results", invoke.results),
            ("confirmations", invoke.confirmations),
        ):
            if given is not None:
                raise ResumeError("The session is not waiting for results or confirmations.", param)
        if invoke.text is None:
            raise ResumeError("input is required (a non-empty string).", "input")
        return
    control = pending.type == "return_control"
    param = "return_control_results" if control else "confirmations"
    answers, other = (
        (invoke.results, invoke.confirmations) if control else (invoke.confirmations, invoke.results)
    )
    calls = ", ".join(c.call_id for c in pending.calls)
    if answers is None or other is not None or invoke.text is not None:
        raise ResumeError(f"The session waits for {param} for call(s) {calls} (and nothing else).", param)
    if set(answers) != {c.call_id for c in pending.calls}:
        raise ResumeError(f"{param} must answer exactly the call(s) {calls}.", param)


async def run_agent(agent: Agent, state: SessionState, invoke: Invoke) -> AsyncIterator[Step | AgentRun]:
    """Run (or resume) the loop; yields each trace step as it completes, then the run."""
    run = _Run(agent, state, AgentRun(invoke.run_id, agent.id, invoke.session_id))
    async for step in run.start(invoke):
        yield step
    del state.messages[:-SESSION_MESSAGES]
    yield run.result


async def run_to_end(agent: Agent, state: SessionState, invoke: Invoke) -> AgentRun:
    """:func:`run_agent` without the steps as they come: the run."""
    run: AgentRun | None = None
    async for item in run_agent(agent, state, invoke):
        run = item if isinstance(item, AgentRun) else run
    assert run is not None
    return run


class _Run:
    """One invoke's working state: the trace so far, the hits seen (for citations), the marker."""

    def __init__(self, agent: Agent, state: SessionState, result: AgentRun) -> None:
        self.agent, self.state, self.result = agent, state, result
        self.marker = new_marker() if agent.guard is not None else None
        self.hits: list[Hit] = []
        self.seen: dict[str, str] = {}  # each call made in this run (tool + arguments) -> its observation
        self.answer_only = False  # after a repeated call, the next decision may only answer

    async def start(self, invoke: Invoke) -> AsyncIterator[Step]:
        check_invoke(self.state, invoke)
        pending, self.state.pending = self.state.pending, None
        if pending is not None:
            async for step in self._resume(pending, invoke):
                yield step
            if self.result.status == "requires_action":
                return
        else:
            assert invoke.text is not None
            async for step in self._accept(invoke.text):
                yield step
            if self.result.status == "blocked":
                return
        async for step in self._loop():
            yield step

    # --- input and resuming ---------------------------------------------------------------------------

    async def _accept(self, text: str) -> AsyncIterator[Step]:
        guard = self.agent.guard
        if guard is not None:
            started = time.time()
            verdict = await guard.input(text)
            if verdict.action != "NONE":
                yield self._step("guardrail", started, extra=_verdict("input", verdict))
            if verdict.blocked:
                self._finish("blocked", verdict.text)
                return
            text = verdict.text
        self.state.messages.append(user_message(text))

    async def _resume(self, pending: PendingAction, invoke: Invoke) -> AsyncIterator[Step]:
        for call in pending.calls:
            if pending.type == "return_control":
                assert invoke.results is not None
                output = invoke.results[call.call_id]
                async for step in self._observe(call, ToolOutcome(output), time.time(), source="caller"):
                    yield step
            else:
                assert invoke.confirmations is not None
                async for step in self._confirmed(call, invoke.confirmations[call.call_id]):
                    yield step

    async def _confirmed(self, call: Call, approved: bool) -> AsyncIterator[Step]:
        tool = self.agent.spec.tool(call.name)
        if not approved or tool is None:
            observation = DECLINED if approved is False else f"error: the tool {call.name} no longer exists"
            async for step in self._observe(call, ToolOutcome(observation), time.time(), source="user"):
                yield step
        elif tool.type == "function":
            self._wait("return_control", call)
        else:
            async for step in self._act(tool, call):
                yield step

    # --- the loop -------------------------------------------------------------------------------------

    async def _loop(self) -> AsyncIterator[Step]:
        spec = self.agent.spec
        for _ in range(spec.max_steps):
            async for step in self._decide():
                yield step
            if self.result.status != "completed" or self.result.output is not None:
                return
        message = f"The agent stopped after {spec.max_steps} steps without a final answer."
        self._finish("max_steps_reached", message)

    async def _decide(self) -> AsyncIterator[Step]:
        """One decision, then the answer, the call it asks for, or the error it made."""
        spec, started = self.agent.spec, time.time()
        messages = [system_message(spec, self.marker), *history(self.state.messages, HISTORY_MESSAGES)]
        try:
            reply = await self.agent.chat.chat(messages, decision_options(spec, self.answer_only))
        except Exception as exc:  # the model could not answer at all: nothing to observe
            yield self._step("model", started, error=f"the model failed: {exc}")
            self._finish("failed", f"The model failed: {exc}")
            return
        tokens = {"prompt": reply.usage.prompt_tokens, "completion": reply.usage.completion_tokens}
        self.state.messages.append(decision_message(reply.text))
        try:
            decision = parse_decision(reply.text, spec)
        except DecisionError as exc:
            yield self._step("model", started, tokens=tokens, model_output=reply.text, error=str(exc))
            self.state.messages.append(
                user_message(f"error: {exc}. Reply with one JSON object as described.")
            )
            return
        if decision.answer is not None:
            yield self._step("model", started, tokens=tokens, model_output=reply.text)
            async for step in self._answer(decision.answer):
                yield step
            return
        call = Call(new_id("call"), decision.tool or "", decision.arguments)
        extra = {"call_id": call.call_id, "thought": decision.thought}
        yield self._step("model", started, tokens=tokens, model_output=reply.text, tool=call.name,
                         arguments=call.arguments, extra=extra)  # fmt: skip
        tool = spec.tool(call.name)
        assert tool is not None, "parse_decision checks the name"
        if (earlier := self.seen.get(_key(call))) is not None:  # a small model's loop: make it answer
            self.state.messages.append(repeated_message(call.name, earlier))
            self.answer_only = True
        elif tool.require_confirmation:
            self._wait("confirmation", call)
        elif tool.type == "function":
            self._wait("return_control", call)
        else:
            async for step in self._act(tool, call):
                yield step

    async def _act(self, tool: ToolSpec, call: Call) -> AsyncIterator[Step]:
        started = time.time()
        try:
            outcome = await run_tool(tool, call.arguments, self.agent.backend, len(self.hits) + 1)
        except Exception as exc:  # a failing tool is something the model sees, not a crash
            outcome = ToolOutcome(f"error: {exc}", extra={"error": str(exc)})
        async for step in self._observe(call, outcome, started, source="tool"):
            yield step

    async def _observe(
        self, call: Call, outcome: ToolOutcome, started: float, source: str
    ) -> AsyncIterator[Step]:
        """Record a tool result (checked as untrusted data first) and show it to the model."""
        observation, guard_step = outcome.observation, None
        if self.agent.guard is not None:
            checked = time.time()
            context = DetectContext(stage="data", query=call.name)
            [verdict] = await self.agent.guard.data([observation], context)
            observation = WITHHELD if verdict.blocked else verdict.text
            if verdict.action != "NONE":
                guard_step = (checked, _verdict("data", verdict))
        if not (guard_step and observation == WITHHELD):
            self.hits += outcome.hits
        self.seen[_key(call)] = observation
        extra = {"call_id": call.call_id, "source": source, **outcome.extra}
        yield self._step("tool", started, tokens=outcome.tokens, tool=call.name, arguments=call.arguments,
                         observation=observation, extra=extra)  # fmt: skip
        if guard_step is not None:
            yield self._step("guardrail", guard_step[0], extra=guard_step[1])
        self.state.messages.append(observation_message(call.name, observation, self.marker))

    async def _answer(self, answer: str) -> AsyncIterator[Step]:
        guard = self.agent.guard
        if guard is not None:
            started = time.time()
            sources = [hit.content for hit in self.hits]
            verdict = await guard.output(answer, DetectContext(stage="output", sources=sources))
            if verdict.action != "NONE":
                yield self._step("guardrail", started, extra=_verdict("output", verdict))
            if verdict.blocked:
                self._finish("blocked", verdict.text)
                return
            answer = verdict.text
        text, self.result.citations = _citations(answer, self.hits)
        self._finish("completed", text)

    # --- bookkeeping ----------------------------------------------------------------------------------

    def _wait(self, kind: Any, call: Call) -> None:
        self.state.pending = PendingAction(kind, [call])
        self.result.required_action = self.state.pending
        self.result.status = "requires_action"

    def _finish(self, status: Any, output: str | None) -> None:
        self.result.status, self.result.output = status, output

    def _step(self, kind: Any, started: float, **fields: Any) -> Step:
        duration = int((time.time() - started) * 1000)
        step = Step(len(self.result.trace), kind, started, duration, **fields)
        self.result.trace.append(step)
        return step


def _key(call: Call) -> str:
    return f"{call.name}:{json.dumps(call.arguments, sort_keys=True)}"


def _verdict(stage: str, verdict: GuardResult) -> dict[str, Any]:
    action = "BLOCKED" if verdict.blocked else "MASKED"
    return {"stage": stage, "action": action, "assessments": verdict.assessments}


def _citations(answer: str, hits: list[Hit]) -> tuple[str, list[dict[str, Any]]]:
    """The answer's citations over every passage shown to the model: its ``[n]`` markers (or the titles
    it names); an answer that points at none cites all of them, as a whole."""
    text, citations = build_citations(answer, hits)
    if citations or not hits or not text:
        return text, citations
    part = {"textResponsePart": {"text": text, "span": {"start": 0, "end": len(text)}}}
    return text, [{"generatedResponsePart": part, "retrievedReferences": [reference(h) for h in hits]}]
