"""Optional second-stage reranking: a model rescores the store's top candidates for the query.

The seam is one method, so any scorer plugs in. Plinth ships a cross-encoder adapter (a
sentence-transformers ``CrossEncoder``, e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``, downloaded on
first use) but no reranker model offline, so none is used unless a knowledge base names one.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Protocol

from plinth.knowledge.types import Hit

CANDIDATES_PER_RESULT = 4  # rerank 4k candidates to return k


class Reranker(Protocol):
    def rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        """The ``k`` best of ``hits`` for ``query``, best first, with the reranker's scores."""


def apply_scores(hits: list[Hit], scores: list[float], k: int) -> list[Hit]:
    """Order ``hits`` by ``scores`` (stable for ties); keep the first-stage score in ``extra``."""
    ranked = sorted(zip(scores, range(len(hits)), hits, strict=True), key=lambda t: (-t[0], t[1]))
    return [
        dataclasses.replace(hit, score=float(score), extra={**hit.extra, "retrieval_score": hit.score})
        for score, _, hit in ranked[:k]
    ]


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder, loaded lazily once per process."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._model: Any = None
        self._lock = threading.Lock()

    def rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        if not hits:
            return []
        scores = self._load().predict([(query, hit.content) for hit in hits])
        return apply_scores(hits, [float(s) for s in scores], k)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(self.model_name)
            return self._model
