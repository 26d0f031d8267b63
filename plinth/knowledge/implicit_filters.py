"""Implicit filters: the model turns "classic animated movies rated above 7" into a metadata filter.

The model sees the KB's declared fields and their types (never their values) and answers a Bedrock
filter JSON or ``NONE``. Its answer is untrusted output: it is parsed with the same validator as a
user's filter (:func:`~plinth.knowledge.filters.parse_filter`), and ANY problem — no JSON, bad JSON,
an unknown field, a wrong operator, the model call failing — means "no implicit filter": a bad guess
must never fail the request. The result is combined with the caller's explicit filter by ``andAll``::

    implicit = await infer_filter(chat, "animated movies rated above 7", {"rating": "number", ...})
    combined = combine_filters({"equals": {"key": "lang", "value": "en"}}, implicit)
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from plinth.knowledge.filters import FilterError, parse_filter
from plinth.knowledge.prompts import NO_FILTER, implicit_filter_messages
from plinth.llm.base import ChatModel, ChatOptions

__all__ = ["combine_filters", "infer_filter", "parse_model_filter"]

log = logging.getLogger(__name__)

FILTER_OPTIONS = ChatOptions(max_tokens=256, temperature=0.0)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


async def infer_filter(chat: ChatModel, question: str, schema: dict[str, str]) -> dict[str, Any] | None:
    """The filter the model reads in ``question`` (validated against ``schema``), or None."""
    if not schema:
        return None
    try:
        reply = await chat.chat(implicit_filter_messages(question, schema), FILTER_OPTIONS)
    except Exception:  # the filter is an optimisation: a failing model call must not fail the request
        log.warning("implicit filter: the model call failed; searching without one", exc_info=True)
        return None
    return parse_model_filter(reply.text, schema)


def parse_model_filter(text: str, schema: dict[str, str]) -> dict[str, Any] | None:
    """The first JSON object in the model's ``text`` if it is a valid filter for ``schema``, else None."""
    candidate = _json_object(text)
    if candidate is None:
        return None
    try:
        parse_filter(candidate, schema)
    except FilterError as exc:
        log.info("implicit filter ignored (%s): %s", exc, text[:200])
        return None
    return candidate


def combine_filters(
    explicit: dict[str, Any] | None, implicit: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Both must hold: ``{"andAll": [explicit, implicit]}``; either alone when the other is None."""
    if explicit is None or implicit is None:
        return explicit if implicit is None else implicit
    return {"andAll": [explicit, implicit]}


def _json_object(text: str) -> dict[str, Any] | None:
    """Parse ``{...}`` out of a reply that may wrap it in a code fence or prose; None for ``NONE``."""
    fenced = _FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    if not body or body.upper().startswith(NO_FILTER):
        return None
    start = body.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None
