"""Guardrails: prompt-attack, PII, denied-topic, word, grounding and canary checks on every path.

Features run under a :class:`GuardHook` (one per request); the server builds it from a
:class:`GuardrailPolicy` and a :class:`Guard`, whose ``check(stage, text, policy)`` returns a
:class:`GuardResult`. Detectors only find (:class:`Finding`); the policy decides.

Every name below is exported here; its module is imported on first use, so importing the package (or
one light submodule) stays cheap: some exports pull in torch, lancedb, scikit-learn or Presidio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.lazy import lazy_exports

if TYPE_CHECKING:
    from plinth.guard.assess import without_matches
    from plinth.guard.attack import FPR_BY_STRENGTH, PromptAttackDetector, layered_scores, shipped_classifier
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
    from plinth.guard.check import AuditEntry, Guard
    from plinth.guard.classifier import (
        DEFAULT_MODEL_PATH,
        AttackClassifier,
        AttackScorer,
        EmbeddingCache,
        sentence_groups,
        split_sentences,
        windows,
    )
    from plinth.guard.encoder import TUNED_LAYERS, AttackEncoder
    from plinth.guard.features import ATTACK_FEATURES, Features, Vectorize, embedder_for
    from plinth.guard.hook import GuardHook
    from plinth.guard.pii import PIIDetector
    from plinth.guard.pii_recognizers import SUPPORTED_TYPES
    from plinth.guard.policy import GuardrailPolicy, builtin_policy
    from plinth.guard.policy_fields import PolicyError
    from plinth.guard.signatures import SignatureDetector
    from plinth.guard.spotlight import datamark, new_marker, spotlight_instruction
    from plinth.guard.stream import StreamGuard, StreamStep
    from plinth.guard.tuned import (
        TUNED_MODEL_PATH,
        TUNED_WINDOW_WORDS,
        TunedClassifier,
        pad_states,
        tuned_windows,
    )
    from plinth.guard.types import DetectContext, DetectorError, Finding, Stage
    from plinth.guard.verdict import Decision, GuardResult

__all__ = [
    "ATTACK_FEATURES",
    "AUDIT_KEY_FILE",
    "CONTENT_FILTER",
    "DEFAULT_MODEL_PATH",
    "FPR_BY_STRENGTH",
    "INTERVENED",
    "SUPPORTED_TYPES",
    "TUNED_LAYERS",
    "TUNED_MODEL_PATH",
    "TUNED_WINDOW_WORDS",
    "AttackClassifier",
    "AttackEncoder",
    "AttackScorer",
    "AuditEntry",
    "ChatGuard",
    "Decision",
    "Deltas",
    "DetectContext",
    "DetectorError",
    "EmbeddingCache",
    "Features",
    "Finding",
    "Guard",
    "GuardHook",
    "GuardResult",
    "GuardedChoice",
    "GuardrailPolicy",
    "PIIDetector",
    "PolicyError",
    "PromptAttackDetector",
    "SignatureDetector",
    "Stage",
    "StreamGuard",
    "StreamStep",
    "TunedClassifier",
    "Vectorize",
    "audit_key",
    "blocked_events",
    "builtin_policy",
    "canary_instruction",
    "datamark",
    "embedder_for",
    "guard_choices",
    "guard_events",
    "layered_scores",
    "new_canary",
    "new_marker",
    "output_context",
    "pad_states",
    "screen_messages",
    "screen_prompts",
    "sentence_groups",
    "shipped_classifier",
    "split_sentences",
    "spotlight_instruction",
    "tuned_windows",
    "windows",
    "with_canary",
    "without_matches",
]

_SOURCES = {
    "AUDIT_KEY_FILE": "audit_key",
    "audit_key": "audit_key",
    "CONTENT_FILTER": "chat",
    "INTERVENED": "chat",
    "ChatGuard": "chat",
    "Deltas": "chat",
    "GuardedChoice": "chat",
    "blocked_events": "chat",
    "guard_choices": "chat",
    "guard_events": "chat",
    "output_context": "chat",
    "screen_messages": "chat",
    "screen_prompts": "chat",
    "with_canary": "chat",
    "without_matches": "assess",
    "FPR_BY_STRENGTH": "attack",
    "PromptAttackDetector": "attack",
    "layered_scores": "attack",
    "shipped_classifier": "attack",
    "canary_instruction": "canary",
    "new_canary": "canary",
    "AuditEntry": "check",
    "Guard": "check",
    "DEFAULT_MODEL_PATH": "classifier",
    "AttackClassifier": "classifier",
    "AttackScorer": "classifier",
    "TUNED_LAYERS": "encoder",
    "AttackEncoder": "encoder",
    "TUNED_MODEL_PATH": "tuned",
    "TUNED_WINDOW_WORDS": "tuned",
    "TunedClassifier": "tuned",
    "pad_states": "tuned",
    "tuned_windows": "tuned",
    "EmbeddingCache": "classifier",
    "ATTACK_FEATURES": "features",
    "Features": "features",
    "Vectorize": "features",
    "embedder_for": "features",
    "sentence_groups": "classifier",
    "split_sentences": "classifier",
    "windows": "classifier",
    "GuardHook": "hook",
    "SUPPORTED_TYPES": "pii_recognizers",
    "PIIDetector": "pii",
    "GuardrailPolicy": "policy",
    "PolicyError": "policy_fields",
    "builtin_policy": "policy",
    "SignatureDetector": "signatures",
    "datamark": "spotlight",
    "new_marker": "spotlight",
    "spotlight_instruction": "spotlight",
    "StreamGuard": "stream",
    "StreamStep": "stream",
    "DetectContext": "types",
    "DetectorError": "types",
    "Finding": "types",
    "Stage": "types",
    "Decision": "verdict",
    "GuardResult": "verdict",
}


__getattr__ = lazy_exports(__name__, _SOURCES)
