"""One HTTP request carried from the ingress to an engine replica, and run there through the full app.

The ingress cannot hand a replica its socket, so it sends a :class:`Forwarded` (method, path, headers,
body: plain picklable data) through a Serve handle; the replica runs it through the very FastAPI app a
single process serves (:func:`call_app`), so every route, error body and header is the same. The
response comes back as a stream: first a :class:`Start` (status and headers), then body chunks, so
server-sent events stream through unchanged::

    async for item in call_app(app, Forwarded("GET", "/v1/models", b"", [], b"")):
        ...  # Start(200, [...]), then b'{"object":"list",...}'

:func:`routing_keys` reads what routing needs from a request: the adapter (for Serve's model
multiplexing) and the session (for stickiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message

__all__ = ["SESSION_HEADERS", "Forwarded", "Start", "call_app", "routing_keys"]

log = logging.getLogger(__name__)

# Where a client names its session: Serve's own header, SageMaker's sticky-session header, then the
# body field retrieve-and-generate already takes.
SESSION_HEADERS = ("x-session-id", "x-amzn-sagemaker-session-id")
ADAPTER_HEADER = "x-amzn-sagemaker-adapter-identifier"  # /invocations' way of naming an adapter
_MAX_SNIFF_BYTES = 1 << 20  # larger bodies are not parsed for routing keys (the replica still checks them)


@dataclass(frozen=True, slots=True)
class Forwarded:
    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    client: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), else None."""
        wanted = name.encode()
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Start:
    status: int
    headers: list[tuple[bytes, bytes]]


def routing_keys(request: Forwarded, base_models: Collection[str]) -> tuple[str, str]:
    """``(adapter, session)`` for routing, each ``""`` when absent. A base model is no adapter: every
    replica serves it, so its requests go to the least loaded replica."""
    body = _json_body(request)
    adapter = request.header(ADAPTER_HEADER) or _string(body.get("model"))
    if adapter in base_models:
        adapter = ""
    session = next((s for h in SESSION_HEADERS if (s := request.header(h))), None) or _string(
        body.get("sessionId")
    )
    return adapter, session


def _json_body(request: Forwarded) -> dict[str, Any]:
    if request.method != "POST" or not request.body or len(request.body) > _MAX_SNIFF_BYTES:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return {}  # the replica answers the 400
    return body if isinstance(body, dict) else {}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def call_app(app: ASGIApp, request: Forwarded) -> AsyncIterator[Start | bytes]:
    """Run ``request`` through ``app``; yield its :class:`Start`, then each non-empty body chunk.

    Closing the iterator early (the client went away) tells the app the client disconnected and
    cancels it, as uvicorn would.
    """
    events: asyncio.Queue[Message | None] = asyncio.Queue()
    gone = asyncio.Event()
    task = asyncio.create_task(_run(app, request, events, gone))
    try:
        while (message := await events.get()) is not None:
            if message["type"] == "http.response.start":
                yield Start(message["status"], list(message.get("headers", [])))
            elif message.get("body"):
                yield bytes(message["body"])
        await task  # re-raises what the app raised
    finally:
        gone.set()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _run(
    app: ASGIApp, request: Forwarded, events: asyncio.Queue[Message | None], gone: asyncio.Event
) -> None:
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    started = False

    async def send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await events.put(message)

    try:
        await app(_scope(request), receive, send)
    except Exception:
        if not started:
            raise
        # Starlette re-raises after sending its 500 (for the server to log): the client has its answer.
        log.exception("%s %s failed in the app", request.method, request.path)
    finally:
        await events.put(None)


def _scope(request: Forwarded) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query_string,
        "root_path": "",
        "headers": request.headers,
        "client": request.client,
        "server": ("plinth-replica", 0),
        "state": {},
    }
