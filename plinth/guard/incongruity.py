"""Document-level features for planted instructions: a request that does not belong to the text around it.

A window classifier sees "Analyze the trend of electric car sales" inside an e-mail as an ordinary request;
what gives a planted task away is that it is *addressed to the reader* and *off the document's topic*.
Recipes and manuals are full of on-topic imperatives, so request-likeness alone raises false alarms:
incongruity (a sentence's cosine distance to the centroid of the other sentences) is what separates them.
Everything here works on sentence embeddings the guard already computes (MiniLM unit vectors), no new
weights; a second-stage logistic regression (:class:`DocumentCombiner`) weighs the features::

    vectors = embed(split_sentences(document))
    odd = incongruity(vectors)                        # per sentence, 0 = on topic
    features = document_features(window_score, sentence_scores, odd)
    combiner.score(features[None, :])                 # P(planted instruction)
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

__all__ = ["FEATURES", "DocumentCombiner", "document_features", "incongruity"]

# Order of the columns :func:`document_features` returns (and the combiner's coefficients follow).
FEATURES = ("window", "planted", "max_incongruity", "last_planted")


def incongruity(vectors: np.ndarray) -> np.ndarray:
    """Per sentence: 1 - cosine(sentence, unit centroid of the *other* sentences), in [0, 2].

    Leave-one-out, so a planted sentence does not pull the centroid towards itself; a document of fewer
    than three sentences has no topic to stray from and scores zeros."""
    vectors = np.asarray(vectors, dtype=np.float64)
    count = len(vectors)
    if count < 3:
        return np.zeros(count)
    others = vectors.sum(axis=0, keepdims=True) - vectors
    norms = np.linalg.norm(others, axis=1, keepdims=True)
    others = others / np.maximum(norms, 1e-12)
    return 1.0 - np.einsum("ij,ij->i", vectors, others)


def document_features(window_score: float, sentence_scores: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """The combiner's input for one document, in :data:`FEATURES` order: the window classifier's score,
    the max over sentences of request-likeness x incongruity, the max incongruity, and that product for
    the last sentence alone (planted tasks are most often appended)."""
    scores, odd = np.asarray(sentence_scores, dtype=np.float64), np.asarray(odd, dtype=np.float64)
    assert scores.shape == odd.shape, "one score and one incongruity per sentence"
    if not len(scores):
        return np.array([window_score, 0.0, 0.0, 0.0])
    planted = scores * odd
    return np.array([window_score, planted.max(), odd.max(), planted[-1]])


class DocumentCombiner:
    """Second stage: logistic regression over :func:`document_features` rows; trained on training
    sources only, its thresholds calibrated on benign documents like the window classifier's."""

    def __init__(self, coef: np.ndarray, intercept: float) -> None:
        self.coef = np.asarray(coef, dtype=np.float64).reshape(-1)
        assert len(self.coef) == len(FEATURES), f"one coefficient per feature: {FEATURES}"
        self.intercept = float(intercept)

    @classmethod
    def fit(
        cls, features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None, C: float = 1.0
    ) -> DocumentCombiner:
        model = LogisticRegression(C=C, max_iter=1000)
        model.fit(features, labels, sample_weight=weights)
        return cls(model.coef_[0], float(model.intercept_[0]))

    def score(self, features: np.ndarray) -> np.ndarray:
        """P(planted instruction) per feature row."""
        logits = np.asarray(features, dtype=np.float64) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))
