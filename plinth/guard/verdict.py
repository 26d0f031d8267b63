"""What a check decides: one :class:`Decision` per finding and the :class:`GuardResult` of the whole
text. Kept apart from :mod:`plinth.guard.check` so the code that reports verdicts (assessments, stream
guards, the features' guard hooks) depends on the verdict, not on the checker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from plinth.guard.types import Finding

__all__ = ["Action", "Decision", "GuardResult"]

Action = Literal["BLOCKED", "ANONYMIZED", "NONE"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy made of one finding; ``DETECTOR_ERROR`` findings stand for a detector that failed."""

    finding: Finding
    action: Action


@dataclass
class GuardResult:
    """The verdict of one check. ``text`` is what the caller should use: the original, the masked text,
    or the policy's blocked message; ``blocked`` means the original must not be used at all."""

    action: Literal["NONE", "GUARDRAIL_INTERVENED"]
    text: str
    blocked: bool
    findings: list[Finding]
    assessments: list[dict[str, Any]]
    decisions: list[Decision] = field(default_factory=list)  # one per finding, plus detector failures

    def to_bedrock(self) -> dict[str, Any]:
        """Bedrock's ApplyGuardrail response body (``outputs`` is empty when nothing intervened)."""
        outputs = [{"text": self.text}] if self.action == "GUARDRAIL_INTERVENED" else []
        return {"action": self.action, "outputs": outputs, "assessments": self.assessments}
