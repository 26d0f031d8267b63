"""Grounding and relevance on movie plots with the real offline embedder."""

from __future__ import annotations

import pytest

from plinth.guard.grounding import GroundingDetector, content_tokens
from plinth.guard.types import DetectContext, Detector

JAWS = (
    "Jaws is a 1975 American thriller film directed by Steven Spielberg. A great white shark attacks "
    "beachgoers on Amity Island, a summer resort town. Police chief Martin Brody tries to close the beaches, "
    "but the mayor refuses. Brody hires the shark hunter Quint and the oceanographer Matt Hooper, and the "
    "three sail out on the Orca to kill the shark."
)
CTX = DetectContext(stage="output", query="What happens in Jaws and who made it?", sources=[JAWS])

FAITHFUL = (
    "Jaws was directed by Steven Spielberg and released in 1975. A great white shark attacks beachgoers on "
    "Amity Island. Police chief Brody hires the shark hunter Quint and oceanographer Hooper to kill it."
)
INVENTED = (
    "Jaws was directed by Steven Spielberg and released in 1975. A great white shark attacks beachgoers on "
    "Amity Island. The shark is finally killed by a submarine crew led by Captain Nemo in 1983, after it "
    "sank 14 ships."
)
OFF_TOPIC = "Preheat the oven to 200 degrees and bake the bread for forty minutes until golden."


@pytest.fixture(scope="module")
def detector() -> GroundingDetector:
    return GroundingDetector(grounding_threshold=0.6, relevance_threshold=0.3)


def test_faithful_answer_scores_high_and_passes(detector: GroundingDetector) -> None:
    assert isinstance(detector, Detector)
    grounding, relevance = detector.scores(FAITHFUL, CTX)
    assert grounding is not None and relevance is not None
    assert grounding >= 0.7 and relevance >= 0.4
    assert detector.detect(FAITHFUL, CTX) == []


def test_invented_facts_score_lower_and_are_flagged(detector: GroundingDetector) -> None:
    faithful, _ = detector.scores(FAITHFUL, CTX)
    invented, _ = detector.scores(INVENTED, CTX)
    assert invented is not None and faithful is not None and invented < faithful - 0.2
    findings = detector.detect(INVENTED, CTX)
    assert [(f.detector, f.type) for f in findings] == [("grounding", "GROUNDING")]
    assert findings[0].score == pytest.approx(invented, abs=1e-3)


def test_off_topic_answer_is_irrelevant(detector: GroundingDetector) -> None:
    kinds = {f.type for f in detector.detect(OFF_TOPIC, CTX)}
    assert kinds == {"GROUNDING", "RELEVANCE"}


def test_missing_sources_or_query_give_no_score(detector: GroundingDetector) -> None:
    assert detector.scores(FAITHFUL, DetectContext(stage="output")) == (None, None)
    assert detector.detect(FAITHFUL, DetectContext(stage="output")) == []


def test_content_tokens_keep_numbers_and_drop_stopwords() -> None:
    assert content_tokens("The shark sank 1,400 ships in 1983.") == ["shark", "sank", "1400", "ships", "1983"]
