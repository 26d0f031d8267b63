"""Retrieve-and-generate: rewrite a follow-up, (infer a filter,) retrieve, answer from sources, cite.

Contract:

- With ``history`` (earlier turns, ``{"user", "assistant"}``), the question is first rewritten into a
  standalone query by the model; that query is what is retrieved AND answered (the grounded prompt
  carries no history, so every answer rests on sources only).
- ``implicit_filters`` asks the model for a metadata filter over ``schema`` and ANDs it with ``filter``;
  when that inferred filter finds nothing, retrieval is retried with ``filter`` alone (a wrong guess
  costs recall, never the answer).
- "Nothing relevant" means no hit scores at least ``min_score``. Scores only compare within a search
  type (cosine for SEMANTIC, BM25 for LEXICAL, reciprocal-rank fusion for HYBRID), so the caller picks
  the floor: :data:`MIN_SCORES` holds the defaults (a cosine floor for SEMANTIC; BM25 and RRF scores are
  positive for any match, so there only "no hits" counts). Then the answer is :data:`NO_ANSWER` and the
  model is NOT called to answer; the grounded prompt also tells the model to say it does not know.
- The answer's ``[n]`` markers become Bedrock citations (see :mod:`plinth.knowledge.citations`).
- With a ``guard`` (the caller's guardrail for this request), every retrieved chunk is checked at the
  ``data`` stage first: a blocked chunk (a planted instruction) is dropped from the prompt and listed in
  ``RagResult.dropped``, a masked one enters the prompt (and its citations) masked. The prompt datamarks
  the sources with a fresh marker and carries a fresh canary; the answer is checked at the ``output``
  stage against the kept sources and the query (grounding, relevance, canary leak), and a blocked answer
  is replaced by the policy's message, without citations. Without a guard nothing of this runs.

::

    result = await retrieve_and_generate(query="who directed it?", hits_fn=hits, chat=model,
                                         history=[{"user": "Tell me about Alien", "assistant": "..."}])
    result.output_text, result.citations, result.rewritten_query
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from plinth.guard import DetectContext, new_canary, new_marker
from plinth.knowledge.citations import build_citations
from plinth.knowledge.implicit_filters import combine_filters, infer_filter
from plinth.knowledge.prompts import grounded_messages, rewrite_messages
from plinth.knowledge.types import Hit
from plinth.llm.base import ChatModel, ChatOptions

if TYPE_CHECKING:
    from plinth.guard import GuardHook

__all__ = [
    "MIN_SCORES",
    "NO_ANSWER",
    "DroppedSource",
    "HitsFn",
    "RagResult",
    "Turn",
    "retrieve_and_generate",
]

NO_ANSWER = "I couldn't find this in the knowledge base."
MIN_SCORES = {"SEMANTIC": 0.2, "LEXICAL": 0.0, "HYBRID": 0.0}  # all-MiniLM: unrelated text scores < 0.2
MAX_HISTORY_TURNS = 6  # the rewrite needs the recent context, not the whole conversation
ANSWER_OPTIONS = ChatOptions(max_tokens=512, temperature=0.0)
REWRITE_OPTIONS = ChatOptions(max_tokens=96, temperature=0.0)

Turn = dict[str, str]  # {"user": ..., "assistant": ...}: what a session stores
HitsFn = Callable[[str, dict[str, Any] | None], "list[Hit] | Awaitable[list[Hit]]"]


@dataclass(frozen=True, slots=True)
class DroppedSource:
    """A retrieved chunk the data check blocked: kept out of the prompt, reported to the caller."""

    hit: Hit
    reason: str  # the finding types, e.g. "PROMPT_ATTACK"
    score: float  # the strongest finding's confidence


@dataclass(slots=True)
class RagResult:
    """The answer (markers removed), its Bedrock citations, and what was used to produce it."""

    output_text: str
    citations: list[dict[str, Any]]
    hits: list[Hit]
    rewritten_query: str
    filter: dict[str, Any] | None = None
    answered: bool = True  # False: nothing relevant was retrieved (or kept), the model was not asked
    extra: dict[str, Any] = field(default_factory=dict)
    dropped: list[DroppedSource] = field(default_factory=list)  # chunks the guard kept out of the prompt


async def retrieve_and_generate(
    *,
    query: str,
    hits_fn: HitsFn,
    chat: ChatModel,
    history: Sequence[Turn] = (),
    filter: dict[str, Any] | None = None,
    implicit_filters: bool = False,
    schema: dict[str, str] | None = None,
    min_score: float = 0.0,
    guard: GuardHook | None = None,
) -> RagResult:
    """Answer ``query`` from what ``hits_fn(query, filter)`` retrieves (see the module contract)."""
    standalone = await rewrite_query(chat, history, query)
    implicit = await infer_filter(chat, standalone, schema or {}) if implicit_filters else None
    used = combine_filters(filter, implicit)
    hits = _relevant(await _call(hits_fn, standalone, used), min_score)
    if not hits and implicit is not None:
        used = filter
        hits = _relevant(await _call(hits_fn, standalone, used), min_score)
    hits, dropped = await _screen(guard, hits, standalone) if guard else (hits, [])
    if not hits:
        return RagResult(NO_ANSWER, [], [], standalone, used, answered=False, dropped=dropped)
    extra = {"implicit_filter": implicit}
    if guard is None:
        reply = await chat.chat(grounded_messages(standalone, hits), ANSWER_OPTIONS)
        text, citations = build_citations(reply.text, hits)
        return RagResult(text, citations, hits, standalone, used, extra=extra)
    marker, canary = new_marker(), new_canary()
    reply = await chat.chat(grounded_messages(standalone, hits, marker=marker, canary=canary), ANSWER_OPTIONS)
    sources = [hit.content for hit in hits]
    context = DetectContext(stage="output", query=standalone, sources=sources, canaries=[canary])
    verdict = await guard.output(reply.text, context)
    text, citations = (verdict.text, []) if verdict.blocked else build_citations(verdict.text, hits)
    return RagResult(text, citations, hits, standalone, used, extra=extra, dropped=dropped)


async def rewrite_query(chat: ChatModel, history: Sequence[Turn], follow_up: str) -> str:
    """A standalone version of ``follow_up`` given ``history``; ``follow_up`` itself when no history
    (or when the model's rewrite is empty)."""
    if not history:
        return follow_up
    reply = await chat.chat(rewrite_messages(history[-MAX_HISTORY_TURNS:], follow_up), REWRITE_OPTIONS)
    lines = [line.strip() for line in reply.text.strip().splitlines() if line.strip()]
    rewritten = lines[0].strip("\"'` ") if lines else ""
    return rewritten or follow_up


async def _call(hits_fn: HitsFn, query: str, flt: dict[str, Any] | None) -> list[Hit]:
    """``hits_fn`` may be sync (tests, in-process stores) or async (the server runs it in a thread)."""
    result = hits_fn(query, flt)
    return list(await result) if inspect.isawaitable(result) else list(result)


def _relevant(hits: list[Hit], min_score: float) -> list[Hit]:
    return [hit for hit in hits if hit.score >= min_score]


async def _screen(guard: GuardHook, hits: list[Hit], query: str) -> tuple[list[Hit], list[DroppedSource]]:
    """The data check on every chunk: blocked ones are dropped, masked ones kept with the masked text."""
    verdicts = await guard.data([hit.content for hit in hits], DetectContext(stage="data", query=query))
    kept, dropped = [], []
    for hit, verdict in zip(hits, verdicts, strict=True):
        if verdict.blocked:
            why = [d.finding for d in verdict.decisions if d.action == "BLOCKED"]
            reason = ", ".join(sorted({f.type for f in why})) or "BLOCKED"
            dropped.append(DroppedSource(hit, reason, max((f.score for f in why), default=1.0)))
        else:
            kept.append(hit if verdict.text == hit.content else replace(hit, content=verdict.text))
    return kept, dropped
