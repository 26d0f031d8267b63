"""What the agents API needs from the rest of the server: checking an agent's references for the caller's
tenant, and building a runnable :class:`~plinth.agents.Agent` (its chat model, guard and tool backend).

- :func:`check_references` -- the model exists (404 ``model_not_found``), and every knowledge base,
  dataset and agent a tool names is the tenant's (400 naming ``tools.<i>.<field>``); a knowledge-base
  filter fits that base's metadata schema; agent tools take the other agent's name (unless named) and
  may not form a cycle or chain deeper than :data:`MAX_DEPTH`; the guardrail exists (404).
- :func:`build_agent` -- the agent's model as a chat model, its guardrail (else the tenant's default)
  as the request's guard, and :class:`ServerBackend`: retrieval from the tenant's knowledge base, the
  SQL ask path over its dataset (with the agent's model), and other agents' loops one level deeper.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import Request

from plinth.agents import (
    Agent,
    AgentRun,
    AgentSpec,
    Invoke,
    SessionState,
    ToolSpec,
    check_tool_names,
    run_to_end,
)
from plinth.agents import tool_name as make_tool_name
from plinth.control import agents as rows
from plinth.knowledge import FilterError, NotFoundError, parse_filter
from plinth.llm import ChatModel
from plinth.server.errors import APIError
from plinth.server.guard_hooks import parse_guardrail_config, request_guard
from plinth.server.knowledge_api import scope
from plinth.server.sql_api import sql_service
from plinth.server.state import get_state
from plinth.sql import DatasetNotFoundError

if TYPE_CHECKING:
    from plinth.knowledge import Hit
    from plinth.sql import AskResult

__all__ = ["MAX_DEPTH", "ServerBackend", "build_agent", "check_references", "load_spec"]

MAX_DEPTH = 3  # a supervisor, its specialists, theirs: deeper chains are refused at definition


def load_spec(row: rows.AgentRow) -> AgentSpec:
    """A stored agent's spec (it was checked when stored)."""
    from plinth.agents import parse_agent

    return parse_agent(row.spec)


async def check_references(request: Request, spec: AgentSpec, agent_id: str | None) -> None:
    """Raise the API's error for the first reference ``spec`` gets wrong (see the module docstring);
    fills in agent tools' names. ``agent_id`` is the agent being updated (None when created)."""
    tenant, state = request.state.tenant, get_state(request)
    state.model(spec.model, tenant)  # 404 model_not_found
    for i, tool in enumerate(spec.tools):
        await _check_tool(request, tool, f"tools.{i}", agent_id)
    try:
        check_tool_names(spec)
    except ValueError as exc:
        raise APIError(400, str(exc), param=getattr(exc, "param", "tools")) from exc
    if spec.guardrail is not None:
        await request_guard(request, parse_guardrail_config(spec.guardrail, "guardrail"))  # 404 if unknown


async def _check_tool(request: Request, tool: ToolSpec, param: str, agent_id: str | None) -> None:
    tenant = request.state.tenant
    if tool.type == "knowledge_base":
        service = scope(request)[0]
        kb = tool.config["knowledge_base_id"]
        try:
            row = await asyncio.to_thread(service.get, tenant, kb)
        except NotFoundError as exc:
            raise APIError(400, str(exc), param=f"{param}.knowledge_base_id", code="not_found") from exc
        if tool.config.get("filter") is not None:
            try:
                parse_filter(tool.config["filter"], service.config(row).metadata_schema or {})
            except FilterError as exc:
                raise APIError(400, str(exc), param=f"{param}.filter") from exc
    elif tool.type == "sql":
        try:
            await asyncio.to_thread(sql_service(request).get, tenant, tool.config["dataset"])
        except DatasetNotFoundError as exc:
            raise APIError(400, str(exc), param=f"{param}.dataset", code="not_found") from exc
    elif tool.type == "agent":
        target = await _agent_row(request, tool.config["agent_id"], f"{param}.agent_id")
        if not tool.name:
            tool.name = make_tool_name(target.name)
        depth = await _chain_depth(request, target, agent_id, f"{param}.agent_id")
        if 1 + depth > MAX_DEPTH:
            raise APIError(400, f"Agents may chain at most {MAX_DEPTH} deep.", param=f"{param}.agent_id")


async def _agent_row(request: Request, agent_id: str, param: str) -> rows.AgentRow:
    cp, tenant = get_state(request).control_plane, request.state.tenant
    row = await asyncio.to_thread(rows.get_agent, cp, tenant.id, agent_id)
    if row is None:
        raise APIError(400, f"The agent '{agent_id}' does not exist.", param=param, code="not_found")
    return row


async def _chain_depth(request: Request, row: rows.AgentRow, root: str | None, param: str) -> int:
    """How many agents deep the chain from ``row`` goes (1: it calls none); 400 on a cycle to ``root``."""
    if row.id == root:
        raise APIError(400, "An agent may not call itself, directly or through others.", param=param)
    depths = [0]
    for tool in row.spec.get("tools", []):
        if tool.get("type") == "agent":
            cp, tenant = get_state(request).control_plane, request.state.tenant
            child = await asyncio.to_thread(rows.get_agent, cp, tenant.id, tool["agent_id"])
            if child is not None:
                depths.append(await _chain_depth(request, child, root, param))
    return 1 + max(depths)


async def build_agent(request: Request, row: rows.AgentRow, depth: int = 0, session_id: str = "") -> Agent:
    """The stored agent ready to run for this request (404 when its model or guardrail is gone)."""
    spec = load_spec(row)
    chat = get_state(request).chat_model(spec.model, request.state.tenant)
    config = parse_guardrail_config(spec.guardrail, "guardrail") if spec.guardrail else None
    guard = await request_guard(request, config)  # the agent's guardrail, else the tenant's default
    return Agent(row.id, spec, chat, ServerBackend(request, chat, depth), guard)


class ServerBackend:
    """The tools' reach into the tenant's knowledge bases, datasets and agents."""

    def __init__(self, request: Request, chat: ChatModel, depth: int) -> None:
        self.request, self.chat, self.depth = request, chat, depth

    async def retrieve(self, tool: ToolSpec, query: str) -> list[Hit]:
        service, tenant = scope(self.request)
        kb, k, flt = tool.config["knowledge_base_id"], tool.config.get("top_k", 5), tool.config.get("filter")
        return await asyncio.to_thread(service.retrieve, tenant, kb, query, k, "HYBRID", flt)

    async def ask(self, tool: ToolSpec, question: str) -> AskResult:
        service, tenant = sql_service(self.request), self.request.state.tenant
        return await service.ask(tenant, tool.config["dataset"], question, self.chat)

    async def invoke_agent(self, tool: ToolSpec, text: str) -> AgentRun:
        if self.depth + 1 >= MAX_DEPTH:
            raise RuntimeError(f"agents may chain at most {MAX_DEPTH} deep")
        cp, tenant = get_state(self.request).control_plane, self.request.state.tenant
        row = await asyncio.to_thread(rows.get_agent, cp, tenant.id, tool.config["agent_id"])
        if row is None:
            raise LookupError(f"the agent {tool.config['agent_id']} no longer exists")
        agent = await build_agent(self.request, row, self.depth + 1)
        return await run_to_end(agent, SessionState(), Invoke(text=text))
