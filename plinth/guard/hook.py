"""The one shape a feature's guardrail hook has: the checks a request's guard runs, by stage.

Retrieve-and-generate checks retrieved chunks (``data``) and the answer (``output``); ask-your-data checks
the question (``input``) and what it built from the data (``data``). Both take a :class:`GuardHook` and
never learn what stands behind it (the server's per-request guard, which records every verdict for the
response's ``guardrail`` field, or a test double)::

    class AllowAll:
        async def input(self, text):
            return GuardResult("NONE", text, False, [], [])

        async def data(self, texts, context=None):
            return [GuardResult("NONE", t, False, [], []) for t in texts]

        async def output(self, text, context=None):
            return GuardResult("NONE", text, False, [], [])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from plinth.guard.types import DetectContext
from plinth.guard.verdict import GuardResult

__all__ = ["GuardHook"]


class GuardHook(Protocol):
    """A request's guardrail, one coroutine per stage; each verdict's ``text`` is what to use instead
    (the original, masked, or the policy's message) and ``blocked`` says the original must not be used."""

    async def input(self, text: str) -> GuardResult:
        """Check what the user sent."""
        ...

    async def data(self, texts: Sequence[str], context: DetectContext | None = None) -> list[GuardResult]:
        """Check untrusted content about to reach a prompt or a response, one verdict per text."""
        ...

    async def output(self, text: str, context: DetectContext | None = None) -> GuardResult:
        """Check what the model said (``context`` carries sources, query and canaries)."""
        ...
