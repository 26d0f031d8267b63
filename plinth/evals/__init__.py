"""Evaluations. Retrieval: IR metrics (checked against trec_eval via ir-measures) and a BEIR runner
that scores Plinth's LEXICAL / SEMANTIC / HYBRID search. Generation: a dataset (:mod:`.items`) through
one or two targets (:mod:`.targets`: a model, a knowledge base's retrieve-and-generate, a SQL ask loop)
scored by text metrics (:mod:`.metrics`), an LLM judge (:mod:`.judge`), agreement with human scores
(:mod:`.agreement`) and a paired bootstrap comparison (:mod:`.compare`); :func:`run_evaluation` runs a
:class:`EvalSpec`, :func:`render_report` draws the HTML report. Guardrail evaluations (and the prompt-attack
classifier's training) are the subpackage :mod:`plinth.evals.guard`, with its own exports.

>>> from plinth.evals import evaluate
>>> evaluate({"q1": ["d2", "d1"]}, {"q1": {"d1": 1}}, ks=(1,))["MRR@1"]
0.0
"""

from plinth.evals.agreement import agreement, cohen_kappa, spearman
from plinth.evals.compare import paired_bootstrap
from plinth.evals.datasets import BeirDataset, load_beir
from plinth.evals.items import EvalItem, check_items_file, load_items
from plinth.evals.judge import CRITERIA, Judge, JudgeCase, JudgeConfig, Judgement, parse_verdict
from plinth.evals.metrics import TEXT_METRICS
from plinth.evals.report_html import render_report
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
from plinth.evals.run import EvaluationStopped, run_evaluation, summarize
from plinth.evals.spec import EvalSpec, JudgeSpec, TargetSpec
from plinth.evals.targets import Target, TargetOutput, model_target, rag_target, sql_target

__all__ = [
    "BeirDataset",
    "CRITERIA",
    "EvalItem",
    "EvalSpec",
    "EvaluationStopped",
    "Judge",
    "JudgeCase",
    "JudgeConfig",
    "JudgeSpec",
    "Judgement",
    "Row",
    "TEXT_METRICS",
    "Target",
    "TargetOutput",
    "TargetSpec",
    "agreement",
    "average_precision",
    "check_items_file",
    "cohen_kappa",
    "embed_cached",
    "evaluate",
    "evaluate_search",
    "load_beir",
    "load_items",
    "model_target",
    "ndcg_at_k",
    "paired_bootstrap",
    "parse_verdict",
    "precision_at_k",
    "rag_target",
    "rank_by_score",
    "recall_at_k",
    "reciprocal_rank",
    "render_report",
    "run_evaluation",
    "run_retrieval_eval",
    "spearman",
    "sql_target",
    "summarize",
]
