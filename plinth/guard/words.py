"""Word filters (Bedrock ``wordPolicyConfig``): custom words and the managed PROFANITY list.

Matching is whole-word and case-insensitive on a normalised copy of the text: compatibility forms folded
(NFKD: fullwidth "ｆｕｃｋ", ligatures), accents and other combining marks dropped ("fück"), case folded.
Spans point into the original text. A multi-word entry matches across any run of whitespace::

    WordDetector(["acme rival"], managed_lists=["PROFANITY"]).detect("Try ACME  Rival!", DetectContext())
    # [Finding(detector="word", type="CUSTOM_WORD", score=1.0, start=4, end=15, detail="custom word")]

The PROFANITY list (``profanity.txt``) is small and non-exhaustive: a baseline of common English
profanities, not a lexicon; add custom words for your audience. Findings never repeat the word.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from importlib import resources

from plinth.guard.types import DetectContext, Finding

__all__ = ["MANAGED_LISTS", "WordDetector", "managed_words", "normalize"]

MANAGED_LISTS = ("PROFANITY",)


@functools.cache
def managed_words(list_type: str) -> tuple[str, ...]:
    """The entries of a managed list (package data; ``#`` lines are comments)."""
    if list_type not in MANAGED_LISTS:
        raise ValueError(f"unknown managed word list {list_type!r}; known: {', '.join(MANAGED_LISTS)}")
    raw = resources.files("plinth.guard").joinpath(f"{list_type.lower()}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in raw.splitlines() if line.strip() and not line.startswith("#"))


def normalize(text: str) -> tuple[str, list[int]]:
    """``text`` folded for matching, and for each folded character the index of its source character."""
    folded: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for part in unicodedata.normalize("NFKD", ch):
            if not unicodedata.combining(part):
                for c in part.casefold():
                    folded.append(c)
                    origin.append(i)
    return "".join(folded), origin


def _pattern(entries: Sequence[str]) -> re.Pattern[str] | None:
    """One alternation, longest entries first so "son of a bitch" wins over "bitch"."""
    keys = sorted({normalize(e.strip())[0] for e in entries if e.strip()}, key=len, reverse=True)
    if not keys:
        return None
    alternatives = (r"\s+".join(re.escape(part) for part in key.split()) for key in keys)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


class WordDetector:
    """Finds custom ``words`` (type ``CUSTOM_WORD``) and entries of ``managed_lists`` (type = list name)."""

    name = "word"

    def __init__(self, words: Sequence[str] = (), managed_lists: Sequence[str] = ()) -> None:
        self._patterns = [(p, "CUSTOM_WORD", "custom word") for p in [_pattern(words)] if p]
        for list_type in managed_lists:
            pattern = _pattern(managed_words(list_type))
            assert pattern is not None
            self._patterns.append((pattern, list_type, f"word from the managed {list_type.lower()} list"))

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        folded, origin = normalize(text)
        findings = []
        for pattern, kind, detail in self._patterns:
            for m in pattern.finditer(folded):
                findings.append(
                    Finding("word", kind, 1.0, origin[m.start()], origin[m.end() - 1] + 1, detail)
                )
        return sorted(findings, key=lambda f: f.start or 0)
