"""Guardrails on the generating routes: screen the messages, plant a canary, check the replies.

The route-independent half (policy, checks, the ``guardrail`` field) is :mod:`plinth.server.guard_hooks`;
this module knows chat messages, :class:`~plinth.server.generation.Choice` s and streamed deltas:

- **input**: every user turn is checked, not just the last one. The client sends the whole history on
  every call and may write any of it, so an earlier turn is no more trusted than the last; and a value
  masked in the last turn must not reach the model unmasked from an earlier one. (The cost: a long
  conversation is re-checked on each call.) System and assistant turns are the application's own.
  A block anywhere means the model is not called.
- **canary**: a fresh canary per request is added to the system prompt; the output check blocks a reply
  that contains it (the model is leaking its prompt).
- **output**: a whole reply is checked once; a streamed one goes through a
  :class:`~plinth.guard.stream.StreamGuard` per choice, so only checked text leaves, and a block ends
  that choice with the policy's message and ``finish_reason: "content_filter"``.

Masked or blocked output loses its logprobs (and, whole, its token ids): they would spell out the very
tokens that were withheld. The output half serves raw-prompt routes too (``/v1/completions``,
``/invocations``), which have no system prompt to plant a canary in: they pass ``canary=None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from plinth.engine import TokenLogprob
from plinth.guard import DetectContext, StreamGuard, StreamStep, canary_instruction
from plinth.llm.local import TextDelta
from plinth.server import guardrails_api
from plinth.server.generation import Choice, Events
from plinth.server.guard_hooks import INTERVENED, RequestGuard

__all__ = [
    "CONTENT_FILTER",
    "blocked_events",
    "guard_choices",
    "guard_events",
    "output_context",
    "screen_messages",
    "screen_prompts",
    "with_canary",
]

CONTENT_FILTER = "content_filter"  # OpenAI's finish_reason for filtered content


async def screen_messages(guard: RequestGuard, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with every user turn checked and masked where the policy says so (see the module
    docstring); ``guard.blocked`` tells whether one was blocked."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].strip()]
    verdicts = await guard.inputs([messages[i]["content"] for i in users])
    screened = list(messages)
    for i, verdict in zip(users, verdicts, strict=True):
        screened[i] = {**messages[i], "content": verdict.text}
    return screened


async def screen_prompts(guard: RequestGuard, prompts: Sequence[str]) -> list[str]:
    """Raw prompts (completions, invocations) checked at input and masked where the policy says so; a
    raw prompt is all user text, so the whole of each is checked. ``guard.blocked`` tells whether one
    was blocked (then none runs, as in chat)."""
    return [verdict.text for verdict in await guard.inputs(prompts)]


def with_canary(messages: list[dict[str, str]], canary: str) -> list[dict[str, str]]:
    """The canary instruction appended to the first system message (or as a new first one)."""
    instruction = canary_instruction(canary)
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{**first, "content": f"{first['content']}\n\n{instruction}".lstrip()}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


async def blocked_events(guard: RequestGuard, num: int) -> Events:
    """The events of a request blocked at input: each choice is the policy's message, no tokens spent."""
    message = next(r.text for _, r in guard.results if r.blocked)
    for index in range(num):
        yield index, TextDelta(message, [], None, CONTENT_FILTER, 0, 0)


def output_context(canary: str | None) -> DetectContext:
    """The output check's context: this request's canary, if it planted one."""
    return DetectContext(stage="output", canaries=[canary] if canary else [])


async def guard_choices(guard: RequestGuard, choices: Sequence[Choice], canary: str | None) -> None:
    """Check each finished reply in place: masked text, or the blocked message and ``content_filter``."""
    context = output_context(canary)
    verdicts = await asyncio.gather(*(guard.output(c.text, context) for c in choices))
    for choice, verdict in zip(choices, verdicts, strict=True):
        if verdict.action == INTERVENED:
            choice.text, choice.logprobs, choice.token_ids = verdict.text, [], []
            choice.finish_reason = CONTENT_FILTER if verdict.blocked else choice.finish_reason


@dataclass(slots=True)
class _Stream:
    """One streamed choice under guard: its stream guard and the logprobs whose text is still held back."""

    guard: StreamGuard
    logprobs: list[TokenLogprob] = field(default_factory=list)
    done: bool = False

    async def feed(self, delta: Any) -> tuple[StreamStep, bool]:
        """The step to send for ``delta`` (the final one when ``delta`` ends the reply), and whether
        the text it releases was masked."""
        self.logprobs += delta.logprobs or []
        before = len(self.guard.released)
        step = await asyncio.to_thread(self.guard.feed, delta.text)
        if delta.finish_reason is not None and not step.blocked:
            tail = await asyncio.to_thread(self.guard.finish)
            step = tail if tail.blocked else StreamStep(step.text + tail.text)
        return step, not step.blocked and step.text != self.guard.released[before:]


async def guard_events(guard: RequestGuard, events: Events, num_jobs: int, canary: str | None) -> Events:
    """``events`` with each choice's text released only once checked. A blocked choice ends at once
    with one delta carrying the policy's message and ``content_filter``; when every choice is done the
    underlying streams are closed (aborting whatever the engine was still generating for a blocked one).
    Each choice's verdict is recorded on ``guard`` before its last delta is yielded."""
    engine_guard = guardrails_api.get_guard(guard.request)
    tenant_id = getattr(getattr(guard.request.state, "tenant", None), "id", None)
    context = output_context(canary)
    streams = [
        _Stream(StreamGuard(engine_guard, guard.policy, context, tenant_id=tenant_id))
        for _ in range(num_jobs)
    ]
    try:
        async for index, delta in events:
            stream = streams[index]
            if stream.done:
                continue  # a blocked choice: the rest of its tokens are dropped
            step, masked = await stream.feed(delta)
            stream.done = step.blocked or delta.finish_reason is not None
            if stream.done:
                guard.record("output", stream.guard.result())  # the stream guard's own verdict
            yield index, _released(stream, delta, step, masked)
            if all(s.done for s in streams):
                return
    finally:
        await events.aclose()


def _released(stream: _Stream, delta: Any, step: StreamStep, masked: bool) -> Any:
    """The delta the client sees: the released text with the logprobs held so far (none when masked),
    or the block."""
    if step.blocked:
        return replace(delta, text=step.message or "", logprobs=None, finish_reason=CONTENT_FILTER)
    logprobs = None
    if step.text or delta.finish_reason:
        logprobs, stream.logprobs = stream.logprobs or None, []
    return replace(delta, text=step.text, logprobs=None if masked else logprobs)
