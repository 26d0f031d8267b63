"""``plinth agent``: agents on a running server (an HTTP client of ``/v1/agents``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli.common import ApiKey, Url, build_settings, fail

agent_app = typer.Typer(
    help="Agents on a running server (an HTTP client: --url, --api-key or PLINTH_API_KEY).",
    no_args_is_help=True,
)

AgentId = Annotated[str, typer.Argument(help="The agent's id (agent_...).")]


def _server(ctx: typer.Context, url: str | None, api_key: str | None) -> tuple[str, str | None]:
    settings = build_settings(ctx, server_url=url, api_key=api_key)
    return settings.server_url, settings.api_key


def _run(call: Any) -> Any:
    """``call()``, its client errors printed as ``Error: ...`` with exit code 1."""
    from plinth.cli.agents_client import AgentClientError

    try:
        return call()
    except AgentClientError as exc:
        fail(str(exc), code=1)


@agent_app.command("create")
def agent_create(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", "-f", help="The agent as JSON or YAML.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Create an agent from a file; prints it (with its id)."""
    from plinth.cli.agents_client import create_agent, read_agent_file

    server = _server(ctx, url, api_key)
    agent = _run(lambda: create_agent(*server, read_agent_file(file)))
    typer.echo(json.dumps(agent, indent=2))


@agent_app.command("list")
def agent_list(ctx: typer.Context, url: Url = None, api_key: ApiKey = None) -> None:
    """List your agents."""
    from plinth.cli.agents_client import list_agents

    agents = _run(lambda: list_agents(*_server(ctx, url, api_key)))
    typer.echo(f"{'ID':<32} {'NAME':<24} {'MODEL':<28} TOOLS")
    for agent in agents:
        tools = ", ".join(t["name"] for t in agent["tools"])
        typer.echo(f"{agent['id']:<32} {agent['name']:<24} {agent['model']:<28} {tools}")


@agent_app.command("show")
def agent_show(ctx: typer.Context, agent_id: AgentId, url: Url = None, api_key: ApiKey = None) -> None:
    """Print an agent as JSON."""
    from plinth.cli.agents_client import get_agent

    typer.echo(json.dumps(_run(lambda: get_agent(*_server(ctx, url, api_key), agent_id)), indent=2))


@agent_app.command("delete")
def agent_delete(ctx: typer.Context, agent_id: AgentId, url: Url = None, api_key: ApiKey = None) -> None:
    """Delete an agent and its sessions."""
    from plinth.cli.agents_client import delete_agent

    _run(lambda: delete_agent(*_server(ctx, url, api_key), agent_id))
    typer.echo(f"deleted {agent_id}")


@agent_app.command("invoke")
def agent_invoke(
    ctx: typer.Context,
    agent_id: AgentId,
    text: Annotated[str, typer.Argument(help="What to ask the agent.")],
    session: Annotated[str | None, typer.Option("--session", help="Continue (or name) this session.")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print each step as it completes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole run as JSON.")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Run the agent on TEXT: prints the steps (with --stream, as they happen) and the answer."""
    from plinth.cli.agents_client import invoke_agent

    body: dict[str, Any] = {"input": text} | ({"session_id": session} if session else {})
    events = invoke_agent(*_server(ctx, url, api_key), agent_id, body, stream=stream)
    _run(lambda: _print_events(events, as_json))


def _print_events(events: Any, as_json: bool) -> None:
    streamed = False
    for event in events:
        if event["type"] == "error":
            fail(event["error"]["message"], code=1)
        elif event["type"] == "step":
            streamed = True
            if not as_json:
                typer.echo(describe_step(event["step"]))
        elif as_json:
            typer.echo(json.dumps(event["run"], indent=2))
        else:
            if not streamed:
                for step in event["run"]["trace"]:
                    typer.echo(describe_step(step))
            _print_run(event["run"])


def _print_run(run: dict[str, Any]) -> None:
    typer.echo(
        f"status: {run['status']}  session: {run['session_id']}  tokens: {run['usage']['total_tokens']}"
    )
    if run["required_action"]:
        for call in run["required_action"]["calls"]:
            kind, arguments = run["required_action"]["type"], json.dumps(call["arguments"])
            typer.echo(f"waiting ({kind}): {call['name']}({arguments}) call_id={call['call_id']}")
    if run["output"] is not None:
        typer.echo(run["output"])


def describe_step(step: dict[str, Any]) -> str:
    """One line per trace step: ``[1] tool calculator({"expression": "6*7"}) -> 42 (3 ms)``."""
    head = f"[{step['index']}] {step['type']}"
    if step["type"] == "guardrail":
        body = f"{step.get('stage')}: {step.get('action')}"
    elif step["type"] == "tool":
        arguments = json.dumps(step.get("arguments"))
        body = f"{step.get('tool')}({arguments}) -> {_short(step.get('observation', ''))}"
    else:
        body = _short(step.get("model_output") or step.get("error") or "")
    return f"{head} {body} ({step['duration_ms']} ms)"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
