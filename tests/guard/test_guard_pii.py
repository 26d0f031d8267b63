"""PII detection: every supported type found with Bedrock's name, checksum-invalid look-alikes not,
masking in Bedrock's ``{TYPE}`` form, custom regexes, and no network use."""

from __future__ import annotations

import socket

import pytest

from plinth.guard.pii import PIIDetector, RegexSpec, mask
from plinth.guard.pii_recognizers import BEDROCK_TYPES, SUPPORTED_TYPES, UNSUPPORTED_TYPES
from plinth.guard.types import DetectContext, Detector, DetectorError

ALL = PIIDetector(SUPPORTED_TYPES)
STRICT = PIIDetector(SUPPORTED_TYPES, strict=SUPPORTED_TYPES)  # checksum and issuance rules on

# (type, text, the value that must be found)
FOUND = [
    ("EMAIL", "Mail anna.smith@example.co.uk today.", "anna.smith@example.co.uk"),
    ("PHONE", "Call (415) 867-5309 tonight.", "(415) 867-5309"),
    ("PHONE", "Office: +44 20 7946 0958.", "+44 20 7946 0958"),
    ("CREDIT_DEBIT_CARD_NUMBER", "Visa 4111-1111-1111-1111 expires soon.", "4111-1111-1111-1111"),
    ("CREDIT_DEBIT_CARD_NUMBER", "Mastercard 2221 0000 0000 0009.", "2221 0000 0000 0009"),
    ("CREDIT_DEBIT_CARD_NUMBER", "Amex 3782 822463 10005.", "3782 822463 10005"),
    (
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "Pay DE89 3704 0044 0532 0130 00 now.",
        "DE89 3704 0044 0532 0130 00",
    ),
    ("INTERNATIONAL_BANK_ACCOUNT_NUMBER", "IBAN GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("US_SOCIAL_SECURITY_NUMBER", "SSN 536-22-8411 on file.", "536-22-8411"),
    ("US_SOCIAL_SECURITY_NUMBER", "my ssn is 536228411", "536228411"),
    ("IP_ADDRESS", "from 203.0.113.7 at noon", "203.0.113.7"),
    ("IP_ADDRESS", "host 2001:db8:85a3::8a2e:370:7334 down", "2001:db8:85a3::8a2e:370:7334"),
    ("AWS_ACCESS_KEY", "key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS_SECRET_KEY",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "API_TOKEN",
        "use ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 please",
        "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    ),
    ("API_TOKEN", "SLACK=xoxb-123456789012-abcdefghijKLM", "xoxb-123456789012-abcdefghijKLM"),
    ("API_TOKEN", "OPENAI_API_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12"),
    ("API_TOKEN", "Authorization: Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"),
    ("URL", "see https://example.com/path?q=1 for more", "https://example.com/path?q=1"),
    ("MAC_ADDRESS", "nic 00:1A:2B:3C:4D:5E up", "00:1A:2B:3C:4D:5E"),
    ("US_BANK_ROUTING_NUMBER", "routing number 021000021", "021000021"),
    ("UK_NATIONAL_INSURANCE_NUMBER", "NINO AB 12 34 56 C", "AB 12 34 56 C"),
    ("UK_NATIONAL_HEALTH_SERVICE_NUMBER", "NHS number 401 023 2137", "401 023 2137"),
]


@pytest.mark.parametrize(("kind", "text", "value"), FOUND)
def test_each_type_is_found_with_its_bedrock_name(kind: str, text: str, value: str) -> None:
    findings = PIIDetector([kind]).detect(text, DetectContext())
    assert [(f.detector, f.type, text[f.start : f.end]) for f in findings] == [("pii", kind, value)]
    assert value not in findings[0].detail and findings[0].detail
    assert 0.4 <= findings[0].score <= 1.0


NOT_FOUND = [
    "Card 4111 1111 1111 1112 is mistyped.",  # Luhn fails
    "Card 5500-0000-0000-0005 was declined.",  # Luhn fails
    "IBAN DE89 3704 0044 0532 0130 01 is wrong.",  # mod-97 fails
    "SSN 666-12-3456, 000-12-3456, 912-34-5678, 123-00-4567.",  # never issued
    "Upgrade to version 1.2.3.4 tonight.",  # a version, not an address
    "Reverted commit 3f786850e387550fdab836ed7e6dc881de23001b.",  # a git SHA, no AWS context
    "Random 40 chars wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY without context.",
    "Order #48213 cost $1,299.99 on 2024-03-15; ISBN 978-0-306-40615-7.",
    "The number 021000021 alone is not a routing number.",
]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_are_not_found(text: str) -> None:
    assert STRICT.detect(text, DetectContext()) == []


def test_mask_writes_bedrock_placeholders_and_skips_invalid_cards_when_strict() -> None:
    text = "Mail a.b@example.com, card 4111 1111 1111 1111, not 4111 1111 1111 1112."
    masked = mask(text, STRICT.detect(text, DetectContext()))
    assert masked == "Mail {EMAIL}, card {CREDIT_DEBIT_CARD_NUMBER}, not 4111 1111 1111 1112."
    assert mask(text, STRICT.detect(text, DetectContext()), style="redact").count("[REDACTED]") == 2


TEST_VALUES = [  # what people type to try a filter: valid in shape, rejected by checksum/issuance rules
    ("US_SOCIAL_SECURITY_NUMBER", "My SSN is 123-45-6789."),
    ("US_SOCIAL_SECURITY_NUMBER", "The sample card says 078-05-1120."),
    ("US_SOCIAL_SECURITY_NUMBER", "ssn: 666-12-3456"),
    ("CREDIT_DEBIT_CARD_NUMBER", "Pay with card 1234 5678 9012 3456 please."),
]


@pytest.mark.parametrize(("kind", "text"), TEST_VALUES)
def test_test_values_are_masked_by_default_and_kept_when_strict(kind: str, text: str) -> None:
    assert [f.type for f in ALL.detect(text, DetectContext())] == [kind]
    assert STRICT.detect(text, DetectContext()) == []


def test_lenient_mode_keeps_the_shape_rules() -> None:
    # An ITIN area (9xx), mixed delimiters, one repeated digit and a bare card-length number with no
    # card word stay unflagged in the default mode too.
    text = "Refs 912-34-5678, 536-22.8411, 111-11-1111 and 1234567890123456 in the log."
    assert ALL.detect(text, DetectContext()) == []
    sample = "Test with 4111 1111 1111 1111 and 5555 5555 5555 4444."
    assert mask(sample, ALL.detect(sample, DetectContext())).count("{CREDIT_DEBIT_CARD_NUMBER}") == 2


def test_overlaps_keep_the_longest_match() -> None:
    # The IBAN's digits contain a Luhn-valid card-like run; one finding, the IBAN, must remain.
    text = "IBAN DE89 3704 0044 0532 0130 00"
    assert [f.type for f in ALL.detect(text, DetectContext())] == ["INTERNATIONAL_BANK_ACCOUNT_NUMBER"]


def test_custom_regex_findings_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = PIIDetector(["EMAIL"], [RegexSpec("ORDER_ID", r"ORD-\d{6}", "internal order id")])
    text = "ORD-123456 for x@example.org, ORD-12 is short"
    findings = detector.detect(text, DetectContext())
    assert [(f.detector, f.type, text[f.start : f.end]) for f in findings] == [
        ("pii", "EMAIL", "x@example.org"),
        ("regex", "ORDER_ID", "ORD-123456"),
    ]
    assert mask(text, findings) == "{ORDER_ID} for {EMAIL}, ORD-12 is short"
    with pytest.raises(ValueError, match="does not compile"):
        PIIDetector([], [RegexSpec("BAD", "(")])
    monkeypatch.setattr("plinth.guard.pii._REGEX_TIMEOUT_S", 1e-6)  # a user regex must not stall a request
    slow = PIIDetector([], [RegexSpec("SLOW", r"(?:a|aa)+b")])
    with pytest.raises(DetectorError, match="timed out"):
        slow.detect("a" * 200_000, DetectContext())


def test_type_lists_are_consistent() -> None:
    assert isinstance(ALL, Detector)
    with pytest.raises(ValueError, match="unsupported PII types"):
        PIIDetector(["NAME"])
    assert not set(SUPPORTED_TYPES) & set(UNSUPPORTED_TYPES)
    assert set(BEDROCK_TYPES) == (set(SUPPORTED_TYPES) | set(UNSUPPORTED_TYPES)) - {"API_TOKEN"}
    assert len(BEDROCK_TYPES) == 31  # Bedrock's GuardrailPiiEntityType enumeration


def test_detection_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    fresh = PIIDetector(["EMAIL", "URL"])
    text = "write to someone@unusual-domain.museum or https://example.org"
    assert [f.type for f in fresh.detect(text, DetectContext())] == ["EMAIL", "URL"]
