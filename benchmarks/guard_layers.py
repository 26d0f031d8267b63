"""The prompt-attack head over MiniLM's final mean vector *and* the mean of an intermediate layer.

The head shipped before reads one normalised mean of all-MiniLM-L6-v2's last hidden states per
piece (layer 4 beside it ships now, :data:`plinth.guard.ATTACK_FEATURES`, after this measurement). The
lower layers keep more of a text's surface: its mood, who it addresses, its register, which the last
layer trades for topic. This runs ``plinth guard eval``'s protocol (leave-one-source-out) with the
shipped head and recipe (:func:`~plinth.evals.guard.trainers.logistic`) over ``[final mean, layer L
mean]`` (768 features, both unit vectors, from one forward pass at serving time), then trains one model
on everything, calibrates it as ``plinth guard train`` does, and reports its false alarms on the
look-alike benign set. Each argument is a set of layers, ``+``-joined::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/guard_layers.py 3 4 2+4

Final-layer means come from ``~/.cache/plinth/guard-embeddings.npz`` (as ``plinth guard eval`` fills
it); the means of layers 2-5 are cached in ``~/.cache/plinth/guard-layers.npz`` (float16, ~10 min to
fill on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plinth.evals.guard import calibrate, evaluate, evaluate_lookalikes, load_corpus
from plinth.evals.guard.corpus import LabelledText
from plinth.evals.guard.fit import DEFAULT_CACHE, cached_vectorizer
from plinth.evals.guard.trainers import Trainer, logistic
from plinth.guard import EmbeddingCache, Vectorize
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder
from plinth.llm.embedders import get_embedder

LAYERS = (2, 3, 4, 5)  # the intermediate layers cached (of 6); hidden_states[0] is the embeddings
LAYER_CACHE = Path.home() / ".cache" / "plinth" / "guard-layers.npz"
LAYER_MODEL = f"{DEFAULT_EMBEDDING_MODEL}#layers2345"  # the cache's key prefix
WIDTH = 384


def layer_means(embedder: SentenceEmbedder, batch_size: int = 32) -> Vectorize:
    """Per text, :meth:`~plinth.llm.embedder.SentenceEmbedder.layer_means` of :data:`LAYERS` side by
    side, stored as float16 (the cache holds four layers of ~26k pieces)."""

    def embed(texts: list[str]) -> np.ndarray:
        means = embedder.layer_means(texts, LAYERS, batch_size=batch_size)
        return means.reshape(len(texts), WIDTH * len(LAYERS)).astype(np.float16)

    return embed


class MeanAndLayers:
    """``[final mean, mean of each chosen layer]``, each block a unit vector."""

    def __init__(
        self, layers: Sequence[int], cache: Path | None = LAYER_CACHE, mean_cache: Path | None = DEFAULT_CACHE
    ) -> None:
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"layers must be among {LAYERS}; got {sorted(unknown)}")
        embedder = get_embedder(DEFAULT_EMBEDDING_MODEL)
        assert isinstance(embedder, SentenceEmbedder)
        computed = layer_means(embedder)
        self.mean = cached_vectorizer(mean_cache)
        self.layers = EmbeddingCache(cache, computed, model_id=LAYER_MODEL) if cache else computed
        self.columns = [LAYERS.index(layer) for layer in layers]

    def __call__(self, texts: list[str]) -> np.ndarray:
        stacked = np.asarray(self.layers(texts), dtype=np.float32)
        blocks = [stacked[:, WIDTH * c : WIDTH * (c + 1)] for c in self.columns]
        return np.hstack([self.mean(texts), *blocks])


def probe(build: Trainer, rows: list[LabelledText], data: Path) -> None:
    """Print ``plinth guard eval``'s held-out table for ``build``, then train one model on everything,
    calibrate it as ``plinth guard train`` does, and print its look-alike false alarms."""
    print(evaluate(data, build=build, rows=rows).format())
    model = build([r for r in rows if r.label == 1 or r.split == "train"])
    calibrate(model, rows)
    print(evaluate_lookalikes(model).format())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layers", nargs="*", default=["4"], help="layer sets, e.g. 3 4 2+4")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    rows = load_corpus(args.data)
    for spec in args.layers:
        layers = [int(layer) for layer in spec.split("+")]
        start = time.perf_counter()
        print(f"== final mean + layer(s) {spec}")
        probe(logistic(MeanAndLayers(layers)), rows, args.data)  # the shipped head over the wider vectors
        print(f"({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
