"""PII and custom-regex detection with Bedrock's entity names, built on Presidio's pattern recognizers.

Contract: :class:`PIIDetector` finds the configured types and custom regexes in a text and returns
:class:`~plinth.guard.types.Finding` s whose ``type`` is Bedrock's name (``EMAIL``, ``PHONE``, ...) or the
regex's name; :func:`mask` turns findings into Bedrock's ANONYMIZE output, ``{EMAIL}`` in place of the
value::

    detector = PIIDetector(["EMAIL", "CREDIT_DEBIT_CARD_NUMBER"])
    text = "mail a@example.com, card 4111 1111 1111 1111"
    mask(text, detector.detect(text, DetectContext()))
    # 'mail {EMAIL}, card {CREDIT_DEBIT_CARD_NUMBER}'

Why Presidio's recognizers, called directly: they carry the checksums (Luhn for cards, mod-97 plus the
per-country format for IBANs, SSA rules for SSNs, ``ipaddress`` for IPs, libphonenumber for phones) and
need no spaCy model. An ``AnalyzerEngine`` with the no-op NLP engine gives the same spans but ~20% slower
(1.10 vs 0.92 ms on a short prompt) and, without tokens, cannot use context words; so we call
``recognizer.analyze(text, entities, None)`` and apply context words ourselves (:func:`_with_context`):
a word such as "ssn" or "aws" within a few words before a match lifts a weak pattern (a bare 9-digit
number, a 40-character secret) over the reporting threshold, as Presidio's enhancer would.

The types and their recognizers are in :mod:`plinth.guard.pii_recognizers`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import regex
from presidio_analyzer import RecognizerResult

from plinth.guard.pii_recognizers import SUPPORTED_TYPES, describe, recognizer
from plinth.guard.types import DetectContext, DetectorError, Finding

__all__ = ["PIIDetector", "RegexSpec", "mask"]

MIN_SCORE = 0.4  # reported at or above; a weak pattern needs a context word to get here
_CONTEXT_BOOST = 0.35  # Presidio's default context similarity factor
_CONTEXT_CHARS_BEFORE = 48  # about five words, Presidio's default prefix window
_REGEX_TIMEOUT_S = 1.0  # custom regexes come from users: bound catastrophic backtracking


@dataclass(frozen=True, slots=True)
class RegexSpec:
    """A custom pattern (Bedrock ``regexesConfig``): findings carry ``name`` as their type."""

    name: str
    pattern: str
    description: str = ""


class PIIDetector:
    """Finds PII of ``types`` (Bedrock names, see :data:`~plinth.guard.pii_recognizers.SUPPORTED_TYPES`)
    and matches of ``regexes``.

    Types in :data:`~plinth.guard.pii_recognizers.LENIENT_RECOGNIZERS` match on shape unless listed in
    ``strict`` (then checksum and issuance rules apply too): masking a test SSN costs nothing, letting a
    real-looking one out does."""

    name = "pii"

    def __init__(
        self, types: Collection[str], regexes: Sequence[RegexSpec] = (), strict: Collection[str] = ()
    ) -> None:
        unknown = [t for t in types if t not in SUPPORTED_TYPES]
        if unknown:
            raise ValueError(f"unsupported PII types {unknown}; supported: {', '.join(SUPPORTED_TYPES)}")
        self.types = tuple(t for t in SUPPORTED_TYPES if t in set(types))
        self.regexes = tuple(regexes)
        self._compiled = [(spec, _compile(spec)) for spec in self.regexes]
        self._recognizers = [recognizer(t, t in strict) for t in self.types]

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        """PII findings (overlaps resolved, longest then most confident wins), then regex findings."""
        try:
            results = [
                r
                for rec in self._recognizers
                for r in rec.analyze(text, rec.supported_entities, None)  # type: ignore[arg-type]
            ]
        except Exception as exc:  # a library failure must fail the check, not pass it silently
            raise DetectorError(f"PII recognizers failed: {exc}") from exc
        kept = _resolve_overlaps(_with_context(text, results))
        return [_finding(r) for r in kept] + self._regex_findings(text)

    def _regex_findings(self, text: str) -> list[Finding]:
        findings = []
        for spec, compiled in self._compiled:
            try:
                matches = list(compiled.finditer(text, timeout=_REGEX_TIMEOUT_S))
            except TimeoutError as exc:
                raise DetectorError(f"custom regex {spec.name!r} timed out") from exc
            detail = spec.description or f"matches custom pattern {spec.name}"
            findings += [
                Finding("regex", spec.name, 1.0, m.start(), m.end(), detail)
                for m in matches
                if m.end() > m.start()
            ]
        return findings


def mask(text: str, findings: Iterable[Finding], style: str = "type") -> str:
    """``text`` with each finding's span replaced, as Bedrock's ANONYMIZE does: ``{EMAIL}``, or the
    regex's name in braces. ``style="redact"`` writes ``[REDACTED]`` instead. Overlapping spans merge
    into the first (earliest, then longest) one."""
    assert style in ("type", "redact"), style
    spans = sorted((f.start, -f.end, f.type) for f in findings if f.start is not None and f.end is not None)
    out, cursor = [], 0
    for start, negative_end, kind in spans:
        if start < cursor:
            continue
        out += [text[cursor:start], "{" + kind + "}" if style == "type" else "[REDACTED]"]
        cursor = -negative_end
    return "".join([*out, text[cursor:]])


def _compile(spec: RegexSpec) -> regex.Pattern[str]:
    try:
        return regex.compile(spec.pattern)
    except regex.error as exc:
        raise ValueError(f"custom regex {spec.name!r} does not compile: {exc}") from exc


def _with_context(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Raise a weak match's score when one of its recognizer's context words appears just before it
    (Presidio's enhancer does this with spaCy lemmas; plain lowercase words suffice for our types)."""
    kept = []
    for r in results:
        words = _context_of(r.entity_type)
        if words and r.score < 1.0:
            window = text[max(0, r.start - _CONTEXT_CHARS_BEFORE) : r.start].lower()
            if words & set(re.findall(r"[a-z0-9]+", window)):
                r.score = min(1.0, max(r.score + _CONTEXT_BOOST, MIN_SCORE))
        if r.score >= MIN_SCORE:
            kept.append(r)
    return kept


@functools.cache
def _context_of(entity_type: str) -> frozenset[str]:  # the same words in both modes
    words = recognizer(entity_type).context or []
    return frozenset(w for phrase in words for w in re.findall(r"[a-z0-9]+", phrase.lower()))


def _resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the longest match where spans overlap (an IBAN over the card-like digits inside it); for equal
    spans the earlier type in :data:`SUPPORTED_TYPES` (checksummed types first, PHONE late), then the
    more confident."""
    order = {t: i for i, t in enumerate(SUPPORTED_TYPES)}
    ranked = sorted(results, key=lambda r: (r.start - r.end, order[r.entity_type], -r.score, r.start))
    kept: list[RecognizerResult] = []
    for r in ranked:
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


def _finding(result: RecognizerResult) -> Finding:
    detail = describe(result.entity_type)
    return Finding("pii", result.entity_type, round(result.score, 3), result.start, result.end, detail)
