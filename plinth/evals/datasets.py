"""Retrieval test collections on disk, loaded into plain dicts.

Contract: :func:`load_beir` reads the BEIR layout (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``) and keeps only the queries that have judgements in that split, because a query
without qrels cannot be scored (BEIR and trec_eval skip it too). Relevance grades are kept as given
(SciFact's are all 1; graded collections such as TREC-COVID use 0/1/2).

>>> data = load_beir("../shared/data/beir/scifact")        # doctest: +SKIP
>>> len(data.corpus), len(data.queries)                     # doctest: +SKIP
(5183, 300)
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

Qrels = dict[str, dict[str, int]]  # query id -> {doc id: relevance grade}


@dataclass(slots=True)
class BeirDataset:
    """A corpus (doc id -> (title, text)), the judged queries (id -> text), and their qrels."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: Qrels

    def document_text(self, doc_id: str) -> str:
        """Title and body as one string, the way BEIR feeds documents to dense and lexical models."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip()

    def sample(self, max_docs: int, seed: int = 0) -> BeirDataset:
        """A smaller collection for quick runs: whole queries (in id order) with all their relevant
        documents, up to half of ``max_docs``, then random other documents (seeded) as distractors."""
        queries: dict[str, str] = {}
        keep: set[str] = set()
        for qid in sorted(self.queries):
            relevant = {d for d, grade in self.qrels[qid].items() if grade > 0 and d in self.corpus}
            if len(keep | relevant) > max_docs // 2:
                break
            queries[qid], keep = self.queries[qid], keep | relevant
        others = sorted(self.corpus.keys() - keep)
        keep |= set(random.Random(seed).sample(others, min(len(others), max_docs - len(keep))))
        corpus = {d: self.corpus[d] for d in self.corpus if d in keep}
        return BeirDataset(corpus, queries, {q: self.qrels[q] for q in queries})


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR-format collection from ``path``, keeping the queries judged in ``split``."""
    root = Path(path)
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    corpus = {
        row["_id"]: (row.get("title") or "", row.get("text") or "") for row in _jsonl(root / "corpus.jsonl")
    }
    queries = {row["_id"]: row["text"] for row in _jsonl(root / "queries.jsonl") if row["_id"] in qrels}
    missing = qrels.keys() - queries.keys()
    assert not missing, f"qrels name queries absent from queries.jsonl: {sorted(missing)[:5]}"
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def read_qrels(path: Path) -> Qrels:
    """``query-id<TAB>corpus-id<TAB>score`` rows (with a header line) -> nested dict."""
    qrels: Qrels = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
