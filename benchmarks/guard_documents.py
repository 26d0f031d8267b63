"""Planted instructions judged as documents: the window score beside request-likeness x incongruity, per fold.

The protocol of ``plinth guard eval``: for each attack source with planted documents (deepset, pallms,
BIPIA), the fold's window classifier is fit on every *other* source with the shipped recipe
(:func:`~plinth.evals.guard.fit.fit`), and scored on the held-out source's planted documents against the
held-out benign documents (never trained on). Every document gets, from the fold's classifier and the
MiniLM vectors of its pieces and sentences (first 40):

- ``window``: the classifier's max over the document's windows and sentence groups (today's detector,
  classifier alone, no signatures);
- ``planted``: the max over sentences of P(attack | sentence) x incongruity (1 - cosine to the centroid
  of the other sentences): a request that does not belong to the text around it.

Scores fixed in advance (no weight is fit, so nothing is tuned on a held-out source): ``window`` alone,
``max(window, planted)`` (the first candidate), ``planted`` alone, and the max of each signal's quantile
among the held-out benign documents (the second: two signals on one scale, as separately calibrated
thresholds would be; it uses the benign documents only, as the thresholds do). Each is thresholded on
the held-out benign documents at 1 % FPR and at each strength's FPR target; the look-alike benign
documents (``lookalike_benign.jsonl``, never trained on) flagged at those thresholds are the cost::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/guard_documents.py

Embeddings are cached in ``~/.cache/plinth/`` (the training windows in ``guard-embeddings.npz``, as ``plinth
guard train`` fills it; the documents' pieces and sentences in ``guard-documents.npz``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from plinth.evals.guard import load_corpus
from plinth.evals.guard.evaluate import EVAL_WINDOWS, fold
from plinth.evals.guard.fit import DEFAULT_CACHE, cached_vectorizer, fit, threshold_at_fpr
from plinth.guard import FPR_BY_STRENGTH, EmbeddingCache, embedder_for
from plinth.guard.classifier import AttackClassifier, pieces, split_sentences
from plinth.guard.incongruity import incongruity
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

LOOKALIKE = Path(__file__).resolve().parents[1] / "plinth/evals/guard/lookalike_benign.jsonl"
DOCUMENTS_CACHE = DEFAULT_CACHE.with_name("guard-documents.npz")
SENTENCES = 40  # the first sentences of a document: bounds the embedding time of long ones
SOURCES = ("deepset", "pallms", "bipia")  # the attack sources with planted documents
TARGETS = {"1 % FPR": 0.01, **{name.upper(): fpr for name, fpr in FPR_BY_STRENGTH.items()}}


def _quantile(values: np.ndarray, benign: np.ndarray) -> np.ndarray:
    """Share of the held-out benign documents scoring at or below each value (their empirical CDF)."""
    return np.searchsorted(np.sort(benign), values, side="right") / len(benign)


# Each score sees (window, planted) of the documents it scores and of the held-out benign documents;
# only the last one uses the benign ones: each signal as a benign quantile, so neither dominates the max.
SCORES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "window": lambda window, planted, bw, bp: window,
    "max(window, planted)": lambda window, planted, bw, bp: np.maximum(window, planted),
    "planted": lambda window, planted, bw, bp: planted,
    "max of benign quantiles": lambda window, planted, bw, bp: np.maximum(
        _quantile(window, bw), _quantile(planted, bp)
    ),
}


class Document:
    """One document's piece and sentence vectors, and its sentences' incongruity."""

    def __init__(self, text: str, embed: EmbeddingCache) -> None:
        self.pieces = embed(pieces(text, limit=EVAL_WINDOWS, sentences=True))
        sentences = split_sentences(text)[:SENTENCES]
        self.sentences = embed(sentences) if sentences else np.zeros((0, self.pieces.shape[1]), np.float32)
        self.odd = incongruity(self.sentences)

    def scores(self, classifier: AttackClassifier) -> tuple[float, float]:
        window = float(classifier.score_vectors(self.pieces).max())
        if not len(self.odd):
            return window, 0.0
        return window, float((classifier.score_vectors(self.sentences) * self.odd).max())


def embed_all(texts: list[str], embed: EmbeddingCache) -> None:
    """Every piece and sentence of ``texts`` into the cache in one pass (it saves every 512 vectors;
    embedding document by document would rewrite the whole file per document)."""
    wanted = []
    for text in texts:
        wanted += pieces(text, limit=EVAL_WINDOWS, sentences=True) + split_sentences(text)[:SENTENCES]
    embed(list(dict.fromkeys(wanted)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = load_corpus(args.data)
    embed = EmbeddingCache(DOCUMENTS_CACHE, embedder_for(DEFAULT_EMBEDDING_MODEL))
    train_embed = cached_vectorizer(DEFAULT_CACHE)
    lines = [json.loads(line) for line in LOOKALIKE.read_text(encoding="utf-8").splitlines()]
    texts = [line["text"] for line in lines if line["stage"] == "data"]
    embed_all(texts + [r.text for r in rows if r.stage == "data"], embed)
    lookalike = [Document(text, embed) for text in texts]
    documents = {id(r): Document(r.text, embed) for r in rows if r.stage == "data"}
    results = {}
    for source in SOURCES:
        split = fold(rows, source)
        classifier = fit(split.train, train_embed)
        assert isinstance(classifier, AttackClassifier)
        attacks = [documents[id(r)].scores(classifier) for r in split.attacks if r.stage == "data"]
        benign = [documents[id(r)].scores(classifier) for r in split.benign if r.stage == "data"]
        others = [doc.scores(classifier) for doc in lookalike]
        results[source] = {name: _rates(score, attacks, benign, others) for name, score in SCORES.items()}
        _print(source, len(attacks), len(benign), len(others), results[source])
    _print_average(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _rates(score: Callable, attacks: list, benign: list, others: list) -> dict[str, float]:
    bw, bp = np.array(benign, dtype=np.float64).T
    a, b, o = (score(*np.array(pairs, dtype=np.float64).T, bw, bp) for pairs in (attacks, benign, others))
    out = {"auc": float(roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b]))}
    for name, fpr in TARGETS.items():
        threshold = threshold_at_fpr(b, fpr)
        out[f"tpr {name}"] = float((a > threshold).mean())
        out[f"look-alike {name}"] = float((o > threshold).mean())
    return out


def _print(source: str, attacks: int, benign: int, others: int, rates: dict[str, dict[str, float]]) -> None:
    print(f"\n{source} data: {attacks} planted documents, {benign} held-out benign, {others} look-alike")
    keys = list(next(iter(rates.values())))
    print("| score | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, values in rates.items():
        print(f"| {name} | " + " | ".join(f"{values[k]:.3f}" for k in keys) + " |")


def _print_average(results: dict[str, dict[str, dict[str, float]]]) -> None:
    print("\naverage over the sources")
    for name in SCORES:
        values = {
            k: np.mean([r[name][k] for r in results.values()]) for k in next(iter(results.values()))[name]
        }
        print(f"| {name} | " + " | ".join(f"{k} {v:.3f}" for k, v in values.items()) + " |")


if __name__ == "__main__":
    main()
