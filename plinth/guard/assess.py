"""Bedrock's ApplyGuardrail ``assessments`` entry, built from one check's decisions.

One check gives one assessment object with a key per policy that found something, in Bedrock's names
(``contentPolicy.filters``, ``sensitiveInformationPolicy.piiEntities``/``regexes``, ``topicPolicy.topics``,
``wordPolicy.customWords``/``managedWordLists``, ``contextualGroundingPolicy.filters``). Plinth adds two
keys Bedrock has no place for: ``canaryPolicy.leaks`` (the system prompt's canary showed up in the
output) and ``detectorErrors`` (a detector could not run; ``action`` says whether that blocked)::

    {"sensitiveInformationPolicy": {"piiEntities": [
        {"type": "EMAIL", "match": "a@b.com", "action": "ANONYMIZED", "detected": True}], "regexes": []}}

``match`` repeats the matched text, as Bedrock does: fine for the caller who sent it, which is why
:func:`without_matches` exists for everyone else (and why the audit log never sees an assessment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plinth.guard.types import Finding, Stage

if TYPE_CHECKING:
    from plinth.guard.policy import GuardrailPolicy
    from plinth.guard.verdict import Decision

__all__ = ["assessments", "confidence", "without_matches"]


def assessments(
    text: str, policy: GuardrailPolicy, decisions: list[Decision], stage: Stage
) -> dict[str, Any]:
    """The assessment object for ``decisions`` made on ``text`` (see the module docstring)."""
    out: dict[str, Any] = {}
    item: dict[str, Any]
    other: dict[str, Any]
    for d in decisions:
        f, action = d.finding, d.action
        if f.type == "DETECTOR_ERROR":
            entry = {"detector": f.detector, "action": action, "detail": f.detail}
            out.setdefault("detectorErrors", []).append(entry)
        elif f.detector == "prompt_attack":
            _policy(out, "contentPolicy", "filters").append(_attack(f, policy, stage, action))
        elif f.detector == "pii":
            item = {"type": f.type, "match": _match(text, f), "action": action, "detected": True}
            _policy(out, "sensitiveInformationPolicy", "piiEntities", "regexes").append(item)
        elif f.detector == "regex":
            rule = next((r for r in policy.regexes if r.name == f.type), None)
            item = {"name": f.type, "match": _match(text, f), "regex": rule.pattern if rule else None,
                    "action": action, "detected": True}  # fmt: skip
            _policy(out, "sensitiveInformationPolicy", "regexes", "piiEntities").append(item)
        elif f.detector == "topic":
            item = {"name": f.type, "type": "DENY", "action": action, "detected": True}
            _policy(out, "topicPolicy", "topics").append(item)
        elif f.detector == "word":
            _word(out, text, f, action)
        elif f.detector in ("grounding", "relevance"):
            _policy(out, "contextualGroundingPolicy", "filters").append(_grounding(f, policy, action))
        elif f.detector == "canary":
            _policy(out, "canaryPolicy", "leaks").append({"action": action, "detected": True})
        else:  # a detector this module does not know yet: still visible, never silently dropped
            other = {"detector": f.detector, "type": f.type, "score": f.score, "action": action}
            _policy(out, "otherPolicy", "findings").append(other)
    return out


def without_matches(assessment_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``assessments`` with every ``match`` removed: for showing a verdict to someone other
    than the author of the text (a chat client whose model output was masked, a trace, a log)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "match"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(a) for a in assessment_list]


def confidence(score: float) -> str:
    """Bedrock's confidence band for a detector score in [0, 1]."""
    return "HIGH" if score >= 0.8 else "MEDIUM" if score >= 0.5 else "LOW" if score > 0 else "NONE"


def _policy(out: dict[str, Any], key: str, field: str, *siblings: str) -> list[dict[str, Any]]:
    """``out[key][field]``, creating it (and Bedrock's sibling lists, which are always present)."""
    section = out.setdefault(key, {})
    for name in (field, *siblings):
        section.setdefault(name, [])
    return section[field]


def _match(text: str, f: Finding) -> str | None:
    return text[f.start : f.end] if f.start is not None and f.end is not None else None


def _attack(f: Finding, policy: GuardrailPolicy, stage: Stage, action: str) -> dict[str, Any]:
    attack = policy.prompt_attack
    strength = None
    if attack is not None:
        strength = attack.data_strength if stage == "data" else attack.input_strength
    return {"type": "PROMPT_ATTACK", "confidence": confidence(f.score), "filterStrength": strength,
            "action": action, "detected": True}  # fmt: skip


def _word(out: dict[str, Any], text: str, f: Finding, action: str) -> None:
    if f.type == "PROFANITY":
        item = {"match": _match(text, f), "type": "PROFANITY", "action": action, "detected": True}
        _policy(out, "wordPolicy", "managedWordLists", "customWords").append(item)
    else:
        item = {"match": _match(text, f), "action": action, "detected": True}
        _policy(out, "wordPolicy", "customWords", "managedWordLists").append(item)


def _grounding(f: Finding, policy: GuardrailPolicy, action: str) -> dict[str, Any]:
    kind = "RELEVANCE" if f.detector == "relevance" else "GROUNDING"
    threshold = policy.relevance_threshold if kind == "RELEVANCE" else policy.grounding_threshold
    return {"type": kind, "threshold": threshold, "score": f.score, "action": action, "detected": True}
