"""``/v1/agents``: agents per tenant, and running them (see :mod:`plinth.agents` for the loop).

- ``POST /v1/agents`` ``{"name", "model", "instructions", "description"?, "guardrail"?:
  {"guardrailIdentifier", "guardrailVersion"?}, "max_steps"? (1..50, default 8), "tools": [...]}`` -> 201
  agent. Tools: ``{"type": "knowledge_base", "knowledge_base_id", "filter"?, "top_k"?}``,
  ``{"type": "sql", "dataset"}``, ``{"type": "calculator"}``, ``{"type": "function", "function": {"name",
  "description"?, "parameters"}, "requireConfirmation"?}``, ``{"type": "agent", "agent_id"}``; each may
  add ``name``, ``description`` and ``requireConfirmation``.
- ``GET /v1/agents`` -> ``{"object": "list", "data": [agent]}``; ``GET|PUT|DELETE /v1/agents/{id}``
  (PUT takes a whole body; DELETE -> ``{"id", "object": "agent.deleted", "deleted": true}`` and ends the
  agent's sessions). An agent is ``{"id": "agent_<hex>", "object": "agent", "created_at", "updated_at",
  ...body}`` with every tool's ``name`` filled in.
- ``POST /v1/agents/{id}/invoke`` ``{"input", "session_id"?, "stream"?, "return_control_results"?:
  [{"call_id", "output": text or any JSON}], "confirmations"?: [{"call_id", "approved"}]}`` -> ``{"id":
  "run_<hex>", "object": "agent.run", "agent_id", "session_id", "status", "output", "citations",
  "required_action", "trace", "usage"}``. A new ``session_id`` (or none: one is made) starts a session; an
  existing one continues it. With ``stream``: server-sent events ``{"type": "step", "step"}`` per trace step
  as it completes, then ``{"type": "run", "run"}``, then ``[DONE]`` (a failure mid-run: ``{"type": "error",
  "error"}``).

Errors are OpenAI-shaped: a bad body or reference -> 400 naming the field (``tools.2.dataset``); an
unknown model -> 404 ``model_not_found``; another tenant's agent or session -> 404 as a missing one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, SkipValidation

from plinth.agents import (
    AgentRun,
    AgentSpecError,
    Invoke,
    ResumeError,
    SessionState,
    check_invoke,
    new_id,
    parse_agent,
    run_agent,
    run_to_end,
)
from plinth.control import agents as rows
from plinth.server.agent_runtime import build_agent, check_references, load_spec
from plinth.server.auth import require_tenant
from plinth.server.bodies import JSONBody
from plinth.server.errors import APIError, as_api_error, error_body
from plinth.server.state import get_state
from plinth.server.streaming import SSE_DONE, ClosingStreamingResponse, sse_event

__all__ = ["router"]

router = APIRouter(prefix="/v1/agents", dependencies=[Depends(require_tenant)])
MAX_INPUT_CHARS = 8000
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class AgentBody(JSONBody):
    """The agent's fields (documented here, checked by :func:`plinth.agents.parse_agent`)."""

    model_config = ConfigDict(extra="allow")
    name: SkipValidation[str | None] = None
    model: SkipValidation[str | None] = None
    instructions: SkipValidation[str | None] = None
    description: SkipValidation[str | None] = None
    guardrail: SkipValidation[dict[str, Any] | None] = None
    max_steps: SkipValidation[int | None] = None
    tools: SkipValidation[list[dict[str, Any]] | None] = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        _spec(body)


class InvokeBody(JSONBody):
    input: SkipValidation[str | None] = None
    session_id: SkipValidation[str | None] = None
    stream: SkipValidation[bool] = False
    return_control_results: SkipValidation[list[dict[str, Any]] | None] = None
    confirmations: SkipValidation[list[dict[str, Any]] | None] = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        _invoke(body)


@router.post("", status_code=201)
async def create_agent(body: AgentBody, request: Request) -> dict[str, Any]:
    spec = _spec(body.raw())
    await check_references(request, spec, None)
    cp, tenant = get_state(request).control_plane, request.state.tenant
    row = await asyncio.to_thread(
        rows.create_agent,
        cp,
        tenant_id=tenant.id,
        agent_id=new_id("agent"),
        name=spec.name,
        spec=spec.to_json(),
    )
    return _card(row)


@router.get("")
async def list_agents(request: Request) -> dict[str, Any]:
    cp, tenant = get_state(request).control_plane, request.state.tenant
    return {
        "object": "list",
        "data": [_card(r) for r in await asyncio.to_thread(rows.list_agents, cp, tenant.id)],
    }


@router.get("/{agent_id}")
async def get_agent(agent_id: str, request: Request) -> dict[str, Any]:
    return _card(await _row(request, agent_id))


@router.put("/{agent_id}")
async def update_agent(agent_id: str, body: AgentBody, request: Request) -> dict[str, Any]:
    row = await _row(request, agent_id)
    spec = _spec(body.raw())
    await check_references(request, spec, row.id)
    cp = get_state(request).control_plane
    updated = await asyncio.to_thread(rows.update_agent, cp, row, name=spec.name, spec=spec.to_json())
    if updated is None:
        raise _not_found(agent_id)
    return _card(updated)


@router.delete("/{agent_id}")
async def delete_agent(agent_id: str, request: Request) -> dict[str, Any]:
    row = await _row(request, agent_id)
    await asyncio.to_thread(rows.delete_agent, get_state(request).control_plane, row)
    return {"id": row.id, "object": "agent.deleted", "deleted": True}


@router.post("/{agent_id}/invoke", response_model=None)
async def invoke_agent(agent_id: str, body: InvokeBody, request: Request) -> Any:
    row = await _row(request, agent_id)
    invoke = _invoke(body.raw())
    state = await _session(request, row.id, invoke.session_id)
    try:
        check_invoke(state, invoke)
    except ResumeError as exc:
        raise APIError(400, exc.message, param=exc.param) from exc
    agent = await build_agent(request, row)
    if body.stream:
        return _sse(_events(request, agent, state, invoke))
    run = await run_to_end(agent, state, invoke)
    await _save(request, row.id, invoke.session_id, state)
    return run.to_json()


async def _events(request: Request, agent: Any, state: SessionState, invoke: Invoke) -> AsyncIterator[str]:
    try:
        async for item in run_agent(agent, state, invoke):
            if isinstance(item, AgentRun):
                await _save(request, agent.id, invoke.session_id, state)
                yield sse_event({"type": "run", "run": item.to_json()})
            else:
                yield sse_event({"type": "step", "step": item.to_json()})
    except Exception as exc:  # the response has started: the error is an event
        yield sse_event({"type": "error", "error": error_body(as_api_error(exc))["error"]})
    yield SSE_DONE


def _sse(body: AsyncIterator[str]) -> ClosingStreamingResponse:
    return ClosingStreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


# --- helpers --------------------------------------------------------------------------------------


def _spec(body: dict[str, Any]) -> Any:
    try:
        return parse_agent(body)
    except AgentSpecError as exc:
        raise APIError(400, exc.message, param=exc.param) from exc


def _invoke(body: dict[str, Any]) -> Invoke:
    """The invoke request, checked (400 naming the field); the session's fit is checked later."""
    text, session_id, stream = body.get("input"), body.get("session_id"), body.get("stream", False)
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise APIError(400, "input must be a non-empty string.", param="input")
    if isinstance(text, str) and len(text) > MAX_INPUT_CHARS:
        raise APIError(400, f"input is longer than {MAX_INPUT_CHARS} characters.", param="input")
    if session_id is not None and (not isinstance(session_id, str) or not _SESSION_ID.match(session_id)):
        raise APIError(400, "session_id must be 1-64 characters of A-Z a-z 0-9 _ . : -", param="session_id")
    if not isinstance(stream, bool):
        raise APIError(400, "stream must be true or false.", param="stream")
    results = _answers(body.get("return_control_results"), "return_control_results", "output", object)
    if results is not None:  # any JSON value; the model reads text
        results = {k: v if isinstance(v, str) else json.dumps(v) for k, v in results.items()}
    confirmations = _answers(body.get("confirmations"), "confirmations", "approved", bool)
    invoke = Invoke(text=text, results=results, confirmations=confirmations)
    invoke.session_id = session_id or invoke.session_id
    return invoke


def _answers(raw: Any, param: str, key: str, kind: type) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise APIError(400, f"{param} must be a non-empty list of {{call_id, {key}}}.", param=param)
    answers: dict[str, Any] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"call_id", key}:
            raise APIError(400, f"each item must be {{call_id, {key}}}.", param=f"{param}.{i}")
        if not isinstance(item["call_id"], str) or not isinstance(item[key], kind):
            raise APIError(
                400, f"call_id must be a string and {key} a {kind.__name__}.", param=f"{param}.{i}.{key}"
            )
        answers[item["call_id"]] = item[key]
    return answers


async def _row(request: Request, agent_id: str) -> rows.AgentRow:
    cp, tenant = get_state(request).control_plane, request.state.tenant
    row = await asyncio.to_thread(rows.get_agent, cp, tenant.id, agent_id)
    if row is None:
        raise _not_found(agent_id)
    return row


def _not_found(agent_id: str) -> APIError:
    return APIError(404, f"The agent '{agent_id}' does not exist.", param="agent_id", code="not_found")


async def _session(request: Request, agent_id: str, session_id: str) -> SessionState:
    """The session's state (a new one for a new id); 404 when it is another tenant's or agent's."""
    cp, tenant = get_state(request).control_plane, request.state.tenant
    row = await asyncio.to_thread(rows.get_session, cp, tenant.id, session_id)
    if row is None:
        if await asyncio.to_thread(rows.session_taken, cp, session_id):  # another tenant's
            raise _session_not_found(session_id)
        return SessionState()
    if row.agent_id != agent_id:
        raise _session_not_found(session_id)
    return SessionState.from_json(row.state)


def _session_not_found(session_id: str) -> APIError:
    return APIError(404, f"The session '{session_id}' does not exist.", param="session_id", code="not_found")


async def _save(request: Request, agent_id: str, session_id: str, state: SessionState) -> None:
    cp, tenant = get_state(request).control_plane, request.state.tenant
    await asyncio.to_thread(
        rows.save_session, cp, session_id, tenant_id=tenant.id, agent_id=agent_id, state=state.to_json()
    )


def _card(row: rows.AgentRow) -> dict[str, Any]:
    body = load_spec(row).to_json()
    created, updated = int(row.created_at.timestamp()), int(row.updated_at.timestamp())
    return {"id": row.id, "object": "agent", "created_at": created, "updated_at": updated, **body}
