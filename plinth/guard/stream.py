"""Guard a streamed answer as it arrives: release what is safe, hold back what might not be yet.

A PII value or a canary can arrive split over several deltas ("123-45-" then "6789"), so text is never
released the moment it arrives. :class:`StreamGuard` keeps the unreleased text and, once enough has
arrived and a delta brought a word boundary, checks it (plus a little already-released text before it,
so a topic or word is judged in context) and releases everything up to the last whitespace that lies at
least ``hold`` characters before the end and inside no masked value. Anything shorter than ``hold`` is
therefore always seen whole before any of it leaves. Checking at boundaries, every ``min_chunk`` or more
characters, keeps the cost near one check per sentence rather than one per token::

    sg = StreamGuard(guard, policy, DetectContext(canaries=[canary]), tenant_id=2)
    for delta in model_deltas:
        step = sg.feed(delta)
        send(step.text)              # may be "" (held back)
        if step.blocked:
            send_final(step.message) # the policy's blocked message; stop generating
            break
    else:
        send(sg.finish().text)       # the held tail, checked and masked (or a block)

When the policy has a grounding or relevance filter and the context has sources, nothing is released
until :meth:`finish`: grounding judges the whole answer, and a verdict after the text has left would be
too late. Audit entries are written once per finding, when the text holding it is released or blocked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from plinth.guard.assess import assessments
from plinth.guard.check import Decision, Guard, GuardResult
from plinth.guard.policy import GuardrailPolicy
from plinth.guard.types import DetectContext, Finding

__all__ = ["StreamGuard", "StreamStep"]

_BOUNDARY = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class StreamStep:
    """What to send now. ``blocked``: send ``message`` as the final event and stop; ``text`` is empty."""

    text: str
    blocked: bool = False
    message: str | None = None


class StreamGuard:
    """Incremental output checking for one streamed answer (see the module docstring)."""

    def __init__(
        self,
        guard: Guard,
        policy: GuardrailPolicy,
        context: DetectContext | None = None,
        *,
        tenant_id: int | None = None,
        hold: int = 64,
        min_chunk: int = 48,
        context_chars: int = 200,
        max_pending: int = 4096,
    ) -> None:
        assert hold > 0 and min_chunk > 0 and max_pending > hold, (hold, min_chunk, max_pending)
        self.guard, self.policy, self.tenant_id = guard, policy, tenant_id
        self.context = replace(context, stage="output") if context else DetectContext(stage="output")
        self.hold, self.min_chunk, self.context_chars, self.max_pending = (
            hold,
            min_chunk,
            context_chars,
            max_pending,
        )
        grounding = policy.grounding_threshold is not None or policy.relevance_threshold is not None
        self.hold_all = grounding and bool(self.context.sources)
        self.released = ""  # raw text already let through (masked on the way out), for context
        self.sent = ""  # what actually went out: ``released`` with its masked values replaced
        self._decisions: list[Decision] = []  # every intervention so far (what result() reports)
        self._assessments: list[dict[str, Any]] = []
        self.pending = ""
        self.checks = 0  # how many checks ran (the cost this design keeps low)
        self._since_check = 0
        self._block: StreamStep | None = None

    @property
    def blocked(self) -> bool:
        return self._block is not None

    def feed(self, delta: str) -> StreamStep:
        """Take the next piece of the answer; return what may be sent now."""
        if self._block is not None:
            return self._block
        self.pending += delta
        self._since_check += len(delta)
        if self.hold_all or len(self.pending) <= self.hold:
            return StreamStep("")
        forced = len(self.pending) > self.max_pending
        if not forced and (self._since_check < self.min_chunk or not _BOUNDARY.search(delta)):
            return StreamStep("")
        return self._check(final=False)

    def finish(self) -> StreamStep:
        """The answer is complete: check and release the rest (or block)."""
        if self._block is not None:
            return self._block
        return self._check(final=True)

    def _check(self, *, final: bool) -> StreamStep:
        tail = _tail(self.released, self.context_chars)
        window = tail + self.pending
        result = self.guard.check("output", window, self.policy, self.context, audit=False)
        self.checks += 1
        self._since_check = 0
        if result.blocked:
            blocking = [d for d in result.decisions if d.action == "BLOCKED"]
            self.guard.record("output", window, self.policy, blocking, tenant_id=self.tenant_id)
            self._note(window, blocking)
            self._block = StreamStep("", blocked=True, message=result.text)
            self.pending = ""
            return self._block
        masked = [_shift(d, -len(tail)) for d in result.decisions if d.action == "ANONYMIZED"]
        masked = [d for d in masked if d.finding.end is not None and d.finding.end > 0]
        cut = len(self.pending) if final else self._cut(masked)
        if cut <= 0:
            return StreamStep("")
        out = [d for d in masked if d.finding.end is not None and d.finding.end <= cut]
        raw = self.pending[:cut]
        self.guard.record("output", raw, self.policy, out, tenant_id=self.tenant_id)
        self._note(raw, out)
        sent = _mask(raw, [d.finding for d in out])
        self.released += raw
        self.sent += sent
        self.pending = self.pending[cut:]
        return StreamStep(sent)

    def result(self) -> GuardResult:
        """The stream's verdict so far, for reporting: what was blocked or masked, with Bedrock
        assessments of the text each intervention acted on (already audited as it happened), so a
        caller never has to check the whole answer again to describe what the stream guard did."""
        blocked = self._block is not None
        text = (self._block.message or "") if self._block is not None else self.sent
        return GuardResult(
            action="GUARDRAIL_INTERVENED" if blocked or self._decisions else "NONE",
            text=text,
            blocked=blocked,
            findings=[d.finding for d in self._decisions],
            assessments=list(self._assessments),
            decisions=list(self._decisions),
        )

    def _note(self, text: str, decisions: list[Decision]) -> None:
        if decisions:
            self._decisions += decisions
            self._assessments.append(assessments(text, self.policy, decisions, "output"))

    def _cut(self, masked: list[Decision]) -> int:
        """The last whitespace at least ``hold`` before the end, moved before any masked value it splits
        (0: release nothing yet)."""
        limit = len(self.pending) - self.hold
        spaces = [m.end() for m in _BOUNDARY.finditer(self.pending, 0, limit)]
        cut = spaces[-1] if spaces else (limit if len(self.pending) > self.max_pending else 0)
        for d in sorted(masked, key=lambda d: -(d.finding.start or 0)):
            start, end = d.finding.start or 0, d.finding.end or 0
            if start < cut < end:
                cut = start
        return max(cut, 0)


def _tail(released: str, chars: int) -> str:
    """The last ``chars`` of released text, starting at a word (a cut word could look like a match)."""
    if len(released) <= chars:
        return released
    tail = released[-chars:]
    space = _BOUNDARY.search(tail)
    return tail[space.end() :] if space else ""


def _shift(d: Decision, offset: int) -> Decision:
    """``d`` with its span moved into pending-text coordinates; a span starting in the released tail
    is clipped to pending's start (the released part of it already went out masked)."""
    f = d.finding
    if f.start is None or f.end is None:
        return d
    moved = Finding(f.detector, f.type, f.score, max(f.start + offset, 0), f.end + offset, f.detail)
    return Decision(moved, d.action)


def _mask(text: str, findings: list[Finding]) -> str:
    if not findings:
        return text
    from plinth.guard.pii import mask  # here: Presidio is slow to import

    return mask(text, findings)
