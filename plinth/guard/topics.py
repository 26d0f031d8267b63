"""Denied topics (Bedrock ``topicPolicyConfig``) matched by embedding similarity.

A :class:`Topic` is a name, a one-sentence definition and a few example prompts. The detector embeds the
definition and each example once per topic set (all-MiniLM-L6-v2, offline), embeds the text as sentence
windows (each sentence, and the whole text when short) and reports a topic when the best cosine
similarity between any window and any of the topic's vectors reaches ``threshold``::

    advice = Topic("Investment advice", "Recommendations on which stocks, funds or crypto to buy or sell.",
                   ("Should I buy Tesla shares now?", "Which crypto will go up next month?"))
    DeniedTopicDetector([advice]).detect("Is now a good time to buy Nvidia stock?", DetectContext())
    # [Finding(detector="topic", type="Investment advice", score=0.6..., ...)]

:data:`DEFAULT_THRESHOLD` (0.4) was calibrated on two topics (investment advice, medical diagnosis; four
examples each) against 575 benign prompts (175 self-instruct seed tasks, 400 GSM8K questions) and 20
hand-written on-topic prompts: at 0.4, 3/575 benign flagged (0.52%; one of them, "identify the possible
disease and suggest some medicine", is genuinely on-topic) and 19/20 on-topic found; at 0.45, 2/575 and
15/20; at 0.5, 1/575 and 9/20. Examples
matter more than the definition: a prompt resembles other prompts more than it resembles a definition.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from plinth.guard.types import DetectContext, DetectorError, Finding

if TYPE_CHECKING:
    from plinth.llm.embedding import Embedder

__all__ = ["DEFAULT_THRESHOLD", "DeniedTopicDetector", "Topic", "sentence_windows", "split_sentences"]

DEFAULT_THRESHOLD = 0.4
_MAX_WINDOWS = 64  # a long text is checked on its first 64 sentences: latency is bounded per request
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

_CACHE: dict[tuple[int, tuple[Topic, ...]], tuple[np.ndarray, list[int]]] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Topic:
    """A denied topic: Bedrock's ``name``, ``definition`` and ``examples``."""

    name: str
    definition: str
    examples: tuple[str, ...] = ()


def split_sentences(text: str, limit: int = _MAX_WINDOWS) -> list[str]:
    """The first ``limit`` sentences of ``text`` (split after . ! ? and at line breaks)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()][:limit]


def sentence_windows(text: str, limit: int = _MAX_WINDOWS) -> list[str]:
    """The sentences of ``text``, plus the whole text when it has several: one on-topic sentence in a
    long benign message is found, and so is a topic spread over a short one."""
    sentences = split_sentences(text, limit)
    whole = text.strip()
    return sentences + [whole] if len(sentences) > 1 and len(whole) < 2000 else sentences or [whole]


def default_embedder() -> Embedder:
    """The process-wide local all-MiniLM-L6-v2 (imported late: loading torch is slow)."""
    from plinth.llm.embedders import get_embedder

    return get_embedder()


class DeniedTopicDetector:
    """Reports each topic whose definition or examples the text is as close to as ``threshold``."""

    name = "topic"

    def __init__(
        self, topics: Sequence[Topic], threshold: float = DEFAULT_THRESHOLD, embedder: Embedder | None = None
    ):
        assert topics, "at least one topic"
        self.topics = tuple(topics)
        self.threshold = threshold
        self._embedder = embedder

    def similarities(self, text: str) -> list[float]:
        """The best similarity of ``text`` to each topic, in order (for calibration and reports)."""
        if not text.strip():
            return [0.0] * len(self.topics)
        embedder = self._embedder or default_embedder()
        vectors, owners = self._topic_vectors(embedder)
        try:
            windows = np.asarray(embedder.embed(sentence_windows(text)), dtype=np.float32)
        except Exception as exc:
            raise DetectorError(f"topic embedding failed: {exc}") from exc
        best_per_vector = (windows @ vectors.T).max(axis=0)
        return [
            float(best_per_vector[[i for i, o in enumerate(owners) if o == t]].max())
            for t in range(len(self.topics))
        ]

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        return [
            Finding("topic", topic.name, round(score, 3), detail=f"denied topic: {topic.name}")
            for topic, score in zip(self.topics, self.similarities(text), strict=True)
            if score >= self.threshold
        ]

    def _topic_vectors(self, embedder: Embedder) -> tuple[np.ndarray, list[int]]:
        """Definition and example vectors for every topic, embedded once per (embedder, topic set)."""
        key = (id(embedder), self.topics)
        with _CACHE_LOCK:
            if key not in _CACHE:
                texts, owners = [], []
                for i, topic in enumerate(self.topics):
                    texts += [topic.definition, *topic.examples]
                    owners += [i] * (1 + len(topic.examples))
                try:
                    _CACHE[key] = (np.asarray(embedder.embed(texts), dtype=np.float32), owners)
                except Exception as exc:
                    raise DetectorError(f"topic embedding failed: {exc}") from exc
            return _CACHE[key]
