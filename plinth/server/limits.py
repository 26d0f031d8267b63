"""Request limits checked before any route runs, and cancellation of requests whose client is gone.

:class:`RequestLimitsMiddleware` (pure ASGI, outermost) reads a request body once and answers, in the
OpenAI error shape, before a route or a parser sees it:

- **413** ``request_too_large``: a JSON body over ``max_json_body_mb``, or an upload (``multipart/form-data``
  to :data:`UPLOAD_ROUTES`) whose ``Content-Length`` is over ``max_upload_mb`` (a streamed upload is
  cut off by :mod:`plinth.server.uploads` at the same limit);
- **415** ``unsupported_media_type``: a body sent with a Content-Type other than JSON; **400**
  ``invalid_json`` when it has none;
- **400** ``json_too_deep``: arrays/objects nested deeper than ``max_json_depth`` (Python's JSON parser
  would otherwise recurse until RecursionError).

It then hands the buffered body to the app and watches the connection: a client that disconnects
before its response is complete cancels the request's task, which aborts its engine requests (see
:mod:`plinth.llm.local`). :func:`check_prompt_chars` and :func:`check_input_count` are the limits routes
apply before tokenizing::

    app.add_middleware(RequestLimitsMiddleware, settings=settings)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.config import Settings
from plinth.server.errors import APIError

__all__ = [
    "UPLOAD_ROUTES",
    "RequestLimitsMiddleware",
    "check_input_count",
    "check_prompt_chars",
    "json_depth",
]

MB = 1024 * 1024
UPLOAD_ROUTES = frozenset({"/v1/adapters", "/v1/files"})  # may take multipart/form-data
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = np.frombuffer(b"[{", np.uint8)


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (brackets inside strings do not count);
    linear time, no recursion.

    >>> json_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    skeleton = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not skeleton:
        return 0
    brackets = np.frombuffer(skeleton, np.uint8)
    steps = np.where(np.isin(brackets, _OPENERS), 1, -1)
    return int(np.cumsum(steps).max())


def check_prompt_chars(settings: Settings, texts: Iterable[str], param: str) -> None:
    """A 400 naming ``param`` when the texts together are longer than ``max_prompt_chars``: refused
    before the tokenizer spends seconds on them."""
    total = sum(len(t) for t in texts)
    if total > settings.max_prompt_chars:
        limit = settings.max_prompt_chars
        message = f"{param} has {total} characters; the limit is {limit} (max_prompt_chars)."
        raise APIError(400, message, param=param, code="prompt_too_long")


def check_input_count(count: int, limit: int, param: str, setting: str) -> None:
    """A 400 naming ``param`` when a request carries more than ``limit`` inputs."""
    if count > limit:
        message = f"{param} has {count} items; at most {limit} are allowed per request ({setting})."
        raise APIError(400, message, param=param, code="too_many_inputs")


class RequestLimitsMiddleware:
    """See the module docstring. ``settings`` is read per request (tests change limits on a live app)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        content_type = headers.get("content-type", "").lower()
        length = _content_length(headers)
        if content_type.startswith("multipart/form-data") and scope["path"] in UPLOAD_ROUTES:
            if length is not None and length > self.settings.max_upload_mb * MB:
                message = f"The upload is larger than {self.settings.max_upload_mb} MB (max_upload_mb)."
                await _send_error(scope, send, APIError(413, message, param="file", code="request_too_large"))
            else:
                await self.app(scope, receive, send)
            return
        try:
            body = await self._body(receive, length)
            if body is not None and body.strip():
                self._check_json(body, content_type)
        except APIError as exc:
            await _send_error(scope, send, exc)
            return
        if body is None:  # the client went away while sending
            return
        await _run_watched(self.app, scope, body, receive, send)

    async def _body(self, receive: Receive, length: int | None) -> bytes | None:
        limit = int(self.settings.max_json_body_mb * MB)
        if length is not None and length > limit:
            raise _body_too_large(self.settings)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _body_too_large(self.settings)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_json(self, body: bytes, content_type: str) -> None:
        media = content_type.split(";", 1)[0].strip()
        if not media:
            raise APIError(400, "The request has a body but no Content-Type; send JSON with "
                           "Content-Type: application/json.", code="invalid_json")  # fmt: skip
        if media != "application/json" and not media.endswith("+json"):
            message = f"Content-Type {media!r} is not supported here; send JSON (application/json)."
            raise APIError(415, message, code="unsupported_media_type")
        limit = self.settings.max_json_depth
        if json_depth(body) > limit:
            message = f"The JSON body nests arrays/objects more than {limit} levels deep (max_json_depth)."
            raise APIError(400, message, code="json_too_deep")


async def _run_watched(app: ASGIApp, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """Run ``app`` on the buffered ``body``; cancel it if the client disconnects before its response
    is complete (after that, the app's background work is left to finish)."""
    disconnected = asyncio.Event()
    state = {"body_given": False, "response_done": False}

    async def app_receive() -> Message:
        if not state["body_given"]:
            state["body_given"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def app_send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            state["response_done"] = True
        await send(message)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    task = asyncio.ensure_future(app(scope, app_receive, app_send))
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not state["response_done"]:
            await asyncio.sleep(0.05)  # a streaming response notices the disconnect itself first
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        watcher.cancel()
        if not task.done():  # this request itself was cancelled (server shutdown)
            task.cancel()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _body_too_large(settings: Settings) -> APIError:
    message = f"The request body is larger than {settings.max_json_body_mb:g} MB (max_json_body_mb)."
    return APIError(413, message, code="request_too_large")


async def _send_error(scope: Scope, send: Send, err: APIError) -> None:
    response: Any = err.response()
    response.headers["Connection"] = "close"  # the rest of the body may be unread
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
