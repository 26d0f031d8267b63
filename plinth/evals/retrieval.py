"""Retrieval quality: IR metrics over a ranked run, and an evaluation of Plinth's search types on BEIR.

Contract: a *run* maps each query id to its ranked doc ids (best first, no duplicates); *qrels* map
each query id to ``{doc id: grade}`` with grade > 0 meaning relevant. Metrics follow trec_eval (as
used by BEIR and ir-measures): every judged query counts, and a query missing from the run scores 0.
Queries in the run without judgements are ignored.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from plinth.evals.datasets import BeirDataset, Qrels, load_beir
from plinth.knowledge import Chunk, SearchType
from plinth.llm.embedder import SentenceEmbedder
from plinth.llm.embedding import Embedder

if TYPE_CHECKING:
    from plinth.knowledge import Store

CACHE_DIR = Path(".bench/embeddings")


def embed_cached(embedder: Embedder, texts: list[str], cache_dir: Path = CACHE_DIR) -> np.ndarray:
    """``embedder.embed(texts)`` as a float32 matrix, read from ``cache_dir`` when already computed.

    The file name is a hash of the model name and every text (in order), so a changed corpus or model
    never reuses stale vectors. Embedding SciFact takes minutes on a laptop CPU; this makes it once.
    """
    digest = hashlib.sha256(embedder.name.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    path = Path(cache_dir) / f"{digest.hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)
    matrix = np.asarray(embedder.embed(texts), dtype=np.float32).reshape(len(texts), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), matrix)
    path.with_suffix(".tmp.npy").replace(path)
    return matrix


# --- metrics: one query's ranking against its judgements --------------------------------------------


def recall_at_k(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """Share of the relevant documents (grade > 0) found in the top ``k``; 0 when none is relevant."""
    relevant = _relevant(judged)
    return len(relevant.intersection(ranking[:k])) / len(relevant) if relevant else 0.0


def precision_at_k(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """Relevant documents in the top ``k``, divided by ``k`` even when fewer were retrieved (trec_eval)."""
    return len(_relevant(judged).intersection(ranking[:k])) / k


def average_precision(ranking: list[str], judged: dict[str, int], k: int = 100) -> float:
    """AP@k (trec_eval's ``map_cut_k``): the precision at each relevant hit in the top ``k``, summed and
    divided by *all* relevant documents, so relevant documents ranked below ``k`` count as misses."""
    relevant = _relevant(judged)
    hits, total = 0, 0.0
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if doc_id in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant) if relevant else 0.0


def reciprocal_rank(ranking: list[str], judged: dict[str, int], k: int = 10) -> float:
    """RR@k: 1 / rank of the first relevant document in the top ``k``, else 0."""
    relevant = _relevant(judged)
    return next((1 / rank for rank, d in enumerate(ranking[:k], start=1) if d in relevant), 0.0)


def ndcg_at_k(ranking: list[str], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gain (the grade) and a log2(rank + 1) discount, as trec_eval's ``ndcg_cut``
    and BEIR define it; the ideal ordering sorts every judged grade, not only the retrieved ones."""
    ideal = _dcg(sorted((g for g in judged.values() if g > 0), reverse=True)[:k])
    return _dcg([max(judged.get(d, 0), 0) for d in ranking[:k]]) / ideal if ideal else 0.0


def _dcg(gains: list[int]) -> float:
    return sum(gain / np.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def _relevant(judged: dict[str, int]) -> set[str]:
    return {doc_id for doc_id, grade in judged.items() if grade > 0}


METRICS = {"nDCG": ndcg_at_k, "Recall": recall_at_k, "P": precision_at_k, "MAP": average_precision,
           "MRR": reciprocal_rank}  # fmt: skip


def evaluate(
    run: dict[str, list[str]], qrels: Qrels, ks: tuple[int, ...] = (1, 5, 10, 100)
) -> dict[str, float]:
    """Mean of every metric at every cutoff over the judged queries: ``{"nDCG@10": 0.67, "MAP@100": ...}``.

    MAP@k and MRR@k are cut at ``k`` like the others (so ``MAP@100`` is trec_eval's ``map_cut_100``).
    A judged query absent from ``run`` scores 0 everywhere, as in trec_eval with ``-c``.
    """
    assert qrels, "no judged queries"
    scores: dict[str, float] = {}
    for name, metric in METRICS.items():
        for k in ks:
            per_query = [metric(run.get(qid, []), judged, k) for qid, judged in qrels.items()]
            scores[f"{name}@{k}"] = float(np.mean(per_query))
    return scores


def rank_by_score(scores: dict[str, float]) -> list[str]:
    """Doc ids by descending score, ties broken by descending doc id, as trec_eval orders a run file."""
    return sorted(scores, key=lambda doc_id: (scores[doc_id], doc_id), reverse=True)


# --- evaluating a search function over a BEIR collection ---------------------------------------------

SearchFn = Callable[[str, SearchType, int], list[str]]  # (query text, search type, k) -> ranked doc ids
COLUMNS = ("nDCG@10", "Recall@10", "Recall@100", "P@10", "MAP@100", "MRR@10")
ANCHORS = {  # published nDCG@10, to read our numbers against
    "scifact": "BM25 0.665–0.679 (Anserini flat/multifield, BEIR); all-MiniLM-L6-v2 0.645 (MTEB)",
}


@dataclass(slots=True)
class Row:
    """One search type's mean scores over the judged queries, and its median search latency."""

    search_type: str
    scores: dict[str, float]
    p50_ms: float


def evaluate_search(
    search_fn: SearchFn, dataset: BeirDataset, search_types: Sequence[SearchType], k: int = 100
) -> list[Row]:
    """Run every judged query through ``search_fn`` once per search type and score the rankings.

    A document returned more than once (several chunks) counts at its best rank only.
    """
    rows = []
    for search_type in search_types:
        run, latencies = {}, []
        for qid, text in dataset.queries.items():
            start = time.perf_counter()
            run[qid] = list(dict.fromkeys(search_fn(text, search_type, k)))
            latencies.append(time.perf_counter() - start)
        rows.append(Row(search_type, evaluate(run, dataset.qrels), 1000 * float(np.median(latencies))))
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as a markdown table with the :data:`COLUMNS` (and search p50 latency)."""
    lines = ["| search type | " + " | ".join(COLUMNS) + " | p50 ms |", "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        cells = [f"{row.scores[c]:.4f}" for c in COLUMNS]
        lines.append(f"| {row.search_type} | " + " | ".join(cells) + f" | {row.p50_ms:.1f} |")
    return "\n".join(lines)


def build_store(dataset: BeirDataset, vectors: np.ndarray, path: Path) -> Store:
    """A LanceStore at ``path`` holding each document (title + text) as one chunk with its vector."""
    from plinth.knowledge import LanceStore  # lancedb loads slowly; only evals need it

    store = LanceStore(path, dim=vectors.shape[1], schema={})
    chunks, hashes = [], {}
    for doc_id, vector in zip(dataset.corpus, vectors, strict=True):
        text = dataset.document_text(doc_id)
        location = {"type": "BEIR", "uri": doc_id}
        chunks.append(Chunk(doc_id, doc_id, text, {}, location, vector=vector.tolist()))
        hashes[doc_id] = hashlib.sha256(text.encode()).hexdigest()
    with store.begin() as writer:
        writer.upsert(chunks, hashes)
    return store


def run_retrieval_eval(
    dataset_path: str | Path,
    search_types: Sequence[SearchType] = ("LEXICAL", "SEMANTIC", "HYBRID"),
    store_dir: Path | None = None,
    k: int = 100,
    hybrid_weight: float = 0.5,
    max_docs: int | None = None,
) -> list[Row]:
    """Index a BEIR collection in a LanceStore, search it with each search type, print and return the table.

    ``store_dir`` defaults to a temporary directory (the store is rebuilt each run; the embeddings are
    cached under ``.bench/``). ``max_docs`` evaluates on :meth:`BeirDataset.sample` (for quick runs).
    ``hybrid_weight`` is passed to the store as is: SciFact ships no judged training queries to tune it on,
    so the default is the unweighted 0.5.
    """
    dataset = load_beir(dataset_path)
    if max_docs is not None:
        dataset = dataset.sample(max_docs)
    embedder = SentenceEmbedder.load()
    doc_vectors = embed_cached(embedder, [dataset.document_text(d) for d in dataset.corpus])
    query_texts = list(dataset.queries.values())
    query_vectors = dict(zip(query_texts, embed_cached(embedder, query_texts), strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(dataset, doc_vectors, Path(store_dir or tmp))

        def search(text: str, search_type: SearchType, k: int) -> list[str]:
            vector = query_vectors[text].tolist()
            hits = store.search(text, vector, k, search_type=search_type, hybrid_weight=hybrid_weight)
            return [hit.doc_id for hit in hits]

        rows = evaluate_search(search, dataset, search_types, k)
    name = Path(dataset_path).name
    print(f"{name}: {len(dataset.corpus)} documents, {len(dataset.queries)} judged queries, k={k}, "
          f"hybrid_weight={hybrid_weight}\n\n{format_table(rows)}")  # fmt: skip
    if name in ANCHORS and max_docs is None:
        print(f"\npublished nDCG@10 on {name}: {ANCHORS[name]}")
    return rows


def main(dataset: Path, search_types: list[str], k: int = 100, hybrid_weight: float = 0.5) -> int:
    """CLI entry point (``plinth eval retrieval``): 0 on success, 2 when ``dataset`` is not a BEIR folder."""
    if not (dataset / "corpus.jsonl").is_file():
        print(f"not a BEIR dataset (no corpus.jsonl): {dataset}")
        return 2
    unknown = set(search_types) - {"LEXICAL", "SEMANTIC", "HYBRID"}
    if unknown:
        print(f"unknown search types: {sorted(unknown)}")
        return 2
    run_retrieval_eval(dataset, [cast(SearchType, s) for s in search_types], k=k, hybrid_weight=hybrid_weight)
    return 0
