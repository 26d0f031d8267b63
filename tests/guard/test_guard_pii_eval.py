"""The generated PII set is labelled correctly (checked here with independent checksum code) and the
detector reaches the issue's goal on it: precision and recall >= 0.98, no invalid card masked."""

from __future__ import annotations

import re

from plinth.evals.guard.pii import (
    CORE_TYPES,
    evaluate_pii,
    generate_pii_set,
    iban_check_digits,
    luhn_check_digit,
)


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)][::-1]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits)) % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1


def test_checksum_helpers_against_published_examples() -> None:
    assert luhn_check_digit("411111111111111") == "1"  # 4111 1111 1111 1111
    assert luhn_check_digit("7992739871") == "3"  # Wikipedia's Luhn example
    assert iban_check_digits("DE", "370400440532013000") == "89"  # DE89 3704 0044 0532 0130 00
    assert iban_check_digits("GB", "WEST12345698765432") == "82"


def test_labels_follow_from_construction() -> None:
    items = generate_pii_set(300, seed=5)
    assert items == generate_pii_set(300, seed=5)  # deterministic
    seen = set()
    for item in items:
        for start, end, kind in item.spans:
            value = item.text[start:end]
            seen.add(kind)
            if kind == "CREDIT_DEBIT_CARD_NUMBER":
                assert luhn_ok(value), value
            if kind == "INTERNATIONAL_BANK_ACCOUNT_NUMBER":
                assert iban_ok(value), value
            if kind == "US_SOCIAL_SECURITY_NUMBER":
                area, group, serial = (int(x) for x in value.split("-"))
                assert 0 < area < 900 and area != 666 and group and serial, value
        for start, end in item.invalid_cards:
            assert not luhn_ok(item.text[start:end])
    assert seen == set(CORE_TYPES)
    assert sum(len(i.invalid_cards) for i in items) > 20


def test_precision_and_recall_reach_the_goal() -> None:
    report = evaluate_pii(n=400, seed=11)
    assert report.overall.tp > 500
    assert report.overall.precision >= 0.98 and report.overall.recall >= 0.98, report.format()
    for kind, counts in report.per_type.items():
        assert counts.precision >= 0.95 and counts.recall >= 0.95, (kind, report.format())
    assert report.invalid_cards > 20 and report.invalid_cards_masked == 0
    assert "OVERALL" in report.format()
