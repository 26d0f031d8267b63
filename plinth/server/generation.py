"""One core path for every generating route: start n streams, merge their deltas, or collect them.

OpenAI chat, OpenAI completions and LMI ``/invocations`` differ only in how they read requests and shape
responses; all of them run a list of :class:`Job` s through :func:`start`, which returns an iterator of
``(job index, TextDelta)`` events. Starting waits for the first event, so request errors the engine finds
(prompt too long, token ids out of range) become a clean 400 *before* a streaming response has begun.
Closing the events iterator — a client disconnect, a cancelled task — closes every model stream, which
aborts the engine requests and frees their KV cache.

Every generation the server starts goes through :func:`open_stream` (features' through
:func:`chat_model`): it carries the tenant of the request into the engine's fair-share admission
(``SamplingParams.share_group``) and charges the tenant's tokens per minute.

Priority: jobs started while :data:`PRIORITY` holds ``BATCH_PRIORITY`` (the batch runner sets it in its
tasks) reach the engine in the batch class, which interactive requests always go ahead of; a route never
chooses its class itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from plinth.adapters import client_name
from plinth.engine import (
    INTERACTIVE_PRIORITY,
    Grammar,
    PromptTooLongError,
    SamplingParams,
    TokenLogprob,
    UnknownAdapterError,
)
from plinth.llm import ChatModel, ChatOptions, ChatView, GrammarSpec, ServedModel
from plinth.server.errors import APIError
from plinth.server.metrics import Metrics
from plinth.server.quotas import share_group

__all__ = [
    "PRIORITY", "Choice", "Events", "Job", "MeteredModel",
    "chat_model", "collect", "compile_grammar", "open_stream", "start",
]  # fmt: skip

Events = AsyncGenerator[tuple[int, Any], None]
PRIORITY: ContextVar[int] = ContextVar("plinth_priority", default=INTERACTIVE_PRIORITY)


@dataclass(slots=True)
class Job:
    """One sequence to generate: ``model.stream(prompt_ids, params, stop, request_id)``."""

    model: ServedModel
    prompt_ids: list[int]
    params: SamplingParams
    stop: tuple[str, ...] = ()
    request_id: str | None = None


@dataclass(slots=True)
class Choice:
    """A job's whole output, accumulated from its deltas."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    num_prompt_tokens: int = 0
    num_output_tokens: int = 0
    num_cached_tokens: int = 0

    def add(self, delta: Any) -> None:
        self.text += delta.text
        self.token_ids += delta.token_ids
        self.logprobs += delta.logprobs or []
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.num_prompt_tokens = delta.num_prompt_tokens
        self.num_output_tokens = delta.num_output_tokens
        self.num_cached_tokens = delta.num_cached_tokens


async def compile_grammar(model: ServedModel, spec: GrammarSpec | None) -> Grammar | None:
    """``spec`` compiled for ``model`` in a worker thread (a cache hit is instant; a large schema's first
    compile takes milliseconds); raises GrammarError, which the error handlers answer with a 400."""
    return None if spec is None else await run_in_threadpool(model.compile_grammar, spec)


async def start(jobs: Sequence[Job], metrics: Metrics) -> Events:
    """Start every job; return their merged events once the first one arrived (or raise an APIError)."""
    assert jobs, "at least one job"
    streams: list[AsyncGenerator[Any, None]] = []
    try:
        for job in jobs:
            streams.append(open_stream(job, metrics))
    except BaseException:
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
        raise
    events = _merge(streams)
    try:
        first = await anext(events)
    except (APIError, PromptTooLongError):
        await events.aclose()
        raise
    except UnknownAdapterError as exc:  # unregistered between lookup and start: as if never there
        await events.aclose()
        message = f"The model '{client_name(exc.name)}' does not exist."
        raise APIError(404, message, param="model", code="model_not_found") from exc
    except ValueError as exc:  # the engine's request checks (empty prompt, ids out of vocabulary)
        await events.aclose()
        raise APIError(400, str(exc)) from exc
    except BaseException:
        await events.aclose()
        raise
    return _prepend(first, events)


def open_stream(job: Job, metrics: Metrics) -> AsyncGenerator[Any, None]:
    """``job``'s model stream in the caller's priority class and its tenant's fair-share group, timed
    and charged to the tenant's tokens per minute (:meth:`Metrics.observe`). Raises the model's request
    errors (prompt too long) at call time."""
    params = dataclasses.replace(job.params, priority=PRIORITY.get(), share_group=share_group())
    stream = job.model.stream(job.prompt_ids, params, stop=job.stop, request_id=job.request_id)
    return metrics.observe(job.model.metrics_label, stream, params.priority)  # never an adapter's name


class MeteredModel:
    """``model`` as features (SQL ask, RAG, agents, evaluations) drive it: each of their generations
    takes :func:`open_stream`, the OpenAI routes' path, so it counts in the tenant's tokens per minute,
    its fair share and the model metrics like any completion."""

    def __init__(self, model: ServedModel, metrics: Metrics) -> None:
        self.model, self.metrics, self.name = model, metrics, model.name

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        return self.model.encode_chat(messages, tools)

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams:
        return self.model.sampling_params(options, prompt_len)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
    ) -> AsyncGenerator[Any, None]:
        return open_stream(Job(self.model, list(prompt_ids), params, tuple(stop), request_id), self.metrics)


def chat_model(model: ServedModel, metrics: Metrics) -> ChatModel:
    """``model`` behind the ChatModel protocol, metered (see :class:`MeteredModel`)."""
    return ChatView(MeteredModel(model, metrics))


async def collect(events: Events, n: int) -> list[Choice]:
    """Drain ``events`` into one :class:`Choice` per job."""
    choices = [Choice() for _ in range(n)]
    try:
        async for index, delta in events:
            choices[index].add(delta)
    finally:
        await events.aclose()
    return choices


async def _prepend(first: tuple[int, Any], events: Events) -> Events:
    try:
        yield first
        async for event in events:
            yield event
    finally:
        await events.aclose()


_DONE = object()


async def _merge(streams: list[AsyncGenerator[Any, None]]) -> Events:
    """Interleave streams as ``(index, item)`` in arrival order; the first error from any stream is raised.

    One task per stream feeds a queue. In ``finally`` every task is cancelled and awaited, and each
    task closes its stream, so leaving this iterator early leaves nothing running in the engine. One
    stream (``n`` = 1, most requests) is read directly: a task and a queue hop per token cost the event
    loop's thread CPU that a decode step on the same cores then misses.
    """
    if len(streams) == 1:
        try:
            async for item in streams[0]:
                yield 0, item
        finally:
            await streams[0].aclose()
        return
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[Any, None]) -> None:
        try:
            async for item in stream:
                await queue.put((index, item))
            await queue.put(_DONE)
        except Exception as exc:
            await queue.put(exc)
        finally:
            await stream.aclose()

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
