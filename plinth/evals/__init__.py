"""Evaluations. Retrieval: IR metrics (checked against trec_eval via ir-measures) and a BEIR runner
that scores Plinth's LEXICAL / SEMANTIC / HYBRID search. Guardrail evaluations (and the prompt-attack
classifier's training) are the subpackage :mod:`plinth.evals.guard`, with its own exports.

>>> from plinth.evals import evaluate
>>> evaluate({"q1": ["d2", "d1"]}, {"q1": {"d1": 1}}, ks=(1,))["MRR@1"]
0.0
"""

from plinth.evals.datasets import BeirDataset, load_beir
from plinth.evals.retrieval import (
    Row,
    average_precision,
    embed_cached,
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
    "embed_cached",
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
