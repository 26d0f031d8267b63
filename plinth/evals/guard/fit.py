"""The prompt-attack head as training and evaluation both fit it: the pieces a labelled text trains on,
source- and class-balanced weights, a fixed C, and thresholds set at a target false-positive rate::

    head = fit(rows, cached_vectorizer(cache_for(ATTACK_FEATURES), ATTACK_FEATURES))
    threshold = threshold_at_fpr(benign_scores, 0.01)
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from plinth.evals.guard import planted
from plinth.evals.guard.corpus import LabelledText
from plinth.guard import (
    AttackClassifier,
    EmbeddingCache,
    Vectorize,
    embedder_for,
    sentence_groups,
    split_sentences,
    windows,
)
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

__all__ = [
    "C",
    "DEFAULT_CACHE",
    "INPUT_ONLY_SOURCES",
    "TRAIN_GROUPS",
    "TRAIN_WINDOWS",
    "cache_for",
    "cached_vectorizer",
    "fit",
    "threshold_at_fpr",
    "training_pieces",
]

DEFAULT_CACHE = Path.home() / ".cache" / "plinth" / "guard-embeddings.npz"
TRAIN_WINDOWS = 3  # per text: the first ~450 words of a long jailbreak carry its intent
TRAIN_GROUPS = 2  # sentence groups per benign document (evenly spaced); the detector scores all of them
# Fixed in advance, never tuned on a held-out source: the inputs are unit vectors, so a small C underfits.
C = 10.0
# Training-only sources (``load_corpus(augment=True)``: benign tables, orders planted for the reading AI)
# that the input stage's head learns from and the data stage's does not (trainers.logistic): with them,
# a head flagged 1.3 % of the look-alike prompts at MEDIUM instead of 4.5 %, but 6.1 % of the look-alike
# documents instead of 2.4 %, and long runs of movie plots (README, Measured).
INPUT_ONLY_SOURCES = frozenset({"tables", planted.SOURCE})


def fit(
    rows: list[LabelledText], embed: Vectorize, C: float = C, model_id: str = DEFAULT_EMBEDDING_MODEL
) -> AttackClassifier:
    """Train the head on the windows of ``rows`` (source- and class-balanced weights), as vectorised by
    ``embed``, which computes the features ``model_id`` names."""
    groups = Counter((r.label, r.source, r.stage) for r in rows)
    per_class = Counter(label for label, _, _ in groups)
    texts, labels, weights = [], [], []
    for row in rows:
        parts = training_pieces(row)
        share = 1.0 / (per_class[row.label] * groups[(row.label, row.source, row.stage)] * len(parts))
        texts += parts
        labels += [row.label] * len(parts)
        weights += [share] * len(parts)
    w = np.asarray(weights) * len(weights) / np.sum(weights)
    return AttackClassifier.fit(embed(texts), np.asarray(labels), w, C=C, model_id=model_id)


def training_pieces(row: LabelledText) -> list[str]:
    """The windows a row trains on. Documents add sentence groups, as the detector scores them: a few
    evenly spaced ones of a benign document, and of a planted attack only those holding the instruction
    (the rest of it is benign prose and must not be taught as an attack)."""
    parts = windows(row.text, limit=TRAIN_WINDOWS)
    if row.stage != "data":
        return parts
    groups = [g for g in sentence_groups(row.text, limit=TRAIN_WINDOWS) if g not in parts]
    if row.label == 0:
        picked = sorted({i * len(groups) // TRAIN_GROUPS for i in range(TRAIN_GROUPS)}) if groups else []
        return parts + [groups[i] for i in picked]
    if row.payload is None:
        return parts
    marks = [" ".join(s.split())[:60] for s in split_sentences(row.payload)]
    return parts + [g for g in groups if any(mark in g for mark in marks)]


def threshold_at_fpr(benign_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold t with mean(benign > t) <= fpr (scores strictly above t are flagged)."""
    ordered = np.sort(np.asarray(benign_scores))[::-1]
    return float(ordered[min(int(fpr * len(ordered)), len(ordered) - 1)])


def cached_vectorizer(cache: Path | None, model_id: str = DEFAULT_EMBEDDING_MODEL) -> Vectorize:
    """The features ``model_id`` names, through an on-disk :class:`EmbeddingCache` at ``cache`` when
    given (training and evaluation embed ~20k pieces; a rerun then embeds only new texts)."""
    embed = embedder_for(model_id)
    return EmbeddingCache(cache, embed, model_id) if cache else embed


def cache_for(model_id: str) -> Path:
    """The cache file of ``model_id``'s features: one file per model id (a file holds rows of one width)."""
    if model_id == DEFAULT_EMBEDDING_MODEL:
        return DEFAULT_CACHE
    return DEFAULT_CACHE.with_name(f"guard-embeddings-{re.sub(r'[^A-Za-z0-9]+', '-', model_id)}.npz")
