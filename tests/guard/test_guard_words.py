from __future__ import annotations

import pytest

from plinth.guard.types import DetectContext, Detector
from plinth.guard.words import WordDetector, managed_words, normalize


def found(detector: WordDetector, text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detector.detect(text, DetectContext())]


def test_custom_words_whole_word_case_insensitive_multiword() -> None:
    detector = WordDetector(["Project Falcon", "acme"])
    assert isinstance(detector, Detector)
    assert found(detector, "ACME said project   falcon is late; acmeville and acmes are fine.") == [
        ("CUSTOM_WORD", "ACME"),
        ("CUSTOM_WORD", "project   falcon"),
    ]


def test_unicode_variants_are_normalised_and_spans_map_back() -> None:
    detector = WordDetector(["cafe", "fuck"])
    text = "Meet at the Café, ｆｕｃｋ that."
    assert found(detector, text) == [("CUSTOM_WORD", "Café"), ("CUSTOM_WORD", "ｆｕｃｋ")]
    folded, origin = normalize("Ｃafé")
    assert folded == "cafe" and origin == [0, 1, 2, 3]


def test_managed_profanity_list() -> None:
    assert 10 < len(managed_words("PROFANITY")) < 200
    detector = WordDetector(managed_lists=["PROFANITY"])
    findings = detector.detect("What the Fuck, you son of a bitch. Scunthorpe is a town.", DetectContext())
    assert [(f.type, f.detector) for f in findings] == [("PROFANITY", "word")] * 2
    assert "son of a bitch" not in findings[1].detail  # details never repeat the word
    with pytest.raises(ValueError, match="unknown managed word list"):
        WordDetector(managed_lists=["SLURS"])
    assert WordDetector().detect("anything", DetectContext()) == []
