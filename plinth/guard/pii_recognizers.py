"""Which Presidio recognizer finds each Bedrock PII type, and how ours differ from Presidio's.

Why a module of its own: this is the table of types -- Presidio's pattern recognizers, subclassed where
their rules are too loose or too strict for a guardrail, plus our own patterns -- while
:mod:`plinth.guard.pii` runs them over a text (context words, overlaps, custom regexes, masking).
A recognizer is built once per type and mode (:func:`recognizer`)::

    ssn = recognizer("US_SOCIAL_SECURITY_NUMBER", strict=False)  # shape only, no issuance rules
    ssn.analyze("ssn 123-45-6789", ssn.supported_entities, None)  # one RecognizerResult, score 0.5

Supported Bedrock types: EMAIL, PHONE, CREDIT_DEBIT_CARD_NUMBER, INTERNATIONAL_BANK_ACCOUNT_NUMBER,
US_SOCIAL_SECURITY_NUMBER, IP_ADDRESS, AWS_ACCESS_KEY, AWS_SECRET_KEY, URL, MAC_ADDRESS,
US_BANK_ROUTING_NUMBER, US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER, UK_NATIONAL_INSURANCE_NUMBER,
UK_NATIONAL_HEALTH_SERVICE_NUMBER, CA_SOCIAL_INSURANCE_NUMBER; plus our extension API_TOKEN (GitHub
``ghp_``/``github_pat_``, Slack ``xox?-``, OpenAI/Anthropic ``sk-``, Stripe, Google ``AIza``, JWTs,
``Bearer`` headers, ``api_key=...`` assignments).

Unsupported Bedrock types (:data:`UNSUPPORTED_TYPES`; the policy rejects them with a clear error):
NAME, ADDRESS, AGE, USERNAME and DRIVER_ID need a named-entity model, and none ships offline; PASSWORD,
PIN, CREDIT_DEBIT_CARD_CVV, CREDIT_DEBIT_CARD_EXPIRY, LICENSE_PLATE, VEHICLE_IDENTIFICATION_NUMBER,
SWIFT_CODE, US_BANK_ACCOUNT_NUMBER, US_PASSPORT_NUMBER, CA_HEALTH_NUMBER and
UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER have no checksum and no distinctive shape, so a pattern alone would
flag ordinary numbers (use a custom regex scoped to your data instead).

Phones: national formats are recognised for the US and the UK; other countries need the ``+`` prefix
(every region scanned costs ~0.3 ms and adds look-alike matches). Version strings ("version 1.2.3.4")
are not IP addresses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    AbaRoutingRecognizer,
    CaSinRecognizer,
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    UkNinoRecognizer,
    UrlRecognizer,
    UsItinRecognizer,
    UsSsnRecognizer,
)

__all__ = [
    "BEDROCK_TYPES",
    "LENIENT_RECOGNIZERS",
    "SUPPORTED_TYPES",
    "UNSUPPORTED_TYPES",
    "describe",
    "recognizer",
]


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with a public-suffix check that never touches the network:
    ``tldextract.extract`` would download the suffix list; ``suffix_list_urls=()`` uses the copy bundled
    in the wheel and ``cache_dir=None`` writes nothing."""

    _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def validate_result(self, pattern_text: str) -> bool:
        return self._extract(pattern_text).fqdn != ""


class _SsnRecognizer(UsSsnRecognizer):
    """Presidio's SSN rules plus the SSA's: area numbers 900-999 are never issued (they are ITINs)."""

    PATTERNS = [
        Pattern("SSN (delimited)", r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b", 0.5),
        Pattern("SSN (bare, needs context)", r"\b[0-9]{9}\b", 0.05),
    ]

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text if c.isdigit())
        return digits.startswith("9") or bool(super().invalidate_result(pattern_text))


class _LenientSsnRecognizer(_SsnRecognizer):
    """The SSN *shape* only: one kind of delimiter, not one digit repeated, not an ITIN (9xx). The SSA's
    issuance rules also reject 123-45-6789, 078-05-1120, 000-… and 666-…, which are exactly what people
    type into a form or a test; a filter that lets them through looks broken and leaks real-looking data."""

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text if c.isdigit())
        delimiters = {c for c in pattern_text if not c.isdigit()}
        return digits.startswith("9") or len(delimiters) > 1 or len(set(digits)) == 1


class _LenientCardRecognizer(CreditCardRecognizer):
    """A card-shaped number failing Luhn keeps its weak pattern score instead of being dropped, so a
    context word ("card", "visa") still gets it masked: "card 1234 5678 9012 3456" is a test value."""

    # PatternRecognizer reads None as "keep the pattern score"; CreditCardRecognizer narrowed it to bool.
    def validate_result(self, pattern_text: str) -> bool | None:  # type: ignore[override]
        return True if super().validate_result(pattern_text) else None


class _IpRecognizer(IpRecognizer):
    """Presidio's IP recognizer, minus dotted version numbers: "version 1.2.3.4" is not an address."""

    _VERSION_WORDS = re.compile(r"(?:version|ver\.?|release|build|firmware|v)\s*$", re.IGNORECASE)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # type: ignore[no-untyped-def]
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not self._VERSION_WORDS.search(text[max(0, r.start - 12) : r.start])]


class _PhoneRecognizer(PhoneRecognizer):
    """libphonenumber's matcher for US and UK national formats (any country with ``+``), at the
    "strict grouping" leniency: digits must be grouped as the country writes them, which rejects digit runs
    inside other identifiers ("NL20 EXEE 4376 0151 57"). A number in parentheses, "(+44 20 7946 0958)",
    comes back with them; they are trimmed so the span is the number itself."""

    def __init__(self, supported_entity: str) -> None:
        super().__init__(supported_entity=supported_entity, supported_regions=("US", "GB"), leniency=2)

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]
        results = super().analyze(text, entities, nlp_artifacts)
        for r in results:
            span = text[r.start : r.end]
            if span.startswith("(") and ")" not in span:
                r.start += 1
            if span.endswith(")") and "(" not in span:
                r.end -= 1
        return results


class _SecretKeyRecognizer(PatternRecognizer):
    """A 40-character base64 run is an AWS secret key only near an AWS word, and only if it looks
    random: mixed case, and not hex (a git SHA-1 is 40 hex characters)."""

    def invalidate_result(self, pattern_text: str) -> bool:
        mixed = any(c.islower() for c in pattern_text) and any(c.isupper() for c in pattern_text)
        return not mixed or re.fullmatch(r"[0-9a-fA-F]+", pattern_text) is not None


class _ContextualChecksum(PatternRecognizer):
    """For short all-digit identifiers whose checksum passes by chance (1 in 10 for ABA routing, 1 in 11
    for NHS numbers): a valid checksum keeps the weak pattern score instead of Presidio's 1.0, so a context
    word ("routing", "nhs") is still needed; an invalid one drops the match."""

    def validate_result(self, pattern_text: str) -> bool | None:
        return None if super().validate_result(pattern_text) else False


class _AbaRecognizer(_ContextualChecksum, AbaRoutingRecognizer):  # type: ignore[misc]
    pass


class _NhsRecognizer(_ContextualChecksum, NhsRecognizer):  # type: ignore[misc]
    # Presidio's pattern is 3-3-4 digits, the shape of a US phone number: it must not win on its own.
    PATTERNS = [Pattern("NHS (needs context)", r"\b([0-9]{3})[- ]?([0-9]{3})[- ]?([0-9]{4})\b", 0.05)]


_MASTERCARD_2_SERIES = Pattern(
    "Mastercard 2-series", r"\b2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3
)
_AWS_KEY_ID = Pattern(
    "AWS access key id", r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z2-7]{16}\b", 0.9
)
_AWS_SECRET = Pattern("AWS secret key", r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", 0.1)
_TOKEN_PATTERNS = [
    Pattern("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", 0.9),
    Pattern("GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b", 0.9),
    Pattern("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b", 0.9),
    Pattern("OpenAI/Anthropic key", r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,250}\b", 0.8),
    Pattern("Stripe key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,250}\b", 0.9),
    Pattern("Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b", 0.9),
    Pattern("JWT", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.9),
    Pattern("Bearer token", r"(?<=\bBearer\s+)[A-Za-z0-9._~+/-]{20,}=*", 0.7),
    Pattern(
        "Key assignment",
        r"(?i)(?<=\b(?:api[_-]?key|api[_-]?token|access[_-]?token|auth[_-]?token)[\"']?\s*[:=]\s*[\"']?)"
        r"[A-Za-z0-9_\-./+]{20,}",
        0.6,
    ),
]


def _https_urls_only() -> list[Pattern]:
    """Presidio's URL patterns that need a scheme: its schemeless ones flag "file.py" and "e.g.co"."""
    return [p for p in UrlRecognizer.PATTERNS if "https?" in p.regex]


_CARD_PATTERNS = [*CreditCardRecognizer.PATTERNS, _MASTERCARD_2_SERIES]
# Types whose recognizer has validation rules beyond the shape (Luhn, SSA issuance). By default they match
# on shape (lenient); a type listed in ``PIIDetector(strict=...)`` gets the full rules instead.
LENIENT_RECOGNIZERS: dict[str, Callable[[str], EntityRecognizer]] = {
    "CREDIT_DEBIT_CARD_NUMBER": lambda t: _LenientCardRecognizer(supported_entity=t, patterns=_CARD_PATTERNS),
    "US_SOCIAL_SECURITY_NUMBER": lambda t: _LenientSsnRecognizer(supported_entity=t),
}

# Bedrock type -> (recognizer factory, plain-words detail). Order breaks ties in overlap resolution.
_RECOGNIZERS: dict[str, tuple[Callable[[str], EntityRecognizer], str]] = {
    "EMAIL": (lambda t: _OfflineEmailRecognizer(supported_entity=t), "email address"),
    "CREDIT_DEBIT_CARD_NUMBER": (
        lambda t: CreditCardRecognizer(supported_entity=t, patterns=_CARD_PATTERNS),
        "credit card number",
    ),
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": (lambda t: IbanRecognizer(supported_entity=t), "IBAN"),
    "US_SOCIAL_SECURITY_NUMBER": (lambda t: _SsnRecognizer(supported_entity=t), "US social security number"),
    "IP_ADDRESS": (lambda t: _IpRecognizer(supported_entity=t), "IP address"),
    "AWS_ACCESS_KEY": (
        lambda t: PatternRecognizer(t, patterns=[_AWS_KEY_ID], context=["aws", "access", "key"]),
        "AWS access key id",
    ),
    "AWS_SECRET_KEY": (
        lambda t: _SecretKeyRecognizer(t, patterns=[_AWS_SECRET], context=["aws", "secret"]),
        "AWS secret access key",
    ),
    "API_TOKEN": (
        lambda t: PatternRecognizer(t, patterns=_TOKEN_PATTERNS, context=["token", "key", "bearer"]),
        "API token",
    ),
    # Last among equals: libphonenumber also accepts digit runs that are IPs or parts of other numbers.
    "PHONE": (lambda t: _PhoneRecognizer(supported_entity=t), "phone number"),
    "URL": (lambda t: UrlRecognizer(supported_entity=t, patterns=_https_urls_only()), "URL"),
    "MAC_ADDRESS": (lambda t: MacAddressRecognizer(supported_entity=t), "MAC address"),
    "US_BANK_ROUTING_NUMBER": (lambda t: _AbaRecognizer(supported_entity=t), "US bank routing number"),
    "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER": (lambda t: UsItinRecognizer(supported_entity=t), "US ITIN"),
    "UK_NATIONAL_INSURANCE_NUMBER": (
        lambda t: UkNinoRecognizer(supported_entity=t),
        "UK national insurance number",
    ),
    "UK_NATIONAL_HEALTH_SERVICE_NUMBER": (lambda t: _NhsRecognizer(supported_entity=t), "UK NHS number"),
    "CA_SOCIAL_INSURANCE_NUMBER": (
        lambda t: CaSinRecognizer(supported_entity=t),
        "Canadian social insurance number",
    ),
}

SUPPORTED_TYPES: tuple[str, ...] = tuple(_RECOGNIZERS)
UNSUPPORTED_TYPES: tuple[str, ...] = (
    "NAME",
    "ADDRESS",
    "AGE",
    "USERNAME",
    "PASSWORD",
    "PIN",
    "DRIVER_ID",
    "LICENSE_PLATE",
    "VEHICLE_IDENTIFICATION_NUMBER",
    "CREDIT_DEBIT_CARD_CVV",
    "CREDIT_DEBIT_CARD_EXPIRY",
    "SWIFT_CODE",
    "US_BANK_ACCOUNT_NUMBER",
    "US_PASSPORT_NUMBER",
    "CA_HEALTH_NUMBER",
    "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
)
# Bedrock's own list (API_TOKEN is ours, not Bedrock's).
BEDROCK_TYPES: tuple[str, ...] = tuple(sorted({*SUPPORTED_TYPES, *UNSUPPORTED_TYPES} - {"API_TOKEN"}))


@functools.cache
def recognizer(entity_type: str, strict: bool = True) -> EntityRecognizer:
    """One recognizer per type and mode per process: construction compiles patterns; analysis is
    stateless."""
    if not strict and entity_type in LENIENT_RECOGNIZERS:
        return LENIENT_RECOGNIZERS[entity_type](entity_type)
    return _RECOGNIZERS[entity_type][0](entity_type)


def describe(entity_type: str) -> str:
    """The type in plain words ("credit card number"), for a finding's ``detail``."""
    return _RECOGNIZERS[entity_type][1]
