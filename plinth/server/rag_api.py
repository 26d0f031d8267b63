"""``POST /v1/retrieve-and-generate``: Bedrock RetrieveAndGenerate over the caller's knowledge base.

Request (tenant-scoped; ``knowledgeBaseId`` is the tenant's KB name, ``model`` a served base model or
adapter, as in chat completions)::

    {"input": {"text": "who directed it?"} | "who directed it?", "knowledgeBaseId": "movies",
     "model": "qwen", "sessionId"?: "…", "filter"?: {Bedrock filter},
     "retrievalConfiguration"?: {"numberOfResults": 5, "searchType": "HYBRID", "implicitFilters": true}}

Response: ``{"output": {"text"}, "citations": [{"generatedResponsePart": {"textResponsePart": {"text",
"span": {"start", "end"}}}, "retrievedReferences": [{"content": {"text", "type"}, "location",
"metadata"}]}], "sessionId"}``. Errors: unknown KB, model or session -> 404; a bad filter or field ->
400 naming ``param``. Each call appends its turn to the session (a new one when no ``sessionId``).

Guardrails: Bedrock's ``"generationConfiguration": {"guardrailConfiguration": {"guardrailId",
"guardrailVersion"?}}`` or Plinth's chat-style ``"guardrailConfig": {"guardrailIdentifier",
"guardrailVersion"?, "trace"?}`` (one of the two), else the tenant's default guardrail. Under one, the
question is checked first (blocked: the policy's message is the answer, nothing is retrieved; masked:
the masked question is what is retrieved, answered and kept in the session), then each chunk and the
answer (see :mod:`plinth.knowledge.rag`). The response adds Bedrock's ``guardrailAction`` ("INTERVENED"
| "NONE") and ``guardrail``: ``{"action", "stage", "assessments", "droppedSources": [{"location",
"metadata", "reason", "score"}]}``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, SkipValidation

from plinth.control import knowledge as rows
from plinth.knowledge import (
    MAX_RESULTS,
    MIN_SCORES,
    SEARCH_TYPES,
    DroppedSource,
    RagResult,
    parse_filter,
    reference,
    retrieve_and_generate,
)
from plinth.llm import ChatModel
from plinth.server.auth import require_tenant
from plinth.server.bodies import JSONBody
from plinth.server.errors import APIError
from plinth.server.guard_hooks import GuardrailConfig, RequestGuard, parse_guardrail_config, request_guard
from plinth.server.knowledge_api import scope
from plinth.server.state import get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])
_CONFIG_KEYS = {"numberOfResults", "searchType", "overrideSearchType", "implicitFilters"}
MAX_SESSION_TURNS = 50


@dataclass(slots=True)
class RagRequest:
    text: str
    kb: str
    model: str
    session_id: str | None
    filter: dict[str, Any] | None
    k: int = 5
    search_type: str = "HYBRID"
    implicit_filters: bool = False
    guardrail: GuardrailConfig | None = None


class RetrievalConfiguration(BaseModel):
    numberOfResults: int = 5
    searchType: str = "HYBRID"  # one of SEARCH_TYPES
    overrideSearchType: str | None = None  # Bedrock's name for searchType
    implicitFilters: bool = False  # infer a metadata filter from the question


class RagBody(JSONBody):
    """The body's shape is checked by :meth:`check` (400 naming the field; ``SkipValidation`` fields
    are documented, and checked there only); ``filter`` is checked against the knowledge base's schema
    once it is found (404 first)."""

    input: SkipValidation[str | dict[str, str]]  # {"text": "..."} or the text itself
    knowledgeBaseId: str
    model: str  # a served base model or adapter
    sessionId: str | None = None
    filter: SkipValidation[dict[str, Any] | None] = None  # Bedrock's metadata filter
    retrievalConfiguration: SkipValidation[RetrievalConfiguration | None] = None
    guardrailConfig: dict[str, Any] | None = None
    generationConfiguration: dict[str, Any] | None = None  # Bedrock's: {"guardrailConfiguration"}

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        _input_text(body)
        for key in ("knowledgeBaseId", "model"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise APIError(400, f"{key} is required (a string).", param=key)
        session_id = body.get("sessionId")
        if session_id is not None and (not isinstance(session_id, str) or not session_id):
            raise APIError(400, "sessionId must be a non-empty string.", param="sessionId")
        _retrieval_config(body.get("retrievalConfiguration"))
        _guardrail_config(body)

    def request(self) -> RagRequest:
        body = {key: getattr(self, key) for key in self.model_fields_set}  # as sent: check() passed it
        config = _retrieval_config(body.get("retrievalConfiguration"))
        text, guardrail = _input_text(body), _guardrail_config(body)
        return RagRequest(
            text, self.knowledgeBaseId, self.model, self.sessionId, self.filter, **config, guardrail=guardrail
        )


def _input_text(body: dict[str, Any]) -> str:
    text = body.get("input")
    text = text.get("text") if isinstance(text, dict) else text
    if not isinstance(text, str) or not text.strip():
        raise APIError(400, 'input must be {"text": "..."} or a non-empty string.', param="input")
    return text


@router.post("/retrieve-and-generate")
async def retrieve_and_generate_route(body: RagBody, request: Request) -> dict[str, Any]:
    req = body.request()
    (service, tenant), state = scope(request), get_state(request)
    row = await asyncio.to_thread(service.get, tenant, req.kb)  # 404 for an unknown (or another tenant's) KB
    chat = state.chat_model(req.model, tenant)  # 404 model_not_found
    schema = service.config(row).metadata_schema or {}
    if req.filter is not None:
        _check_filter(req.filter, schema)
    history = await _history(request, req.session_id)
    guard = await request_guard(request, req.guardrail)  # None: no guardrail applies
    verdict = await guard.input(req.text) if guard else None
    if verdict is not None and verdict.blocked:
        text, citations, turn = verdict.text, [], []  # the blocked question is neither answered nor kept
        dropped: list[DroppedSource] = []
    else:
        req.text = verdict.text if verdict else req.text
        result = await _run(request, req, chat, history, schema, guard)
        text, citations, dropped = result.output_text, result.citations, result.dropped
        turn = [{"user": req.text, "assistant": text}]
    session_id = req.session_id or str(uuid.uuid4())
    turns = [*history, *turn][-MAX_SESSION_TURNS:]
    cp = state.control_plane
    await asyncio.to_thread(rows.save_session, cp, session_id, tenant_id=tenant.id, kb_id=row.id, turns=turns)
    answer = {"output": {"text": text}, "citations": citations, "sessionId": session_id}
    return answer if guard is None else {**answer, **_guardrail_fields(guard, dropped)}


def _guardrail_config(body: dict[str, Any]) -> GuardrailConfig | None:
    """Bedrock's ``generationConfiguration.guardrailConfiguration`` or Plinth's ``guardrailConfig``."""
    generation = body.get("generationConfiguration")
    if generation is None:
        return parse_guardrail_config(body.get("guardrailConfig"))
    if not isinstance(generation, dict):
        raise APIError(400, "generationConfiguration must be an object.", param="generationConfiguration")
    if unknown := sorted(set(generation) - {"guardrailConfiguration"}):
        message = f"Unknown field(s): {', '.join(unknown)} (only guardrailConfiguration is supported)."
        raise APIError(400, message, param=f"generationConfiguration.{unknown[0]}")
    if "guardrailConfig" in body:
        message = "Give guardrailConfig or generationConfiguration.guardrailConfiguration, not both."
        raise APIError(400, message, param="guardrailConfig")
    param = "generationConfiguration.guardrailConfiguration"
    return parse_guardrail_config(generation.get("guardrailConfiguration"), param, id_key="guardrailId")


def _guardrail_fields(guard: RequestGuard, dropped: list[DroppedSource]) -> dict[str, Any]:
    """Bedrock's ``guardrailAction`` and Plinth's ``guardrail`` (with the chunks kept out of the prompt)."""
    sources = [
        {"location": ref["location"], "metadata": ref["metadata"], "reason": d.reason, "score": d.score}
        for d in dropped
        for ref in [reference(d.hit)]
    ]
    field = guard.field(droppedSources=sources)
    action = "NONE" if field["action"] == "NONE" else "INTERVENED"
    return {"guardrailAction": action, "guardrail": field}


def _retrieval_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise APIError(400, "retrievalConfiguration must be an object.", param="retrievalConfiguration")
    if unknown := sorted(set(config) - _CONFIG_KEYS):
        raise APIError(
            400, f"Unknown field(s): {', '.join(unknown)}.", param=f"retrievalConfiguration.{unknown[0]}"
        )
    implicit = config.get("implicitFilters", False)
    if not isinstance(implicit, bool):
        raise APIError(
            400, "implicitFilters must be true or false.", param="retrievalConfiguration.implicitFilters"
        )
    search_type = config.get("searchType", config.get("overrideSearchType", "HYBRID"))
    if search_type not in SEARCH_TYPES:
        types = ", ".join(SEARCH_TYPES)
        raise APIError(400, f"searchType must be one of {types}.", param="retrievalConfiguration.searchType")
    k = config.get("numberOfResults", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULTS:
        message = f"numberOfResults must be an integer from 1 to {MAX_RESULTS}."
        raise APIError(400, message, param="retrievalConfiguration.numberOfResults")
    return {"k": k, "search_type": search_type, "implicit_filters": implicit}


def _check_filter(raw: Any, schema: dict[str, str]) -> None:
    """Reject a bad explicit filter up front, before it is ANDed with an implicit one (precise param):
    its FilterError is a 400 naming the param (see :mod:`plinth.server.errors`)."""
    parse_filter(raw, schema)


async def _history(request: Request, session_id: str | None) -> list[dict[str, str]]:
    if session_id is None:
        return []
    cp, tenant = get_state(request).control_plane, request.state.tenant
    session = await asyncio.to_thread(rows.get_session, cp, tenant.id, session_id)
    if session is None:
        raise APIError(
            404, f"The session '{session_id}' does not exist.", param="sessionId", code="not_found"
        )
    return [t for t in session.turns if isinstance(t, dict)]


async def _run(
    request: Request,
    req: RagRequest,
    chat: ChatModel,
    history: list[dict[str, str]],
    schema: dict[str, str],
    guard: RequestGuard | None,
) -> RagResult:
    service, tenant = scope(request)

    def hits(query: str, flt: dict[str, Any] | None) -> Any:
        return asyncio.to_thread(service.retrieve, tenant, req.kb, query, req.k, req.search_type, flt)

    return await retrieve_and_generate(
        query=req.text, hits_fn=hits, chat=chat, history=history, filter=req.filter,
        implicit_filters=req.implicit_filters, schema=schema,
        min_score=MIN_SCORES.get(req.search_type, 0.0), guard=guard,
    )  # fmt: skip
