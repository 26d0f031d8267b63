"""Contextual grounding (Bedrock ``contextualGroundingPolicyConfig``): is an answer supported by its
sources (GROUNDING), and does it answer the query (RELEVANCE)?

Bedrock uses an entailment model; none ships offline here, so support is estimated from two signals that
fail differently, per answer sentence:

* semantic -- the best cosine similarity between the sentence and any source sentence (all-MiniLM-L6-v2):
  catches paraphrase, misses a changed number or name ("in 1975" and "in 1982" embed alike);
* lexical -- the share of the sentence's content words found in the sources, numbers weighted 3x: an
  answer figure or name absent from every source is the commonest hallucination, and this catches it.

``support = (semantic + lexical) / 2`` per sentence; the grounding score is the *weakest* support among
sentences with at least three content words (all sentences if none has), because one invented claim in
an otherwise faithful answer is exactly what the check exists to catch; a mean would dilute it. The
relevance score is the cosine similarity of the whole answer to the query, clipped to [0, 1]::

    detector = GroundingDetector(grounding_threshold=0.6, relevance_threshold=0.3)
    ctx = DetectContext(stage="output", query="Who directed Jaws?", sources=["Jaws (1975) ..."])
    grounding, relevance = detector.scores(answer, ctx)    # reported even when passing
    detector.detect(answer, ctx)                           # findings only below the thresholds
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from plinth.guard.topics import default_embedder, split_sentences
from plinth.guard.types import DetectContext, DetectorError, Finding

if TYPE_CHECKING:
    from plinth.llm.embedding import Embedder

__all__ = ["GroundingDetector", "content_tokens"]

NUMBER_WEIGHT = 3.0
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "than",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "we",
        "you",
        "i",
        "me",
        "my",
        "our",
        "your",
        "not",
        "no",
        "yes",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "must",
        "also",
        "very",
        "just",
        "about",
        "into",
        "over",
        "after",
        "before",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "some",
        "such",
        "there",
        "here",
        "out",
        "up",
    ]
)


def content_tokens(text: str) -> list[str]:
    """Lowercased words minus stopwords and one-letter words, plus numbers with separators removed."""
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        if token[0].isdigit():
            tokens.append(token.replace(",", ""))
        elif len(token) > 1 and token not in _STOPWORDS:
            tokens.append(token)
    return tokens


def _lexical_support(tokens: list[str], source_vocab: set[str]) -> float:
    weights = [NUMBER_WEIGHT if t[0].isdigit() else 1.0 for t in tokens]
    found = sum(w for t, w in zip(tokens, weights, strict=True) if t in source_vocab)
    return found / sum(weights) if weights else 1.0


class GroundingDetector:
    """GROUNDING and RELEVANCE findings when the scores fall below their thresholds."""

    name = "grounding"

    def __init__(
        self,
        grounding_threshold: float | None = 0.6,
        relevance_threshold: float | None = 0.3,
        embedder: Embedder | None = None,
    ):
        """A threshold of None turns that filter off (a policy may configure only one of the two); its
        score is still computed and reported."""
        self.grounding_threshold = grounding_threshold
        self.relevance_threshold = relevance_threshold
        self._embedder = embedder

    def scores(self, text: str, context: DetectContext) -> tuple[float | None, float | None]:
        """(grounding, relevance) in [0, 1]; ``None`` where the context lacks sources or a query."""
        sentences = split_sentences(text, limit=256)
        sources = [s for src in context.sources for s in split_sentences(src, limit=256)]
        embedder = self._embedder or default_embedder()
        try:
            grounding = self._grounding(sentences, sources, embedder) if sources and text.strip() else None
            relevance = (
                self._relevance(text, context.query, embedder) if context.query and text.strip() else None
            )
        except Exception as exc:
            raise DetectorError(f"grounding embedding failed: {exc}") from exc
        return grounding, relevance

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        grounding, relevance = self.scores(text, context)
        findings = []
        if (
            grounding is not None
            and self.grounding_threshold is not None
            and grounding < self.grounding_threshold
        ):
            findings.append(
                Finding(
                    "grounding",
                    "GROUNDING",
                    round(grounding, 3),
                    detail=f"grounding {grounding:.2f} below {self.grounding_threshold}",
                )
            )
        if (
            relevance is not None
            and self.relevance_threshold is not None
            and relevance < self.relevance_threshold
        ):
            findings.append(
                Finding(
                    "relevance",
                    "RELEVANCE",
                    round(relevance, 3),
                    detail=f"relevance {relevance:.2f} below {self.relevance_threshold}",
                )
            )
        return findings

    @staticmethod
    def _grounding(sentences: list[str], sources: list[str], embedder: Embedder) -> float:
        vectors = np.asarray(embedder.embed(sentences + sources), dtype=np.float32)
        semantic = (vectors[: len(sentences)] @ vectors[len(sentences) :].T).max(axis=1).clip(0.0, 1.0)
        vocab = {t for s in sources for t in content_tokens(s)}
        tokens = [content_tokens(s) for s in sentences]
        support = [
            (float(sem) + _lexical_support(tok, vocab)) / 2 for sem, tok in zip(semantic, tokens, strict=True)
        ]
        substantive = [s for s, tok in zip(support, tokens, strict=True) if len(tok) >= 3] or support
        return min(substantive)

    @staticmethod
    def _relevance(text: str, query: str, embedder: Embedder) -> float:
        answer, question = np.asarray(embedder.embed([text, query]), dtype=np.float32)
        return float(np.clip(answer @ question, 0.0, 1.0))
