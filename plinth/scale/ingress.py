"""The HTTP front of a Ray deployment: read the routing keys, forward to an engine replica, retry.

Serve's proxy routes on headers only, but an OpenAI client names its adapter in the JSON body
(``"model": "support-bot"``). So the proxy hands every request to this small deployment, which reads
the adapter and session (:func:`~plinth.scale.forwarding.routing_keys`) and calls the engine
deployment with them as Serve's ``multiplexed_model_id`` and ``session_id``; Serve's router (see
:mod:`plinth.scale.router`) picks the replica.

A replica that dies before its answer is complete loses nothing the client has seen: a JSON answer is
retried on another replica (up to ``ray.max_attempts``, then a 503 ``replica_unavailable``); a stream
is retried until its first event went out, and after that the client sees the stream end early, as
with any server that dies mid-reply.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import cast

from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from plinth.scale.forwarding import Forwarded, Start, routing_keys
from plinth.server.errors import APIError

__all__ = ["Ingress"]

log = logging.getLogger(__name__)


class Ingress:
    def __init__(self, engine: DeploymentHandle, max_attempts: int) -> None:
        self.engine, self.max_attempts = engine, max_attempts
        self._base_models: list[str] | None = None

    async def __call__(self, request: Request) -> Response:
        forwarded = await _forwarded(request)
        if self._base_models is None:
            self._base_models = await self.engine.base_models.remote()
        adapter, session = routing_keys(forwarded, self._base_models)
        handle = self.engine.options(stream=True, multiplexed_model_id=adapter, session_id=session)
        for attempt in range(1, self.max_attempts + 1):
            replies = cast(DeploymentResponseGenerator, handle.handle.remote(forwarded))
            try:
                start = await anext(replies)
                if not _is_stream(start):
                    body = b"".join([chunk async for chunk in replies])
                    return _response(start, body)
            except RayActorError as exc:
                log.warning("replica died (attempt %d of %d): %s", attempt, self.max_attempts, exc)
                continue
            return _streaming(start, replies)
        message = f"No engine replica could answer ({self.max_attempts} tried and died); try again shortly."
        return APIError(503, message, type="server_error", code="replica_unavailable").response()


async def _forwarded(request: Request) -> Forwarded:
    client = (request.client.host, request.client.port) if request.client else None
    scope, body = request.scope, await request.body()
    return Forwarded(
        request.method, scope["path"], scope["query_string"], list(scope["headers"]), body, client
    )


def _is_stream(start: Start | bytes) -> bool:
    assert isinstance(start, Start), "a replica answers with its status first"
    return any(k == b"content-type" and v.startswith(b"text/event-stream") for k, v in start.headers)


def _response(start: Start, body: bytes) -> Response:
    response = Response(body, status_code=start.status)  # sets content-length for this body
    response.raw_headers += _headers(start)
    return response


def _streaming(start: Start, replies: DeploymentResponseGenerator) -> StreamingResponse:
    response = StreamingResponse(_rest(replies), status_code=start.status)
    response.raw_headers = _headers(start)
    return response


def _headers(start: Start) -> list[tuple[bytes, bytes]]:
    """The replica's headers, repeated ones kept (set-cookie), less those the new response sets."""
    return [(k, v) for k, v in start.headers if k.lower() not in (b"content-length", b"transfer-encoding")]


async def _rest(replies: DeploymentResponseGenerator) -> AsyncIterator[bytes]:
    async for chunk in replies:
        assert isinstance(chunk, bytes)
        yield chunk
