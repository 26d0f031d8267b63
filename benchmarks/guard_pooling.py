"""The prompt-attack head over MiniLM's mean-pooled vector *and* its max-pooled token states.

The shipped head reads one mean-pooled, normalised all-MiniLM-L6-v2 vector per piece; a short order
inside a 180-word window is averaged away. Max-pooling the last hidden states keeps a token that stands
out. This runs ``plinth guard eval``'s protocol (leave-one-source-out) with the shipped head and recipe
(:func:`~plinth.evals.guard.trainers.logistic`) over ``[mean, max]`` (768 features), then trains one
model on everything, calibrates it as ``plinth guard train`` does and reports its false alarms on the
look-alike benign set::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/guard_pooling.py

Mean vectors come from ``~/.cache/plinth/guard-embeddings.npz`` (as ``plinth guard eval`` fills it);
max-pooled ones are cached in ``~/.cache/plinth/guard-maxpooled.npz`` (~17 min to fill on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plinth.evals.guard import load_corpus
from plinth.evals.guard.fit import DEFAULT_CACHE, cached_vectorizer
from plinth.evals.guard.trainers import logistic
from plinth.guard import EmbeddingCache, Vectorize
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL
from plinth.llm.embedders import get_embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guard_layers import probe  # noqa: E402

MAX_CACHE = Path.home() / ".cache" / "plinth" / "guard-maxpooled.npz"
MAX_MODEL = f"{DEFAULT_EMBEDDING_MODEL}#max-pooled"  # the cache's key prefix: not the mean's vectors


def max_pooled(model: Any) -> Vectorize:
    """Normalised max over each text's last hidden states, from a sentence-transformers ``model``."""

    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            states = model.encode(texts, batch_size=2, output_value="token_embeddings")
        vectors = np.stack([tokens.max(dim=0).values.float().numpy() for tokens in states])
        return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)

    return embed


class MeanAndMax:
    def __init__(self, cache: Path | None = MAX_CACHE) -> None:
        pooled = max_pooled(get_embedder(DEFAULT_EMBEDDING_MODEL).model)
        self.mean = cached_vectorizer(DEFAULT_CACHE)
        self.max = EmbeddingCache(cache, pooled, model_id=MAX_MODEL) if cache else pooled

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.hstack([self.mean(texts), self.max(texts)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    # the shipped head and recipe, over [mean, max] vectors
    probe(logistic(MeanAndMax()), load_corpus(args.data), args.data)


if __name__ == "__main__":
    main()
