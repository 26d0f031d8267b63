"""Evaluations. Retrieval: IR metrics (checked against trec_eval via ir-measures) and a BEIR runner
that scores Plinth's LEXICAL / SEMANTIC / HYBRID search.

>>> from plinth.evals import evaluate
>>> evaluate({"q1": ["d2", "d1"]}, {"q1": {"d1": 1}}, ks=(1,))["MRR@1"]
0.0
"""

from plinth.evals.datasets import BeirDataset, load_beir
from plinth.evals.retrieval import (
    Row,
    average_precision,
    evaluate,
    evaluate_search,
    ndcg_at_k,
    precision_at_k,
    rank_by_score,
    recall_at_k,
    reciprocal_rank,
    run_retrieval_eval,
)

__all__ = [
    "BeirDataset",
    "Row",
    "average_precision",
    "evaluate",
    "evaluate_search",
    "load_beir",
    "ndcg_at_k",
    "precision_at_k",
    "rank_by_score",
    "recall_at_k",
    "reciprocal_rank",
    "run_retrieval_eval",
]
