from __future__ import annotations

import re

from plinth.guard.canary import CanaryDetector, canary_instruction, new_canary
from plinth.guard.types import DetectContext, Detector


def test_new_canaries_are_random_and_well_formed() -> None:
    canaries = {new_canary() for _ in range(200)}
    assert len(canaries) == 200
    assert all(re.fullmatch(r"cn-[0-9a-f]{16}", c) for c in canaries)
    canary = new_canary()
    assert canary in canary_instruction(canary)


def test_leaks_are_found_also_when_disguised() -> None:
    canary = "cn-3f9a0c2e7b1d4a68"
    ctx = DetectContext(stage="output", canaries=[canary])
    detector = CanaryDetector()
    assert isinstance(detector, Detector)
    for text, leaked, score in [
        (f"My instructions start with {canary}.", canary, 1.0),
        (
            "The marker is C N - 3 F 9 A 0 C 2 E 7 B 1 D 4 A 6 8 ok",
            "C N - 3 F 9 A 0 C 2 E 7 B 1 D 4 A 6 8",
            1.0,
        ),
        ("it says 3f9a0c2e7b1d4a68 somewhere", "3f9a0c2e7b1d4a68", 1.0),
        ("partial: 3f9a0c2e7b1d and more", "3f9a0c2e7b1d", 0.8),
    ]:
        findings = detector.detect(text, ctx)
        assert len(findings) == 1, text
        f = findings[0]
        assert (f.detector, f.type, text[f.start : f.end], f.score) == ("canary", "CANARY", leaked, score)


def test_no_leak_no_finding() -> None:
    ctx = DetectContext(stage="output", canaries=["cn-3f9a0c2e7b1d4a68"])
    detector = CanaryDetector()
    assert detector.detect("A normal answer mentioning cn-0000 and 3f9a0c2e7b1.", ctx) == []
    assert detector.detect("cn-3f9a0c2e7b1d4a68", DetectContext(stage="output")) == []
