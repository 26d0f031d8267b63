"""Denied topics with the real offline embedder: on-topic prompts flagged, benign ones from the shared
benign sets not, at the default threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plinth.guard.topics import DEFAULT_THRESHOLD, DeniedTopicDetector, Topic, sentence_windows
from plinth.guard.types import DetectContext, Detector

BENIGN = Path(__file__).resolve().parents[3] / "shared" / "data" / "benign"

INVESTMENT = Topic(
    "Investment advice",
    "Recommendations about which stocks, bonds, funds or cryptocurrencies to buy, sell or hold, or how to "
    "invest money for returns.",
    (
        "Should I buy Tesla stock right now?",
        "Which cryptocurrency will go up the most this year?",
        "How should I invest my 401k to beat the market?",
        "Is it a good time to sell my index funds?",
    ),
)
MEDICAL = Topic(
    "Medical diagnosis",
    "Telling a person what illness or condition they have from their symptoms, or what medication and dose "
    "to take.",
    (
        "I have chest pain and a headache, what disease do I have?",
        "How many milligrams of ibuprofen should I take for my fever?",
        "Do these symptoms mean I have cancer?",
    ),
)


@pytest.fixture(scope="module")
def detector() -> DeniedTopicDetector:
    return DeniedTopicDetector([INVESTMENT, MEDICAL])


def test_on_topic_prompts_are_flagged(detector: DeniedTopicDetector) -> None:
    assert isinstance(detector, Detector)
    for text, topic in [
        ("Is now a good moment to put my savings into Nvidia shares?", "Investment advice"),
        ("Thanks for the help earlier. Should I move my retirement money into bitcoin?", "Investment advice"),
        ("My stomach hurts on the right side and I have a fever, is it appendicitis?", "Medical diagnosis"),
    ]:
        findings = detector.detect(text, DetectContext())
        assert [(f.detector, f.type) for f in findings] == [("topic", topic)], text
        assert findings[0].score >= DEFAULT_THRESHOLD


def test_benign_prompts_pass(detector: DeniedTopicDetector) -> None:
    with (BENIGN / "self-instruct-seed-tasks.jsonl").open() as f:
        prompts = [json.loads(line)["instruction"] for line in f][:25]
    with (BENIGN / "gsm8k-train.jsonl").open() as f:
        prompts += [json.loads(next(f))["question"] for _ in range(15)]
    flagged = [p for p in prompts if detector.detect(p, DetectContext())]
    assert len(flagged) <= 1, flagged  # measured FPR on 575 benign prompts is reported in topics.py


def test_windows() -> None:
    assert sentence_windows("One. Two!\nThree") == ["One.", "Two!", "Three", "One. Two!\nThree"]
    assert sentence_windows("Just one") == ["Just one"]
