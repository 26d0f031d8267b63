"""The prompt-attack head over MiniLM's mean-pooled vector *and* its max-pooled token states.

The shipped head reads one mean-pooled, normalised all-MiniLM-L6-v2 vector per piece; a short order
inside a 180-word window is averaged away. Max-pooling the last hidden states keeps a token that stands
out. This runs ``plinth guard eval``'s protocol (leave-one-source-out, the shipped recipe: same pieces,
weights and C) with a logistic head over ``[mean, max]`` (768 features), then trains one model on
everything, calibrates it as ``plinth guard train`` does and reports its false alarms on the look-alike
benign set::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/guard_pooling.py

Mean vectors come from ``~/.cache/plinth/guard-embeddings.npz`` (as ``plinth guard eval`` fills it);
max-pooled ones are cached in ``~/.cache/plinth/guard-maxpool.npz`` (~17 min to fill on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from plinth.evals.guard import calibrate, evaluate, evaluate_lookalikes, load_corpus
from plinth.evals.guard.corpus import LabelledText
from plinth.evals.guard.fit import DEFAULT_CACHE, C, cached_vectorizer, training_pieces
from plinth.guard.classifier import pieces
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL
from plinth.llm.embedders import get_embedder

MAX_CACHE = Path.home() / ".cache" / "plinth" / "guard-maxpool.npz"


class MaxPooled:
    """Normalised max over a piece's last hidden states, cached on disk by the piece's sha256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.model = get_embedder(DEFAULT_EMBEDDING_MODEL).model
        self.vectors: dict[bytes, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as saved:
                self.vectors = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha256(text.encode()).digest() for text in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items())
        for at in range(0, len(missing), 512):
            chunk = missing[at : at + 512]
            with torch.inference_mode():
                states = self.model.encode(
                    [text for _, text in chunk], batch_size=2, output_value="token_embeddings"
                )
            for (key, _), tokens in zip(chunk, states, strict=True):
                vector = tokens.max(dim=0).values.float().numpy()
                self.vectors[key] = vector / (np.linalg.norm(vector) + 1e-9)
            self._save()
            print(f"max-pooled vectors cached: {len(self.vectors)}", file=sys.stderr, flush=True)
        return np.stack([self.vectors[k] for k in keys]).astype(np.float32)

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp.npz")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.vectors), dtype="S32")
        np.savez(tmp, keys=keys, vectors=np.stack(list(self.vectors.values())))
        tmp.replace(self.path)


class PooledHead:
    """An AttackScorer over ``[mean, max]`` features: the max over a text's pieces, as the shipped one."""

    def __init__(self, model: LogisticRegression, features: MeanAndMax) -> None:
        self.model, self.features = model, features
        self.thresholds: dict[str, dict[str, float]] = {}

    def score(self, texts: Sequence[str], *, stage: str = "input", limit: int = 256) -> np.ndarray:
        split = [pieces(text, limit=limit, sentences=stage == "data") for text in texts]
        scores = self.model.predict_proba(self.features([p for parts in split for p in parts]))[:, 1]
        out, at = np.empty(len(texts), dtype=np.float32), 0
        for index, parts in enumerate(split):
            out[index] = scores[at : at + len(parts)].max()
            at += len(parts)
        return out

    def save(self, path: Path) -> None:
        raise NotImplementedError("a measurement, not a shipped model")


class MeanAndMax:
    def __init__(self) -> None:
        self.mean, self.max = cached_vectorizer(DEFAULT_CACHE), MaxPooled(MAX_CACHE)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.hstack([self.mean(texts), self.max(texts)])


def fit_pooled(rows: Sequence[LabelledText], features: MeanAndMax) -> PooledHead:
    """The shipped recipe (pieces, source- and class-balanced weights, C) over ``[mean, max]``."""
    groups = Counter((r.label, r.source, r.stage) for r in rows)
    per_class = Counter(label for label, _, _ in groups)
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for row in rows:
        parts = training_pieces(row)
        share = 1.0 / (per_class[row.label] * groups[(row.label, row.source, row.stage)] * len(parts))
        texts += parts
        labels += [row.label] * len(parts)
        weights += [share] * len(parts)
    w = np.asarray(weights) * len(weights) / np.sum(weights)
    model = LogisticRegression(C=C, max_iter=3000).fit(features(texts), np.asarray(labels), sample_weight=w)
    return PooledHead(model, features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    features = MeanAndMax()
    rows = load_corpus(args.data)
    print(evaluate(args.data, build=lambda train: fit_pooled(train, features), rows=rows).format())
    model = fit_pooled([r for r in rows if r.label == 1 or r.split == "train"], features)
    calibrate(model, rows)
    print(evaluate_lookalikes(model).format())


if __name__ == "__main__":
    main()
