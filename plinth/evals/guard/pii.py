"""A generated, labelled PII set and the precision/recall of :class:`~plinth.guard.pii.PIIDetector` on it.

The labels come from construction, never from the detector: card numbers are made Luhn-valid (or broken)
by :func:`luhn_check_digit`, IBANs get their mod-97 check digits from :func:`iban_check_digits`, SSNs
follow (or break) the SSA's issuing rules; each is written into varied prose with the span recorded.
Negatives sit beside them: checksum-broken cards, IBANs and SSNs, order numbers, dates, prices, ISBNs,
git hashes and dotted version numbers. Scoring is span-level with exact type match::

    report = evaluate_pii(n=600)
    print(report.format())
    report.overall.precision, report.invalid_cards_masked   # goal: >= 0.98, and 0
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from plinth.guard import DetectContext, PIIDetector

__all__ = ["CORE_TYPES", "Counts", "LabelledText", "PIIReport", "evaluate_pii", "generate_pii_set"]

CORE_TYPES = (
    "EMAIL",
    "PHONE",
    "CREDIT_DEBIT_CARD_NUMBER",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
    "US_SOCIAL_SECURITY_NUMBER",
    "IP_ADDRESS",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "API_TOKEN",
)

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    spans: tuple[Span, ...]  # (start, end, type): what a perfect detector finds
    invalid_cards: tuple[tuple[int, int], ...] = ()  # Luhn-broken card numbers: must never be flagged


# ---- checksums, written here independently of Presidio's validators ----


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: move country + "00" to the end, letters to numbers, 98 minus the value mod 97."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def ssn_is_valid(area: int, group: int, serial: int) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


# ---- value generators: each returns (value, is_real_pii) ----

_CARD_BRANDS = [
    ("4", 16),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("3530", 16),
    ("36", 14),
]
_IBAN_BBAN: dict[str, Callable[[random.Random], str]] = {
    "DE": lambda r: _digits(r, 18),
    "GB": lambda r: "".join(r.choices(string.ascii_uppercase, k=4)) + _digits(r, 14),
    "FR": lambda r: _digits(r, 23),
    "NL": lambda r: "".join(r.choices(string.ascii_uppercase, k=4)) + _digits(r, 10),
    "ES": lambda r: _digits(r, 20),
    "IT": lambda r: r.choice(string.ascii_uppercase) + _digits(r, 22),
}
_B32 = string.ascii_uppercase + "234567"
_B64 = string.ascii_letters + string.digits + "/+"
_ALNUM = string.ascii_letters + string.digits


def _digits(r: random.Random, n: int) -> str:
    return "".join(r.choices(string.digits, k=n))


def _group(s: str, sizes: list[int], sep: str) -> str:
    parts, i = [], 0
    for size in sizes:
        parts.append(s[i : i + size])
        i += size
    return sep.join(parts)


def card(r: random.Random, valid: bool) -> str:
    prefix, length = r.choice(_CARD_BRANDS)
    payload = prefix + _digits(r, length - len(prefix) - 1)
    check = luhn_check_digit(payload)
    number = payload + (check if valid else str((int(check) + r.randint(1, 9)) % 10))
    sizes = {16: [4, 4, 4, 4], 15: [4, 6, 5], 14: [4, 6, 4]}[length]
    return _group(number, sizes, r.choice([" ", "-", ""]))


def iban(r: random.Random, valid: bool) -> str:
    country = r.choice(list(_IBAN_BBAN))
    bban = _IBAN_BBAN[country](r)
    check = iban_check_digits(country, bban)
    if not valid:
        check = f"{(int(check) + r.randint(1, 96)) % 97 + 2:02d}"
        if check == iban_check_digits(country, bban):  # pragma: no cover - the shift never lands on it
            check = f"{(int(check) + 1) % 100:02d}"
    compact = country + check + bban
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if r.random() < 0.5 else compact


def ssn(r: random.Random, valid: bool) -> str:
    while True:
        area = r.randint(1, 899) if valid else r.choice([0, 666, r.randint(900, 999)])
        group, serial = r.randint(1, 99), r.randint(1, 9999)
        if not valid and r.random() < 0.3:
            area, group = r.randint(1, 665), 0
        number = f"{area:03d}{group:02d}{serial:04d}"
        if ssn_is_valid(area, group, serial) == valid and len(set(number)) > 1 and number != "123456789":
            return f"{number[:3]}-{number[3:5]}-{number[5:]}"


def email(r: random.Random) -> str:
    first, last = r.choice(_FIRST), r.choice(_LAST)
    local = r.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{r.randint(1, 99)}"])
    return f"{local}@{r.choice(['example.com', 'mail.org', 'acme.co.uk', 'startup.io', 'firma.de'])}"


def phone(r: random.Random) -> str:
    area, exchange, line = r.choice(_US_AREAS), r.randint(200, 999), r.randint(0, 9999)
    while exchange % 100 == 11 or exchange == 555:
        exchange = r.randint(200, 999)
    us = [
        f"({area}) {exchange}-{line:04d}",
        f"{area}-{exchange}-{line:04d}",
        f"+1 {area} {exchange} {line:04d}",
    ]
    intl = [
        f"+44 20 7{_digits(r, 3)} {_digits(r, 4)}",
        f"+49 30 {_digits(r, 8)}",
        f"+33 1 {' '.join(_digits(r, 2) for _ in range(4))}",
        f"+91 9{_digits(r, 4)} {_digits(r, 5)}",
    ]
    return r.choice(us + intl)


def ip(r: random.Random) -> str:
    if r.random() < 0.6:
        return ".".join(
            str(x) for x in [r.randint(1, 223), r.randint(0, 255), r.randint(0, 255), r.randint(1, 254)]
        )
    groups = [f"{r.randint(0, 0xFFFF):x}" for _ in range(8)]
    return "2001:db8::" + ":".join(groups[:3]) if r.random() < 0.5 else ":".join(groups)


def aws_key_id(r: random.Random) -> str:
    return r.choice(["AKIA", "ASIA"]) + "".join(r.choices(_B32, k=16))


def aws_secret(r: random.Random) -> str:
    return "".join(r.choices(_B64, k=40))


def api_token(r: random.Random) -> str:
    kind = r.randrange(4)
    if kind == 0:
        return "ghp_" + "".join(r.choices(_ALNUM, k=36))
    if kind == 1:
        return f"xoxb-{_digits(r, 12)}-{_digits(r, 13)}-" + "".join(r.choices(_ALNUM, k=24))
    if kind == 2:
        return "sk-proj-" + "".join(r.choices(_ALNUM + "_-", k=48))
    return _jwt(r)


def _jwt(r: random.Random) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(r.randbytes(32)).rstrip(b"=").decode()
    header, claims = (
        b64({"alg": "HS256", "typ": "JWT"}),
        b64({"sub": _digits(r, 8), "iat": r.randint(1, 2**31)}),
    )
    return f"{header}.{claims}.{signature}"


# ---- prose ----

_FIRST = ["anna", "bob", "chen", "dmitri", "elena", "farah", "george", "hana", "ivan", "julia"]
_LAST = ["smith", "garcia", "li", "novak", "okafor", "rossi", "schmidt", "tanaka", "walsh", "young"]
_US_AREAS = [212, 206, 303, 312, 404, 415, 512, 617, 702, 919]

_POSITIVE: list[tuple[str, Callable[[random.Random], str], list[str]]] = [
    (
        "CREDIT_DEBIT_CARD_NUMBER",
        lambda r: card(r, True),
        [
            "Please charge my card {v} for the order.",
            "The number on the card is {v}, expiry next year.",
            "{v}",
        ],
    ),
    (
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        lambda r: iban(r, True),
        ["Wire the refund to {v} please.", "My IBAN: {v}.", "Account {v} belongs to the landlord."],
    ),
    (
        "US_SOCIAL_SECURITY_NUMBER",
        lambda r: ssn(r, True),
        ["My SSN is {v}.", "Social security number {v} was on the form.", "Applicant {v} signed yesterday."],
    ),
    ("EMAIL", email, ["Write to {v} if anything breaks.", "cc: {v}", "Her address, {v}, bounced twice."]),
    ("PHONE", phone, ["Call me on {v} after 5pm.", "Phone: {v}", "The front desk ({v}) is open until nine."]),
    ("IP_ADDRESS", ip, ["The request came from {v} at midnight.", "Allow {v} in the firewall.", "host={v}"]),
    (
        "AWS_ACCESS_KEY",
        aws_key_id,
        ["aws_access_key_id = {v}", "Rotate key {v} today.", "Found {v} in a log."],
    ),
    (
        "AWS_SECRET_KEY",
        aws_secret,
        ["aws_secret_access_key = {v}", "The AWS secret is {v}", "export AWS_SECRET_ACCESS_KEY={v}"],
    ),
    (
        "API_TOKEN",
        api_token,
        ["token: {v}", "I pasted {v} into the config by mistake.", "Authorization: Bearer {v}"],
    ),
]

_NEGATIVE: list[tuple[Callable[[random.Random], str], list[str]]] = [
    (lambda r: card(r, False), ["Card {v} was declined as mistyped.", "Is {v} a card number?"]),
    (lambda r: iban(r, False), ["The IBAN {v} failed validation.", "Wire it to {v}?"]),
    (lambda r: ssn(r, False), ["SSN {v} is not a valid number.", "The form says {v}."]),
    (
        lambda r: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}",
        ["Upgrade to version {v} first.", "Fixed in release {v}."],
    ),
    (lambda r: f"#{r.randint(10000, 99999)}", ["Order {v} shipped on Monday.", "Ticket {v} is closed."]),
    (
        lambda r: f"{r.randint(2000, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
        ["The meeting is on {v}.", "Invoice dated {v}."],
    ),
    (
        lambda r: f"${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(0, 99):02d}",
        ["The laptop costs {v}.", "Total due: {v}."],
    ),
    (
        lambda r: f"978-{r.randint(0, 1)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}",
        ["ISBN {v} is out of print.", "See the book ({v})."],
    ),
    (lambda r: "".join(r.choices("0123456789abcdef", k=40)), ["Reverted commit {v}.", "sha {v}"]),
    (
        lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
        ["The job ran at {v}.", "Timestamp {v} in the log."],
    ),
]
_FILLER = [
    "Thanks for the quick reply.",
    "Let me know if you need anything else.",
    "The weather is awful today.",
    "We spent 3 hours on it.",
    "See you at 10 tomorrow.",
    "It took 45 minutes and cost 12 dollars.",
]


def generate_pii_set(n: int = 600, seed: int = 0) -> list[LabelledText]:
    """``n`` texts; each mixes one or two PII values, a look-alike and filler prose, labels recorded."""
    r = random.Random(seed)
    return [_labelled_text(r) for _ in range(n)]


def _labelled_text(r: random.Random) -> LabelledText:
    pieces: list[tuple[str, str, str | None, bool]] = []  # (template, value, type or None, invalid card)
    for _ in range(r.randint(1, 2)):
        entity, make, templates = r.choice(_POSITIVE)
        pieces.append((r.choice(templates), make(r), entity, False))
    make_negative, templates = r.choice(_NEGATIVE)
    pieces.append((r.choice(templates), make_negative(r), None, make_negative is _NEGATIVE[0][0]))
    pieces += [(f, "", None, False) for f in r.sample(_FILLER, r.randint(0, 2))]
    r.shuffle(pieces)
    text, spans, invalid = "", [], []
    for template, value, kind, is_invalid_card in pieces:
        text += " " if text else ""
        before, _, after = template.partition("{v}")
        start = len(text) + len(before)
        text += before + value + after
        if kind:
            spans.append((start, start + len(value), kind))
        if is_invalid_card:
            invalid.append((start, start + len(value)))
    return LabelledText(text, tuple(spans), tuple(invalid))


# ---- scoring ----


@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass(slots=True)
class PIIReport:
    per_type: dict[str, Counts] = field(default_factory=dict)
    overall: Counts = field(default_factory=Counts)
    texts: int = 0
    invalid_cards: int = 0  # checksum-broken card numbers in the set
    invalid_cards_masked: int = 0  # of those, how many any finding touched (goal: 0)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (fp|fn, type, text snippet)

    def format(self) -> str:
        """A plain-text table, one row per type, then the overall row."""
        lines = [
            f"PII detection on {self.texts} generated texts (span-level, exact type)",
            f"{'type':<36}{'precision':>10}{'recall':>8}{'tp':>6}{'fp':>5}{'fn':>5}",
        ]
        for name, c in [*sorted(self.per_type.items()), ("OVERALL", self.overall)]:
            lines.append(f"{name:<36}{c.precision:>10.3f}{c.recall:>8.3f}{c.tp:>6}{c.fp:>5}{c.fn:>5}")
        lines.append(
            f"checksum-invalid card numbers masked: {self.invalid_cards_masked} of {self.invalid_cards}"
        )
        return "\n".join(lines)


def evaluate_pii(n: int = 600, seed: int = 0, detector: PIIDetector | None = None) -> PIIReport:
    """Precision and recall of ``detector`` (all core types by default) on :func:`generate_pii_set`."""
    detector = detector or PIIDetector(CORE_TYPES, strict=CORE_TYPES)  # the checksum rules under test
    report = PIIReport(per_type={t: Counts() for t in CORE_TYPES})
    for item in generate_pii_set(n, seed):
        findings = detector.detect(item.text, DetectContext())
        predicted = {(f.start, f.end, f.type) for f in findings if f.start is not None and f.end is not None}
        gold = set(item.spans)
        for kind, spans in (("tp", predicted & gold), ("fp", predicted - gold), ("fn", gold - predicted)):
            for start, end, entity in spans:
                counts = report.per_type.setdefault(entity, Counts())
                setattr(counts, kind, getattr(counts, kind) + 1)
                setattr(report.overall, kind, getattr(report.overall, kind) + 1)
                if kind != "tp" and len(report.errors) < 50:
                    report.errors.append((kind, entity, item.text[max(0, start - 20) : end + 20]))
        report.texts += 1
        report.invalid_cards += len(item.invalid_cards)
        report.invalid_cards_masked += sum(
            any(s < e2 and s2 < e for s2, e2, _ in predicted) for s, e in item.invalid_cards
        )
    return report
