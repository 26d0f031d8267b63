"""What an evaluation runs each item against: a target is ``async (item) -> TargetOutput``.

Contract: three builders, each over plain callables so the server (its loaded models, its knowledge and
SQL services, per tenant) and the CLI (models loaded in-process) build them the same way:
:func:`model_target` (a chat model answers the input), :func:`rag_target` (retrieve-and-generate over a
knowledge base; the retrieved chunks become the item's contexts) and :func:`sql_target` (the ask loop;
``sql_execution`` compares its rows with the item's ``reference_sql`` rows). Token counts are the chat
model's usage summed over every call the target made (a RAG or SQL answer may take several).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from plinth.evals.items import EvalItem
from plinth.llm.base import ChatModel, ChatOptions, ChatResult, Message

__all__ = ["CountingModel", "Target", "TargetOutput", "model_target", "rag_target", "sql_target"]


@dataclass(slots=True)
class TargetOutput:
    text: str
    contexts: list[str] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)  # document ids, best first (retrieval metrics)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)  # metrics only the target can compute
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the SQL that ran
    error: str | None = None


Target = Callable[[EvalItem], Awaitable[TargetOutput]]


class CountingModel:
    """A chat model that adds up the usage of every ``chat`` call (reset with :meth:`take`)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner, self.name = inner, inner.name
        self.prompt_tokens = self.completion_tokens = 0

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        result = await self.inner.chat(messages, options)
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        return result

    def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        return self.inner.stream(messages, options)

    def take(self) -> tuple[int, int]:
        counts = (self.prompt_tokens, self.completion_tokens)
        self.prompt_tokens = self.completion_tokens = 0
        return counts


def model_target(
    chat: ChatModel, *, system: str | None = None, max_tokens: int = 256, temperature: float = 0.0
) -> Target:
    """The model's reply to the item's input (after ``system``, if given)."""
    options = ChatOptions(max_tokens=max_tokens, temperature=temperature, seed=0)

    async def answer(item: EvalItem) -> TargetOutput:
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": item.input})
        result = await chat.chat(messages, options)
        usage = result.usage
        return TargetOutput(
            result.text, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
        )

    return _timed(answer)


def rag_target(chat: ChatModel, retrieve: Callable[[str], list[Any]], *, min_score: float = 0.0) -> Target:
    """Retrieve-and-generate: ``retrieve(query)`` returns knowledge-base hits (blocking; run in a thread)."""
    from plinth.knowledge import retrieve_and_generate

    counting = CountingModel(chat)

    async def answer(item: EvalItem) -> TargetOutput:
        def search(query: str, flt: dict[str, Any] | None) -> Awaitable[list[Any]]:
            return asyncio.to_thread(retrieve, query)

        result = await retrieve_and_generate(
            query=item.input, hits_fn=search, chat=counting, history=[], filter=None,
            implicit_filters=False, schema={}, min_score=min_score, guard=None,
        )  # fmt: skip
        prompt, completion = counting.take()
        hits = result.hits
        return TargetOutput(
            result.output_text, contexts=[h.content for h in hits], retrieved=[h.doc_id for h in hits],
            prompt_tokens=prompt, completion_tokens=completion,
        )  # fmt: skip

    return _timed(answer)


AskFn = Callable[[str, ChatModel], Awaitable[Any]]  # (question, chat) -> plinth.sql.AskResult
GoldFn = Callable[[str], list[list[Any]]]  # vetted SQL -> rows


def sql_target(chat: ChatModel, ask: AskFn, gold_rows: GoldFn) -> Target:
    """The ask loop's answer; with a ``reference_sql`` the item also gets ``sql_execution`` (0 or 1)."""
    from plinth.evals.sql_accuracy import same_result
    from plinth.sql import AskFailedError, SQLError

    counting = CountingModel(chat)

    async def answer(item: EvalItem) -> TargetOutput:
        gold = await asyncio.to_thread(gold_rows, item.reference_sql) if item.reference_sql else None
        try:
            result = await ask(item.input, counting)
        except (AskFailedError, SQLError) as exc:
            prompt, completion = counting.take()
            scores = {} if gold is None else {"sql_execution": 0.0}
            return TargetOutput("", prompt_tokens=prompt, completion_tokens=completion, scores=scores,
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        prompt, completion = counting.take()
        scores = (
            {}
            if gold is None
            else {"sql_execution": float(same_result(gold, result.rows, ordered=item.ordered))}
        )
        extra = {"sql": result.sql, "rows": [list(r) for r in result.rows[:20]], "attempts": result.attempts}
        return TargetOutput(result.answer or result.sql, prompt_tokens=prompt, completion_tokens=completion,
                            scores=scores, extra=extra)  # fmt: skip

    return _timed(answer)


def _timed(target: Target) -> Target:
    async def timed(item: EvalItem) -> TargetOutput:
        start = time.perf_counter()
        out = await target(item)
        out.latency_s = time.perf_counter() - start
        return out

    return timed
