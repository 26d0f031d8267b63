"""A small HTTP client for ``/v1/agents``: what ``plinth agent ...`` calls.

::

    agent = create_agent("http://127.0.0.1:8000", key, {"name": "helper", ...})
    for event in invoke_agent(url, key, agent["id"], "What is 6*7?", stream=True):
        ...   # {"type": "step", "step"} ... {"type": "run", "run"}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "AgentClientError",
    "create_agent",
    "delete_agent",
    "get_agent",
    "invoke_agent",
    "list_agents",
    "read_agent_file",
]

TIMEOUT = httpx.Timeout(900.0, connect=10.0)  # a run on a CPU model can take minutes


class AgentClientError(RuntimeError):
    """The server refused (its error message), or could not be reached, or the file is unreadable."""


def read_agent_file(path: Path) -> dict[str, Any]:
    """An agent body from a ``.json`` or ``.yaml``/``.yml`` file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        body = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise AgentClientError(f"cannot read {path}: {exc}") from exc
    if not isinstance(body, dict):
        raise AgentClientError(f"{path} must hold one object (the agent)")
    return body


def create_agent(url: str, api_key: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return _call("POST", url, "/v1/agents", api_key, json=body)


def list_agents(url: str, api_key: str | None) -> list[dict[str, Any]]:
    return list(_call("GET", url, "/v1/agents", api_key)["data"])


def get_agent(url: str, api_key: str | None, agent_id: str) -> dict[str, Any]:
    return _call("GET", url, f"/v1/agents/{agent_id}", api_key)


def delete_agent(url: str, api_key: str | None, agent_id: str) -> dict[str, Any]:
    return _call("DELETE", url, f"/v1/agents/{agent_id}", api_key)


def invoke_agent(
    url: str, api_key: str | None, agent_id: str, body: dict[str, Any], *, stream: bool = False
) -> Iterator[dict[str, Any]]:
    """The run's events: with ``stream``, each step as the server sends it, then the run; without,
    only ``{"type": "run", "run"}``."""
    path = f"/v1/agents/{agent_id}/invoke"
    if not stream:
        yield {"type": "run", "run": _call("POST", url, path, api_key, json=body)}
        return
    try:
        with httpx.stream("POST", url.rstrip("/") + path, json={**body, "stream": True},
                          headers=_headers(api_key), timeout=TIMEOUT) as response:  # fmt: skip
            if response.is_error:
                response.read()
                raise AgentClientError(_message(response))
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line.removeprefix("data: "))
    except httpx.HTTPError as exc:
        raise AgentClientError(f"cannot reach {url}: {exc}") from exc


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _call(method: str, url: str, path: str, api_key: str | None, **kwargs: Any) -> dict[str, Any]:
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers=_headers(api_key), timeout=TIMEOUT, **kwargs
        )
    except httpx.HTTPError as exc:
        raise AgentClientError(f"cannot reach {url}: {exc}") from exc
    if response.is_error:
        raise AgentClientError(_message(response))
    return dict(response.json())


def _message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        where = f" ({error['param']})" if error.get("param") else ""
        return f"{response.status_code}: {error['message']}{where}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text}"
