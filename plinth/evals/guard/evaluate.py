"""``plinth guard eval``: leave-one-source-out evaluation of the prompt-attack detector.

An in-distribution split flatters a detector (published ones score 0.9999 on their own split and 0.89 on
PINT), so each attack source S is held out *whole*: the head trains on every other attack source plus the
benign *train* split (S's benign rows, if any, are dropped too), and is tested on S's attacks against the
benign *test* split of the same stage -- text no fold ever trains on. The threshold is the one that flags
<= 1 % of those benign texts; the table gives the true-positive rate there and ROC AUC, for the classifier
alone and for the layered detector (normalisation + signatures + classifier)::

    report = evaluate(Path("../shared/data"))
    print(report.format())
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from plinth.evals.guard.corpus import ATTACK_CAP, ATTACK_SOURCES, LabelledText, load_corpus
from plinth.evals.guard.fit import TRAIN_WINDOWS, threshold_at_fpr
from plinth.evals.guard.trainers import Trainer, trainer
from plinth.guard import FPR_BY_STRENGTH, AttackScorer, SignatureDetector, layered_scores

__all__ = ["EvalReport", "Fold", "SourceResult", "evaluate", "fold"]

TARGET_FPR = 0.01
# Windows scored per text, as in training. The detector scores every window, so on texts longer than
# ~600 words these numbers are a lower bound on its attack scores (benign texts here are mostly shorter).
EVAL_WINDOWS = TRAIN_WINDOWS


@dataclass(frozen=True, slots=True)
class SourceResult:
    source: str
    stage: str
    attacks: int
    benign: int
    auc: float  # classifier alone
    tpr: float
    layered_auc: float  # normalisation + signatures + classifier
    layered_tpr: float
    fpr: float  # of the layered detector at its threshold, on the held-out benign texts
    by_strength: dict[str, float] = field(default_factory=dict)  # layered TPR at each strength's FPR target


@dataclass(slots=True)
class Fold:
    held_out: str
    train: list[LabelledText]
    attacks: list[LabelledText]
    benign: list[LabelledText]


@dataclass
class EvalReport:
    results: list[SourceResult]
    training_rows: dict[str, int]  # held-out source -> rows its fold trained on
    seconds: float
    notes: list[str] = field(default_factory=list)

    def mean(self, attr: str) -> float:
        return float(np.mean([getattr(r, attr) for r in self.results])) if self.results else float("nan")

    def format(self) -> str:
        head = f"{'held-out source':16s} {'stage':5s} {'attacks':>7s} {'benign':>6s}  "
        head += f"{'clf AUC':>7s} {'clf TPR':>7s}  {'layer AUC':>9s} {'layer TPR':>9s} {'FPR':>6s}"
        head += "  " + " ".join(f"{s:>6s}" for s in FPR_BY_STRENGTH)
        lines = [f"TPR at <= {TARGET_FPR:.0%} FPR on held-out benign text of the same stage", head]
        for r in self.results:
            lines.append(
                f"{r.source:16s} {r.stage:5s} {r.attacks:7d} {r.benign:6d}  {r.auc:7.3f} {r.tpr:7.3f}  "
                f"{r.layered_auc:9.3f} {r.layered_tpr:9.3f} {r.fpr:6.3f}  "
                + " ".join(f"{r.by_strength[s]:6.3f}" for s in FPR_BY_STRENGTH)
            )
        lines.append(
            f"{'average':37s} {self.mean('auc'):7.3f} {self.mean('tpr'):7.3f}  "
            f"{self.mean('layered_auc'):9.3f} {self.mean('layered_tpr'):9.3f}         "
            + " ".join(f"{np.mean([r.by_strength[s] for r in self.results]):6.3f}" for s in FPR_BY_STRENGTH)
        )
        targets = ", ".join(f"{s} {f:.1%}" for s, f in FPR_BY_STRENGTH.items())
        lines.append(
            f"(LOW/MEDIUM/HIGH: layer TPR at the strength's FPR target: {targets}; goal: average >= 0.80)"
        )
        lines.append(f"({self.seconds:.0f} s)")
        return "\n".join([*lines, *self.notes])


def fold(rows: Sequence[LabelledText], held_out: str) -> Fold:
    """The split for one held-out source: nothing from ``held_out`` and no benign test row is trained on."""
    train = [r for r in rows if r.source != held_out and (r.label == 1 or r.split == "train")]
    attacks = [r for r in rows if r.source == held_out and r.label == 1]
    benign = [r for r in rows if r.label == 0 and r.split == "test"]
    return Fold(held_out, train, attacks, benign)


def evaluate(
    shared_data: Path,
    *,
    cache: bool = True,
    cap: int = ATTACK_CAP,
    sources: Sequence[str] = ATTACK_SOURCES,
    build: Trainer | None = None,
    rows: list[LabelledText] | None = None,
) -> EvalReport:
    """Leave-one-source-out over ``sources``, each fold's model made by ``build`` (default: the shipped
    kind, ``logistic``); one result line per (held-out source, stage)."""
    started = time.perf_counter()
    build = build or trainer("logistic", cache=cache)
    rows = rows if rows is not None else load_corpus(shared_data, cap=cap)
    signatures = SignatureDetector()
    results, sizes = [], {}
    for source in sources:
        split = fold(rows, source)
        classifier = build(split.train)
        sizes[source] = len(split.train)
        for stage in sorted({r.stage for r in split.attacks}):
            attacks = [r.text for r in split.attacks if r.stage == stage]
            benign = [r.text for r in split.benign if r.stage == stage]
            results.append(_score(source, stage, attacks, benign, classifier, signatures))
    return EvalReport(results, sizes, time.perf_counter() - started)


def _score(
    source: str,
    stage: str,
    attacks: list[str],
    benign: list[str],
    classifier: AttackScorer,
    signatures: SignatureDetector,
) -> SourceResult:
    texts = attacks + benign
    truth = np.array([1] * len(attacks) + [0] * len(benign))
    alone = classifier.score(texts, stage=stage, limit=EVAL_WINDOWS)
    scored = layered_scores(texts, stage, classifier, signatures, window_limit=EVAL_WINDOWS)
    layered = np.array([s.score for s in scored])
    tpr, _ = _rates(alone, truth)
    layered_tpr, fpr = _rates(layered, truth)
    by_strength = {s: _rates(layered, truth, f)[0] for s, f in FPR_BY_STRENGTH.items()}
    return SourceResult(
        source,
        stage,
        len(attacks),
        len(benign),
        float(roc_auc_score(truth, alone)),
        tpr,
        float(roc_auc_score(truth, layered)),
        layered_tpr,
        fpr,
        by_strength,
    )


def _rates(scores: np.ndarray, truth: np.ndarray, target: float = TARGET_FPR) -> tuple[float, float]:
    """(TPR, FPR) at the threshold giving <= ``target`` false positives on the benign rows."""
    threshold = threshold_at_fpr(scores[truth == 0], target)
    flagged = scores > threshold
    return float(flagged[truth == 1].mean()), float(flagged[truth == 0].mean())
