"""Sentence incongruity: a request that does not belong to the text around it.

A window classifier sees "Analyze the trend of electric car sales" inside an e-mail as an ordinary request;
what gives a planted task away is that it is *addressed to the reader* and *off the document's topic*.
Recipes and manuals are full of on-topic imperatives, so request-likeness alone raises false alarms:
incongruity (a sentence's cosine distance to the centroid of the other sentences) is what separates them.
It works on the sentence embeddings the guard already computes (MiniLM unit vectors), no new weights.
Measured alone by ``benchmarks/guard_incongruity.py``; not yet part of the shipped detector (README).
"""

from __future__ import annotations

import numpy as np

__all__ = ["incongruity"]


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
