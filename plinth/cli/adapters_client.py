"""A small HTTP client for ``/v1/adapters``: what ``plinth adapters list|add|rm`` calls.

A local folder or ``.tar.gz`` is *uploaded* (packed on the fly for a folder), so it works against a
remote server and with non-admin keys; ``server_path=True`` instead sends the path for the server to
read on its own machine (admin keys only), and anything that is not a local file is sent as a source
the server resolves (a Hugging Face hub id, or an fsspec URL it fetches: admin keys only)::

    add_adapter("http://127.0.0.1:8000", key, "sql", "./sql-lora")   # -> [adapter card]
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

import httpx

__all__ = ["AdapterClientError", "add_adapter", "list_adapters", "remove_adapter"]

TIMEOUT = httpx.Timeout(600.0, connect=10.0)  # registering validates every tensor: can take a while


class AdapterClientError(RuntimeError):
    """The server refused (its error message), or could not be reached."""


def list_adapters(url: str, api_key: str | None) -> list[dict[str, Any]]:
    return _call("GET", url, "/v1/adapters", api_key)["data"]


def remove_adapter(url: str, api_key: str | None, name: str) -> None:
    _call("DELETE", url, f"/v1/adapters/{name}", api_key)


def add_adapter(
    url: str,
    api_key: str | None,
    name: str | None,
    source: str,
    *,
    base_model: str | None = None,
    public: bool = False,
    server_path: bool = False,
) -> list[dict[str, Any]]:
    """Register ``source`` as ``name``; returns the server's cards of what it registered."""
    local = Path(source).expanduser()
    if server_path or not local.exists():
        body = {"name": name, "source": source, "base_model": base_model, "public": public}
        return _call("POST", url, "/v1/adapters", api_key, json=body)["data"]
    fields = {k: v for k, v in {"name": name, "base_model": base_model}.items() if v}
    if public:
        fields["public"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        archive = local if local.is_file() else _pack(local, Path(tmp) / f"{local.name}.tar.gz")
        with archive.open("rb") as f:
            files = {"file": (archive.name, f, "application/gzip")}
            return _call("POST", url, "/v1/adapters", api_key, data=fields, files=files)["data"]


def _pack(folder: Path, out: Path) -> Path:
    """A folder as a ``.tar.gz`` holding it at the top level (the server finds the PEFT files)."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


def _call(method: str, url: str, path: str, api_key: str | None, **kwargs: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers, timeout=TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise AdapterClientError(f"cannot reach {url}: {exc}") from exc
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        raise AdapterClientError(f"{response.status_code}: {message}")
    return response.json()
