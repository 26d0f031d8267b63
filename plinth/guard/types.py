"""The shared vocabulary of ``plinth.guard``: stages, findings and the detector protocol.

A detector only *finds*; a policy (``plinth.guard.policy``) decides what a finding means (allow, mask,
block) for a stage. Keeping the two apart is what lets one detector serve chat input, retrieved chunks,
SQL result text and model output alike::

    findings = PIIDetector(...).detect("mail me at a@b.com", DetectContext(stage="input"))
    # [Finding(detector="pii", type="EMAIL", score=1.0, start=11, end=18, detail="email address")]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = ["STAGES", "DetectContext", "Detector", "DetectorError", "Finding", "Stage"]

# input: what a user sends; data: untrusted content a feature feeds the model (retrieved chunks, SQL
# result text, tool output); output: what the model says.
Stage = Literal["input", "data", "output"]
STAGES: tuple[str, ...] = ("input", "data", "output")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found. Spans index the text that was checked; ``detail`` is a plain-words
    reason that never repeats the sensitive text itself (it goes to audit logs and API responses)."""

    detector: str  # prompt_attack | pii | regex | topic | word | grounding | relevance | canary
    type: str  # Bedrock's type name: PROMPT_ATTACK, EMAIL, US_SOCIAL_SECURITY_NUMBER, a topic's name, ...
    score: float  # confidence in [0, 1] (for grounding/relevance: the score itself)
    start: int | None = None
    end: int | None = None
    detail: str = ""


@dataclass(slots=True)
class DetectContext:
    """What some detectors need beyond the text: grounding compares an answer with its ``sources`` and
    the user's ``query``; the canary detector looks for this request's ``canaries``."""

    stage: Stage = "input"
    query: str | None = None
    sources: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)


class DetectorError(RuntimeError):
    """A detector could not run (model file missing, library failure). Policies fail closed on it
    unless they say otherwise."""


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        """Every finding in ``text`` (empty when clean). Raises :class:`DetectorError` when it cannot run."""
        ...
