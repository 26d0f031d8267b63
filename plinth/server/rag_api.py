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
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request

from plinth.control import knowledge as rows
from plinth.knowledge.filters import FilterError, parse_filter
from plinth.knowledge.rag import MIN_SCORES, RagResult, retrieve_and_generate
from plinth.knowledge.retriever import MAX_RESULTS, SEARCH_TYPES, RetrievalError
from plinth.llm.local import ChatView
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError
from plinth.server.knowledge_api import call_service, json_object, knowledge_service
from plinth.server.state import get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])
_KEYS = {"input", "knowledgeBaseId", "model", "sessionId", "filter", "retrievalConfiguration"}
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


@router.post("/retrieve-and-generate")
async def retrieve_and_generate_route(request: Request) -> dict[str, Any]:
    req = parse_request(await json_object(request))
    tenant, state = request.state.tenant, get_state(request)
    row = await call_service(request, "get", req.kb)  # 404 for an unknown (or another tenant's) KB
    chat = ChatView(state.model(req.model, tenant))  # 404 model_not_found
    schema = knowledge_service(request).config(row).metadata_schema or {}
    if req.filter is not None:
        _check_filter(req.filter, schema)
    history = await _history(request, req.session_id)
    result = await _run(request, req, chat, history, schema)
    session_id = req.session_id or str(uuid.uuid4())
    turns = [*history, {"user": req.text, "assistant": result.output_text}][-MAX_SESSION_TURNS:]
    cp = state.control_plane
    await asyncio.to_thread(rows.save_session, cp, session_id, tenant_id=tenant.id, kb_id=row.id, turns=turns)
    return {"output": {"text": result.output_text}, "citations": result.citations, "sessionId": session_id}


def parse_request(body: dict[str, Any]) -> RagRequest:
    """Validate the body's shape (values are checked where they are used); 400 naming the field."""
    if unknown := sorted(set(body) - _KEYS):
        raise APIError(400, f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])
    text = body.get("input")
    text = text.get("text") if isinstance(text, dict) else text
    if not isinstance(text, str) or not text.strip():
        raise APIError(400, 'input must be {"text": "..."} or a non-empty string.', param="input")
    for key in ("knowledgeBaseId", "model"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise APIError(400, f"{key} is required (a string).", param=key)
    session_id = body.get("sessionId")
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise APIError(400, "sessionId must be a non-empty string.", param="sessionId")
    config = _retrieval_config(body.get("retrievalConfiguration"))
    return RagRequest(text, body["knowledgeBaseId"], body["model"], session_id, body.get("filter"), **config)


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
    """Reject a bad explicit filter up front, before it is ANDed with an implicit one (precise param)."""
    try:
        parse_filter(raw, schema)
    except FilterError as exc:
        raise APIError(400, str(exc), param=exc.param) from exc


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
    request: Request, req: RagRequest, chat: ChatView, history: list[dict[str, str]], schema: dict[str, str]
) -> RagResult:
    service, tenant = knowledge_service(request), request.state.tenant

    def hits(query: str, flt: dict[str, Any] | None) -> Any:
        return asyncio.to_thread(service.retrieve, tenant, req.kb, query, req.k, req.search_type, flt)

    try:
        return await retrieve_and_generate(
            query=req.text, hits_fn=hits, chat=chat, history=history, filter=req.filter,
            implicit_filters=req.implicit_filters, schema=schema,
            min_score=MIN_SCORES.get(req.search_type, 0.0),
        )  # fmt: skip
    except (RetrievalError, FilterError) as exc:  # checked above; kept so a store's complaint is a 400
        raise APIError(400, str(exc), param=exc.param) from exc
