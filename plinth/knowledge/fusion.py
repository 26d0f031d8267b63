"""Weighted reciprocal-rank fusion, and the SEMANTIC / LEXICAL / HYBRID dispatch every store shares.

RRF (Cormack et al., 2009) scores an item ``sum_i w_i / (k + rank_i)`` over the rankings it appears in
(ranks start at 1). It needs no score calibration between a cosine similarity and a BM25 score, which
is why hybrid search uses it. Ties are broken by the best rank the item reached in any list, then by
id, so the output is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from plinth.knowledge.types import Hit, SearchType

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-lexical")
Ranker = Callable[[int], list[Hit]]  # n -> the best n hits of one retrieval method, best first


def rrf(rankings: list[list[str]], weights: list[float], k: int = 60) -> list[tuple[str, float]]:
    """Fuse ``rankings`` (ids, best first) into ``[(id, score)]``, best first."""
    if len(rankings) != len(weights):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    if any(w < 0 for w in weights) or k <= 0:
        raise ValueError("weights must be >= 0 and k > 0")
    scores: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):  # a duplicate counts once
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    return sorted(scores.items(), key=lambda it: (-it[1], best_rank[it[0]], it[0]))


def hybrid_depth(k: int) -> int:
    """How many candidates each method contributes to fusion: deeper than ``k`` so that an item
    ranked just below the cut-off in one list can still win on the other."""
    return max(2 * k, 20)


def run_search(
    semantic: Ranker | None, lexical: Ranker, k: int, search_type: SearchType, hybrid_weight: float
) -> list[Hit]:
    """Dispatch on ``search_type``; ``semantic`` is None when no query vector was given.

    HYBRID without a vector degrades to LEXICAL; SEMANTIC without one is a caller error.
    """
    if k <= 0:
        return []
    if search_type == "LEXICAL" or (search_type == "HYBRID" and semantic is None):
        return lexical(k)
    if semantic is None:
        raise ValueError("SEMANTIC search needs a query vector")
    if search_type == "SEMANTIC":
        return semantic(k)
    if not 0.0 <= hybrid_weight <= 1.0:
        raise ValueError("hybrid_weight must be within [0, 1]")
    depth = hybrid_depth(k)
    lexical_hits = _POOL.submit(lexical, depth)  # both run at once: the stores release the GIL
    semantic_hits = semantic(depth)
    return fuse_hits([semantic_hits, lexical_hits.result()], [hybrid_weight, 1.0 - hybrid_weight], k)


def fuse_hits(lists: list[list[Hit]], weights: list[float], k: int) -> list[Hit]:
    """RRF over hit lists; each fused hit carries its RRF score and per-method ranks in ``extra``."""
    by_id: dict[str, Hit] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, hits in zip(("semantic_rank", "lexical_rank"), lists, strict=False):
        for rank, hit in enumerate(hits, start=1):
            by_id.setdefault(hit.chunk_id, hit)
            ranks.setdefault(hit.chunk_id, {})[name] = rank
    fused = rrf([[h.chunk_id for h in hits] for hits in lists], weights)[:k]
    return [replace(by_id[cid], score=score, extra={**ranks[cid]}) for cid, score in fused]
