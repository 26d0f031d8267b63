"""False alarms on the look-alike benign set: everyday prompts and documents that *talk about* instructions.

A detector that learned vocabulary ("instructions", "ignore", "system prompt", "role") instead of intent
blocks "Translate 'Hello' into French" and "Can you explain what a system prompt is?". The set
(``lookalike_benign.jsonl``: 311 prompts, 330 documents about translation, role-play, rules, code, CSS
overrides, security training, recipes and meeting minutes) was written for this evaluation and is never
trained on or calibrated on; this module reports the share of it each strength flags::

    report = evaluate_lookalikes(shipped_classifier())
    print(report.format())   # FPR per stage and strength
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plinth.guard import FPR_BY_STRENGTH, AttackScorer, SignatureDetector, layered_scores

__all__ = ["LOOKALIKE_PATH", "LookalikeReport", "evaluate_lookalikes", "load_lookalikes"]

LOOKALIKE_PATH = Path(__file__).parent / "lookalike_benign.jsonl"
# Goals of issue 17: at most this share of the set flagged at each strength.
STRENGTHS = tuple(FPR_BY_STRENGTH)  # LOW, MEDIUM, HIGH
GOALS = {"MEDIUM": 0.01, "HIGH": 0.03}


@dataclass
class LookalikeReport:
    counts: dict[str, int]  # stage -> texts
    fpr: dict[str, dict[str, float]]  # stage -> strength -> share flagged
    flagged: dict[str, list[str]]  # stage -> texts flagged at HIGH (the first few, to read)

    def format(self) -> str:
        lines = ["Look-alike benign set (never trained on): share flagged per strength"]
        lines.append(f"{'stage':6s} {'texts':>5s}  " + "  ".join(f"{s:>6s}" for s in STRENGTHS))
        for stage, table in self.fpr.items():
            cells = "  ".join(f"{table[s]:6.3f}" for s in STRENGTHS)
            lines.append(f"{stage:6s} {self.counts[stage]:5d}  {cells}")
        goals = ", ".join(f"{s} <= {g:.0%}" for s, g in GOALS.items())
        lines.append(f"(goal: {goals})")
        for stage, texts in self.flagged.items():
            lines += [f"  flagged at HIGH ({stage}): {text[:100]!r}" for text in texts[:5]]
        return "\n".join(lines)


def load_lookalikes(path: Path = LOOKALIKE_PATH) -> dict[str, list[str]]:
    """stage ("input" | "data") -> texts."""
    by_stage: dict[str, list[str]] = {"input": [], "data": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_stage[row["stage"]].append(row["text"])
    return by_stage


def evaluate_lookalikes(classifier: AttackScorer, path: Path = LOOKALIKE_PATH) -> LookalikeReport:
    """The share of each stage's look-alikes whose layered score passes each strength's threshold."""
    signatures = SignatureDetector()
    counts, fpr, flagged = {}, {}, {}
    for stage, texts in load_lookalikes(path).items():
        scores = np.array([s.score for s in layered_scores(texts, stage, classifier, signatures)])
        thresholds = classifier.thresholds[stage]
        counts[stage] = len(texts)
        fpr[stage] = {s: float(np.mean(scores > thresholds[s])) for s in STRENGTHS}
        flagged[stage] = [t for t, x in zip(texts, scores, strict=True) if x > thresholds["HIGH"]]
    return LookalikeReport(counts, fpr, flagged)
