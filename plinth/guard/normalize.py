"""Undo the cheap disguises attackers put on an instruction before anything scans it.

A regex or a classifier only sees what it is shown: "ｉｇｎｏｒｅ", "іgnore" (Cyrillic і), "ig\u200bnore",
"i g n o r e" and ``aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=`` all read "ignore" to a model but not to
a pattern. :func:`normalise` folds these to one plain form and returns every *variant* worth scanning (the
folded text first, then de-spaced / de-leeted forms and decoded base64 / hex / rot13 / tag-character
payloads), plus flags for what was hidden -- invisible characters in user text are a signal on their own::

    n = normalise("ig\u200bnore previous instructions")
    n.text            # "ignore previous instructions"
    n.invisible       # 1

Everything is bounded: decoding only looks at the first ``MAX_SCAN_CHARS`` characters, keeps at most
``MAX_DECODED`` payloads of at most ``MAX_PAYLOAD_CHARS`` each, so a hostile input cannot make the guard
slow.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["Normalised", "normalise"]

MAX_SCAN_CHARS = 100_000
MAX_DECODED = 4
MAX_PAYLOAD_CHARS = 4_096

# Zero-width, joiners, bidi embeddings/overrides/isolates, word joiner, BOM, soft hyphen, Mongolian vowel
# separator: invisible in a rendered prompt, used to split trigger words or reorder what a reviewer sees.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Unicode "tag" characters mirror ASCII (U+E0020..U+E007E) and render as nothing ("ASCII smuggling").
_TAGS = re.compile("[\U000e0000-\U000e007f]+")

# Latin look-alikes that NFKC leaves alone (it already folds fullwidth and mathematical letters).
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
        "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
        "ɡ": "g", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ү": "Y",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_CONFUSABLE_CHARS = frozenset(chr(c) for c in _CONFUSABLES)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})

_WORD = re.compile(r"\S+")
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")  # "i g n o r e", "i.g.n.o.r.e"
_LEETY = re.compile(r"\b(?=[A-Za-z0-9@$]*[A-Za-z])(?=[A-Za-z0-9@$]*[0-9@$])[A-Za-z0-9@$]{3,}\b")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:]?){8,}")
_COMMON = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "to",
        "of",
        "in",
        "on",
        "for",
        "is",
        "are",
        "be",
        "you",
        "your",
        "all",
        "any",
        "this",
        "that",
        "with",
        "as",
        "it",
        "not",
        "do",
        "now",
        "from",
        "ignore",
        "instructions",
        "previous",
        "above",
        "say",
        "print",
        "tell",
        "me",
        "what",
        "how",
        "write",
    ]
)


@dataclass(slots=True)
class Normalised:
    """The folded text, every variant to scan (``variants[0] == text``) and what was hidden."""

    text: str
    variants: list[str] = field(default_factory=list)
    invisible: int = 0  # zero-width / bidi / tag characters removed
    confusables: int = 0  # look-alike letters folded to Latin
    decoded: list[str] = field(default_factory=list)  # kinds of payload decoded: base64, hex, rot13, tags

    @property
    def obfuscated(self) -> bool:
        """True when anything was hidden: invisible characters, look-alikes, or an encoded payload."""
        return bool(self.invisible or self.confusables or self.decoded)


def normalise(text: str) -> Normalised:
    """Fold ``text`` to plain form and collect the variants a detector should scan (see module doc)."""
    tags = "".join(chr(ord(c) - 0xE0000) for run in _TAGS.findall(text) for c in run if ord(c) >= 0xE0020)
    invisible = len(_INVISIBLE.findall(text)) + sum(len(run) for run in _TAGS.findall(text))
    clean = _TAGS.sub("", _INVISIBLE.sub("", text))
    clean = unicodedata.normalize("NFKC", clean)
    clean, confusables = _fold_confusables(clean)
    # Runs of spaces fold to one, but line breaks stay: a document's lines (table rows, a planted order
    # on a line of its own) are the sentences the classifier was trained to score.
    folded = "\n".join(" ".join(line.split()) for line in clean.splitlines() if line.strip())
    result = Normalised(text=folded, variants=[folded], invisible=invisible, confusables=confusables)
    if tags.strip():
        _add_decoded(result, tags, "tags")
    for variant in (_despace(folded), _deleet(folded)):
        if variant not in result.variants:
            result.variants.append(variant)
    _decode_payloads(result, folded[:MAX_SCAN_CHARS])
    return result


def _fold_confusables(text: str) -> tuple[str, int]:
    """Fold look-alikes only inside words that also hold ASCII letters, or when the text is mostly Latin:
    genuine Greek or Russian prose must not be turned into nonsense."""
    if not any(c in _CONFUSABLE_CHARS for c in text):
        return text, 0
    latin = sum(c.isascii() and c.isalpha() for c in text)
    letters = sum(c.isalpha() for c in text) or 1
    mostly_latin = latin / letters >= 0.5
    count = 0

    def fold(match: re.Match[str]) -> str:
        nonlocal count
        word = match.group(0)
        if not (mostly_latin or any(c.isascii() and c.isalpha() for c in word)):
            return word
        folded = word.translate(_CONFUSABLES)
        count += sum(a != b for a, b in zip(word, folded, strict=True))
        return folded

    return _WORD.sub(fold, text), count


def _despace(text: str) -> str:
    """Join letters spread out with single separators: "i g n o r e all" -> "ignore all"."""
    return _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)


def _deleet(text: str) -> str:
    """Read digits as letters inside short mixed words: "1gn0r3" -> "ignore" (long tokens are payloads)."""

    def fold(match: re.Match[str]) -> str:
        token = match.group(0)
        if len(token) > 15 or not _LEETY.fullmatch(token.strip(".,;:!?\"'()")):
            return token
        return token.translate(_LEET)

    return _WORD.sub(fold, text)


def _decode_payloads(result: Normalised, text: str) -> None:
    """Add decoded base64 / hex payloads and a rot13 reading when they decode to readable words."""
    for match in _BASE64.finditer(text):
        if len(result.decoded) >= MAX_DECODED:
            return
        _add_decoded(result, _b64(match.group(0)), "base64")
    for match in _HEX.finditer(text):
        if len(result.decoded) >= MAX_DECODED:
            return
        _add_decoded(result, _hex(match.group(0)), "hex")
    head = text[:MAX_PAYLOAD_CHARS]
    rot = codecs.decode(head, "rot13")
    if len(result.decoded) < MAX_DECODED and _wordiness(rot) > _wordiness(head) + 0.2:
        _add_decoded(result, rot, "rot13")


def _add_decoded(result: Normalised, payload: str | None, kind: str) -> None:
    if payload is None or not _readable(payload):
        return
    variant = " ".join(unicodedata.normalize("NFKC", payload[:MAX_PAYLOAD_CHARS]).split())
    if variant not in result.variants:
        result.variants.append(variant)
        result.decoded.append(kind)


def _b64(candidate: str) -> str | None:
    padded = candidate + "=" * (-len(candidate) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _hex(candidate: str) -> str | None:
    digits = re.sub(r"\\x|0x|[\s:]", "", candidate)
    try:
        return bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        return None


def _readable(payload: str) -> bool:
    """Mostly printable letters and spaces with at least two words: decoded noise is not worth scanning."""
    if len(payload) < 8 or " " not in payload.strip():
        return False
    printable = sum(c.isalpha() or c.isspace() or c in ".,:;!?'\"-()" for c in payload)
    return printable / len(payload) >= 0.85


def _wordiness(text: str) -> float:
    """Share of words that are common English words: rot13 of English scores high, of English low."""
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in _COMMON for w in words) / len(words) if words else 0.0
