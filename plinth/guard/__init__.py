"""Guardrails: prompt-attack, PII, denied-topic, word, grounding and canary checks on every path."""

from plinth.guard.assess import without_matches
from plinth.guard.audit_key import AUDIT_KEY_FILE, audit_key
from plinth.guard.canary import canary_instruction, new_canary
from plinth.guard.chat import (
    CONTENT_FILTER,
    INTERVENED,
    ChatGuard,
    Deltas,
    GuardedChoice,
    blocked_events,
    guard_choices,
    guard_events,
    output_context,
    screen_messages,
    screen_prompts,
    with_canary,
)
from plinth.guard.check import AuditEntry, Guard, GuardResult
from plinth.guard.policy import GuardrailPolicy, PolicyError
from plinth.guard.stream import StreamGuard, StreamStep
from plinth.guard.types import DetectContext, Stage

__all__ = [
    "AUDIT_KEY_FILE",
    "CONTENT_FILTER",
    "INTERVENED",
    "AuditEntry",
    "ChatGuard",
    "Deltas",
    "DetectContext",
    "Guard",
    "GuardResult",
    "GuardedChoice",
    "GuardrailPolicy",
    "PolicyError",
    "Stage",
    "StreamGuard",
    "StreamStep",
    "audit_key",
    "blocked_events",
    "canary_instruction",
    "guard_choices",
    "guard_events",
    "new_canary",
    "output_context",
    "screen_messages",
    "screen_prompts",
    "with_canary",
    "without_matches",
]
