"""Streaming responses that stop generating the moment the client goes away.

Starlette's StreamingResponse only notices a disconnect when a write fails (ASGI 2.4 servers) and then
leaves the body iterator for the garbage collector to close. :class:`ClosingStreamingResponse` instead
watches ``receive()`` for ``http.disconnect`` while streaming, cancels the writer, and always
``aclose()``s the body iterator — whose ``finally`` closes the model streams, aborting the engine
requests. SSE (OpenAI) and JSON lines (LMI) both use it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["ClosingStreamingResponse", "json_line", "sse_event", "SSE_DONE"]

SSE_DONE = "data: [DONE]\n\n"


def sse_event(payload: dict[str, Any]) -> str:
    """One server-sent event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def json_line(payload: dict[str, Any]) -> str:
    """One line of ``application/jsonlines``."""
    return json.dumps(payload, ensure_ascii=False) + "\n"


class ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse over an async iterator that is closed however the response ends."""

    body_iterator: AsyncIterator[Any]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def write() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-write
                        await self.stream_response(send)
                    tg.cancel_scope.cancel()

                tg.start_soon(write)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
