"""Guardrails: prompt-attack, PII, denied-topic, word, grounding and canary checks on every path."""

from plinth.guard.assess import without_matches
from plinth.guard.audit_key import AUDIT_KEY_FILE, audit_key
from plinth.guard.canary import canary_instruction, new_canary
from plinth.guard.check import AuditEntry, Guard, GuardResult
from plinth.guard.policy import GuardrailPolicy, PolicyError
from plinth.guard.stream import StreamGuard, StreamStep
from plinth.guard.types import DetectContext, Stage

__all__ = [
    "AUDIT_KEY_FILE",
    "AuditEntry",
    "DetectContext",
    "Guard",
    "GuardResult",
    "GuardrailPolicy",
    "PolicyError",
    "Stage",
    "StreamGuard",
    "StreamStep",
    "audit_key",
    "canary_instruction",
    "new_canary",
    "without_matches",
]
