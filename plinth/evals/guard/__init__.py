"""Guardrail evaluations and the prompt-attack classifier's training, beside the other evaluations.

``plinth guard train`` and ``plinth guard eval`` call these; the detectors themselves live in
:mod:`plinth.guard`::

    report = evaluate(Path("../shared/data"))      # leave-one-source-out, prompt attacks
    print(report.format(), evaluate_pii().format())
"""

from plinth.evals.guard.corpus import ATTACK_CAP, ATTACK_SOURCES, LabelledText, load_corpus
from plinth.evals.guard.evaluate import EvalReport, SourceResult, evaluate
from plinth.evals.guard.lookalike import LookalikeReport, evaluate_lookalikes
from plinth.evals.guard.pii import PIIReport, evaluate_pii, generate_pii_set
from plinth.evals.guard.train import TrainReport, calibrate, train
from plinth.evals.guard.trainers import MODELS, trainer

__all__ = [
    "ATTACK_CAP",
    "ATTACK_SOURCES",
    "MODELS",
    "EvalReport",
    "LabelledText",
    "LookalikeReport",
    "PIIReport",
    "SourceResult",
    "TrainReport",
    "calibrate",
    "evaluate",
    "evaluate_lookalikes",
    "evaluate_pii",
    "generate_pii_set",
    "load_corpus",
    "train",
    "trainer",
]
