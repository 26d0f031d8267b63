"""Chat's guard flow: screen the messages, plant a canary, check the replies (whole or streamed).

RAG's flow lives in :mod:`plinth.knowledge.rag` and SQL ask's in :mod:`plinth.sql.ask`; this one serves
the generating routes (chat completions, completions, LMI invocations). It takes the caller's guardrail
for one request as a :class:`ChatGuard` (the server's ``RequestGuard`` is one: policy, tenant and audit
stay with it) and knows chat messages, finished choices and streamed ``(choice index, TextDelta)`` events:

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
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from plinth.guard.canary import canary_instruction
from plinth.guard.stream import StreamGuard, StreamStep
from plinth.guard.types import DetectContext, Stage
from plinth.guard.verdict import GuardResult

if TYPE_CHECKING:  # the engine and the llm layer load torch; importing plinth.guard must not
    from plinth.engine import TokenLogprob

__all__ = [
    "CONTENT_FILTER",
    "ChatGuard",
    "Deltas",
    "GuardedChoice",
    "blocked_events",
    "guard_choices",
    "guard_events",
    "output_context",
    "screen_messages",
    "screen_prompts",
    "with_canary",
]

CONTENT_FILTER = "content_filter"  # OpenAI's finish_reason for filtered content
INTERVENED = "GUARDRAIL_INTERVENED"

Deltas = AsyncGenerator[tuple[int, Any], None]  # (choice index, plinth.llm.TextDelta), in arrival order


class ChatGuard(Protocol):
    """One request's guardrail as the chat flow uses it; every check is recorded for the response."""

    results: list[tuple[Stage, GuardResult]]

    async def inputs(self, texts: Sequence[str]) -> list[GuardResult]: ...

    async def output(self, text: str, context: DetectContext | None = None) -> GuardResult: ...

    def record(self, stage: Stage, result: GuardResult) -> None:
        """Add a verdict reached elsewhere (a stream guard's)."""
        ...

    def stream_guard(self, context: DetectContext) -> StreamGuard:
        """A fresh stream guard for one streamed reply, under this request's policy and tenant."""
        ...


class GuardedChoice(Protocol):
    """A finished reply as the output check rewrites it (the server's ``Choice``)."""

    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob]
    finish_reason: str | None


async def screen_messages(guard: ChatGuard, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with every user turn checked and masked where the policy says so (see the module
    docstring); ``guard.blocked`` tells whether one was blocked."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].strip()]
    verdicts = await guard.inputs([messages[i]["content"] for i in users])
    screened = list(messages)
    for i, verdict in zip(users, verdicts, strict=True):
        screened[i] = {**messages[i], "content": verdict.text}
    return screened


async def screen_prompts(guard: ChatGuard, prompts: Sequence[str]) -> list[str]:
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


async def blocked_events(guard: ChatGuard, num: int) -> Deltas:
    """The events of a request blocked at input: each choice is the policy's message, no tokens spent."""
    from plinth.llm import TextDelta  # here, not at import time: it loads the engine

    message = next(r.text for _, r in guard.results if r.blocked)
    for index in range(num):
        yield index, TextDelta(message, [], None, CONTENT_FILTER, 0, 0)


def output_context(canary: str | None) -> DetectContext:
    """The output check's context: this request's canary, if it planted one."""
    return DetectContext(stage="output", canaries=[canary] if canary else [])


async def guard_choices(guard: ChatGuard, choices: Sequence[GuardedChoice], canary: str | None) -> None:
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


async def guard_events(guard: ChatGuard, events: Deltas, num_jobs: int, canary: str | None) -> Deltas:
    """``events`` with each choice's text released only once checked. A blocked choice ends at once
    with one delta carrying the policy's message and ``content_filter``; when every choice is done the
    underlying streams are closed (aborting whatever the engine was still generating for a blocked one).
    Each choice's verdict is recorded on ``guard`` before its last delta is yielded."""
    context = output_context(canary)
    streams = [_Stream(guard.stream_guard(context)) for _ in range(num_jobs)]
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
