"""One call guards every path: ``check(stage, text, policy, context)`` -> allow, mask or block.

Detectors only find; this module decides what each finding means for a stage under a policy, builds
Bedrock's ApplyGuardrail answer, and writes one audit entry per intervention::

    result = Guard(audit=print).check("input", "my SSN is 123-45-6789", policy, tenant_id=2)
    result.action   # "GUARDRAIL_INTERVENED"
    result.text     # "my SSN is {US_SOCIAL_SECURITY_NUMBER}"  (ANONYMIZE) or the blocked message (BLOCK)

What runs where:

- ``input`` (what a user sends): prompt attack at ``inputStrength``, PII and regexes (their input action),
  denied topics, words.
- ``data`` (untrusted text a feature feeds the model: retrieved chunks, SQL result text): prompt attack at
  ``dataStrength`` and PII (input action). A blocked chunk is meant to be dropped by the caller.
- ``output`` (what the model says): PII and regexes (output action), topics, words, canary leaks (always
  block), and grounding/relevance when ``context.sources`` is given.

A detector that cannot run (:class:`DetectorError`, or any other exception: a guard must not be bypassed
by a bug) blocks the text unless the policy's ``detectorFailureMode`` is ``OPEN``; either way it is
audited. Audit entries carry an HMAC-SHA256 of the matched text under the guard's ``audit_key``, never the
text. A plain sha256 would not do: PII lives in small spaces (10^9 SSNs) that anyone holding the log could
hash through in minutes; without the key the digest says nothing, with it equal values still link up.
The server keeps one key per installation (:func:`plinth.server.guardrails_api.audit_key`); a guard built
without one draws a random key, so its digests link only within the process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from plinth.guard.assess import assessments
from plinth.guard.policy import GuardrailPolicy, PIIEntity, RegexRule
from plinth.guard.types import DetectContext, Detector, DetectorError, Finding, Stage
from plinth.guard.verdict import Action, Decision, GuardResult

__all__ = ["AuditEntry", "Decision", "Guard", "GuardResult", "audit_entries", "build_detectors", "check"]

log = logging.getLogger(__name__)

DetectorPlan = dict[str, list[Detector]]  # stage -> the detectors that run there
_CACHE_SIZE = 64
_PII_ACTIONS: dict[str, Action] = {"BLOCK": "BLOCKED", "ANONYMIZE": "ANONYMIZED", "NONE": "NONE"}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One intervention as the audit log keeps it: who, where, which rule, what was done, and a hash
    (never the raw match: it may be the very PII the rule protects)."""

    tenant_id: int | None
    stage: Stage
    policy: str  # the guardrailId, else the policy's name
    rule: str  # "<detector>/<type>", e.g. "pii/US_SOCIAL_SECURITY_NUMBER"
    action: str  # BLOCKED | ANONYMIZED | FAILED_OPEN
    ts: datetime
    match_hmac: str | None  # HMAC-SHA256 hex; None when the finding has no span (a topic, an attack score)


class Guard:
    """Checks text against policies, building each policy's detectors once (kept for the last 64
    policies: building one may load a classifier). Thread-safe; ``audit`` receives every intervention,
    its matches keyed-hashed with ``audit_key`` (random when not given: see the module docstring)."""

    def __init__(
        self,
        *,
        audit: Callable[[AuditEntry], None] | None = None,
        audit_key: bytes | None = None,
        detectors: Callable[[GuardrailPolicy], DetectorPlan] | None = None,
    ) -> None:
        assert audit_key is None or len(audit_key) >= 16, "an audit key needs at least 128 bits"
        self._audit = audit
        self._audit_key = audit_key or secrets.token_bytes(32)
        self._build = detectors or build_detectors
        self._plans: OrderedDict[GuardrailPolicy, DetectorPlan] = OrderedDict()
        self._lock = threading.Lock()

    def check(
        self,
        stage: Stage,
        text: str,
        policy: GuardrailPolicy,
        context: DetectContext | None = None,
        *,
        tenant_id: int | None = None,
        audit: bool = True,
    ) -> GuardResult:
        """The verdict on ``text`` at ``stage``. ``audit=False`` leaves recording to the caller (the
        stream guard re-checks held-back text and records only what it releases or blocks)."""
        assert stage in ("input", "data", "output"), stage
        context = replace(context, stage=stage) if context else DetectContext(stage=stage)
        detectors = [d for d in self._plan(policy).get(stage, []) if _applies(d, context)]
        decisions = [d for det in detectors for d in _run(det, text, context, policy, stage)]
        result = _verdict(stage, text, policy, decisions)
        if audit:
            self.record(stage, text, policy, result.decisions, tenant_id=tenant_id)
        return result

    def record(
        self,
        stage: Stage,
        text: str,
        policy: GuardrailPolicy,
        decisions: Sequence[Decision],
        *,
        tenant_id: int | None = None,
    ) -> None:
        """Send one :class:`AuditEntry` per intervening decision to the audit sink (none: nothing)."""
        if self._audit is None:
            return
        entries = audit_entries(stage, text, policy, decisions, tenant_id=tenant_id, key=self._audit_key)
        for entry in entries:
            self._audit(entry)

    def _plan(self, policy: GuardrailPolicy) -> DetectorPlan:
        with self._lock:
            plan = self._plans.get(policy)
            if plan is not None:
                self._plans.move_to_end(policy)
                return plan
        plan = self._build(policy)  # outside the lock: it may load a model
        with self._lock:
            self._plans[policy] = plan
            while len(self._plans) > _CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan


_default_guard: Guard | None = None


def check(
    stage: Stage, text: str, policy: GuardrailPolicy, context: DetectContext | None = None
) -> GuardResult:
    """:meth:`Guard.check` on a process-wide guard that audits nowhere (library use, the CLI)."""
    global _default_guard
    if _default_guard is None:
        _default_guard = Guard()
    return _default_guard.check(stage, text, policy, context)


# --- deciding -------------------------------------------------------------------------------------


def _applies(detector: Detector, context: DetectContext) -> bool:
    """Grounding needs sources and the canary check needs canaries: without them they have nothing
    to compare with, so they are skipped rather than asked."""
    if detector.name == "grounding":
        return bool(context.sources)
    return detector.name != "canary" or bool(context.canaries)


def _run(
    detector: Detector, text: str, context: DetectContext, policy: GuardrailPolicy, stage: Stage
) -> list[Decision]:
    try:
        findings = detector.detect(text, context)
    except Exception as exc:  # a guard that crashes open is a bypass, whatever the exception
        if not isinstance(exc, DetectorError):
            log.exception("guard detector %s crashed", detector.name)
        failed = Finding(detector.name, "DETECTOR_ERROR", 1.0, detail=f"detector could not run: {exc}")
        return [Decision(failed, "NONE" if policy.failure_mode == "OPEN" else "BLOCKED")]
    return [Decision(f, _action(f, policy, stage)) for f in findings]


def _action(finding: Finding, policy: GuardrailPolicy, stage: Stage) -> Action:
    """What ``policy`` does about ``finding`` at ``stage``: only PII and regexes may mask or just report."""
    rule: PIIEntity | RegexRule | None
    if finding.detector == "pii":
        rule = next((e for e in policy.pii if e.type == finding.type), None)
    elif finding.detector == "regex":
        rule = next((r for r in policy.regexes if r.name == finding.type), None)
    else:
        return "BLOCKED"
    if rule is None:  # the detector found more than it was asked for: report it, do not act on it
        return "NONE"
    return _PII_ACTIONS[rule.output_action if stage == "output" else rule.input_action]


def _verdict(stage: Stage, text: str, policy: GuardrailPolicy, decisions: list[Decision]) -> GuardResult:
    blocked = any(d.action == "BLOCKED" for d in decisions)
    masked = [d.finding for d in decisions if d.action == "ANONYMIZED"]
    if blocked:
        out = policy.blocked_outputs_messaging if stage == "output" else policy.blocked_input_messaging
    elif masked:
        from plinth.guard.pii import mask  # here: Presidio is slow to import

        out = mask(text, masked)
    else:
        out = text
    intervened = blocked or bool(masked)
    return GuardResult(
        action="GUARDRAIL_INTERVENED" if intervened else "NONE",
        text=out,
        blocked=blocked,
        findings=[d.finding for d in decisions],
        assessments=[assessments(text, policy, decisions, stage)] if decisions else [],
        decisions=decisions,
    )


def audit_entries(
    stage: Stage,
    text: str,
    policy: GuardrailPolicy,
    decisions: Sequence[Decision],
    *,
    tenant_id: int | None,
    key: bytes,
) -> list[AuditEntry]:
    """The audit entries for ``decisions``: every block and mask, and every detector failing open, each
    match as HMAC-SHA256 under ``key``."""
    now = datetime.now(UTC)
    entries = []
    for d in decisions:
        f = d.finding
        action = "FAILED_OPEN" if f.type == "DETECTOR_ERROR" and d.action == "NONE" else d.action
        if action == "NONE":
            continue
        digest = None
        if f.start is not None and f.end is not None:
            digest = hmac.new(key, text[f.start : f.end].encode(), hashlib.sha256).hexdigest()
        entries.append(
            AuditEntry(tenant_id, stage, policy.label, f"{f.detector}/{f.type}", action, now, digest)
        )
    return entries


# --- building detectors ---------------------------------------------------------------------------


def build_detectors(policy: GuardrailPolicy) -> DetectorPlan:
    """The real detectors ``policy`` needs, per stage. A detector that cannot even be built becomes one
    that fails every check, so the policy's failure mode decides (closed: block) instead of a crash."""
    plan: DetectorPlan = {"input": [], "data": [], "output": []}
    attack = policy.prompt_attack
    if attack and attack.input_strength != "NONE":
        plan["input"].append(_make("prompt_attack", _attack, attack.input_strength, "input"))
    if attack and attack.data_strength != "NONE":
        plan["data"].append(_make("prompt_attack", _attack, attack.data_strength, "data"))
    if policy.pii or policy.regexes:
        pii = _make("pii", _pii, policy)
        plan["input"].append(pii)
        plan["data"].append(pii)
        plan["output"].append(pii)
    if policy.topics:
        topics = _make("topic", _topics, policy)
        plan["input"].append(topics)
        plan["output"].append(topics)
    if policy.words or policy.managed_word_lists:
        words = _make("word", _words, policy)
        plan["input"].append(words)
        plan["output"].append(words)
    if policy.grounding_threshold is not None or policy.relevance_threshold is not None:
        plan["output"].append(_make("grounding", _grounding, policy))
    plan["output"].append(_make("canary", _canary))
    return plan


def _make(name: str, build: Callable[..., Detector], *args: Any) -> Detector:
    try:
        return build(*args)
    except Exception as exc:
        log.exception("could not build guard detector %s", name)
        return _Broken(name, exc)


@dataclass
class _Broken:
    """Stands in for a detector whose construction failed: every check raises DetectorError."""

    name: str
    error: Exception

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        raise DetectorError(f"{self.name} is unavailable: {self.error}")


def _attack(strength: str, stage: Stage) -> Detector:
    from plinth.guard.attack import PromptAttackDetector

    return PromptAttackDetector(strength, stage=stage)  # type: ignore[arg-type]


def _pii(policy: GuardrailPolicy) -> Detector:
    from plinth.guard.pii import PIIDetector, RegexSpec

    regexes = [RegexSpec(r.name, r.pattern, r.description) for r in policy.regexes]
    return PIIDetector([e.type for e in policy.pii], regexes, strict=[e.type for e in policy.pii if e.strict])


def _topics(policy: GuardrailPolicy) -> Detector:
    from plinth.guard.topics import DeniedTopicDetector, Topic

    return DeniedTopicDetector([Topic(t.name, t.definition, t.examples) for t in policy.topics])


def _words(policy: GuardrailPolicy) -> Detector:
    from plinth.guard.words import WordDetector

    return WordDetector(policy.words, policy.managed_word_lists)


def _grounding(policy: GuardrailPolicy) -> Detector:
    from plinth.guard.grounding import GroundingDetector

    return GroundingDetector(policy.grounding_threshold, policy.relevance_threshold)


def _canary() -> Detector:
    from plinth.guard.canary import CanaryDetector

    return CanaryDetector()
