"""Streaming a reply that may hold tool calls: plain text flows at once, calls are held until whole.

A client shows content as it arrives, but a half-written call is neither content nor a call yet. So
:class:`ToolCallStream` passes text through until the format's call marker appears (holding back a
tail that might be the start of one), buffers from there, and parses the rest when the reply ends.
When the request forces a call (``required`` or a named function) everything is the call, so nothing
is passed through.

>>> from plinth.llm.tool_formats import ToolFormat
>>> stream = ToolCallStream(ToolFormat(), forced=False)
>>> stream.feed("Let me check. <tool"), stream.feed('_call>\\n{"name": "f", "arguments": {}}')
('Let me check. ', '')
>>> content, calls = stream.finish()
>>> content, [c.name for c in calls]
('', ['f'])
"""

from __future__ import annotations

from plinth.llm.tool_calls import ToolCall
from plinth.llm.tool_formats import ToolFormat

__all__ = ["ToolCallStream"]


class ToolCallStream:
    """One choice's text, split into content to emit now and calls at the end."""

    def __init__(self, fmt: ToolFormat, forced: bool) -> None:
        self.format = fmt
        self._text = ""
        self._emitted = 0
        self._in_call = forced

    def feed(self, text: str) -> str:
        """Content that can be shown now (possibly empty)."""
        self._text += text
        if self._in_call:
            return ""
        start = self.format.call_start(self._text)
        if start is not None:
            self._in_call = True
            end = start
        else:
            end = len(self._text) - self.format.pending(self._text)
        out = self._text[self._emitted : max(end, self._emitted)]
        self._emitted = max(end, self._emitted)
        return out

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The content not yet emitted and the calls, once the reply is complete."""
        content, calls = self.format.parse(self._text[self._emitted :])
        self._emitted = len(self._text)
        return content or "", calls
