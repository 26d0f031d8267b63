"""Max sentence incongruity alone as a planted-instruction detector (training-free, so no held-out leak).

Scores a seeded sample of planted documents (BIPIA, deepset) and of the held-out benign documents, sets
thresholds on the benign ones at 0.5 / 1 / 2 % FPR, and reports TPR and the share of look-alike benign
documents flagged at the same thresholds (README, Guardrails, Measured)::

    PYTHONPATH=$PWD nice -n 19 python benchmarks/guard_incongruity.py
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from plinth.evals.guard import LabelledText, load_corpus
from plinth.evals.guard.fit import threshold_at_fpr
from plinth.guard.classifier import Vectorize, embedder_for, split_sentences
from plinth.guard.incongruity import incongruity
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

LOOKALIKE = Path(__file__).resolve().parents[1] / "plinth/evals/guard/lookalike_benign.jsonl"
SENTENCES = 40  # the first sentences of a document: bounds the embedding time of long ones
FPRS = (0.005, 0.01, 0.02)
# (source, label, documents): planted first, then held-out benign documents
SAMPLE = (("bipia", 1, 150), ("deepset", 1, 100), ("bipia", 0, 218), ("movies", 0, 150), ("scifact", 0, 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every sample (a smoke run)")
    args = parser.parse_args()
    embed = embedder_for(DEFAULT_EMBEDDING_MODEL)
    rows, rng = load_corpus(args.data), random.Random(0)
    odd = {}
    for source, label, count in SAMPLE:  # in this order: the seeded shuffles depend on it
        texts = [r.text for r in rows if r.stage == "data" and r.source == source and r.label == label]
        texts = texts if label else [r.text for r in rows if _benign_test(r, source)]
        rng.shuffle(texts)
        odd[(source, label)] = _max_incongruity(texts[: max(3, int(count * args.scale))], embed)
    benign = np.concatenate([v for (_, label), v in odd.items() if not label])
    lines = [json.loads(line) for line in LOOKALIKE.read_text(encoding="utf-8").splitlines()]
    documents = [line["text"] for line in lines if line["stage"] == "data"]
    lookalike = _max_incongruity(documents[: max(3, int(len(documents) * args.scale))], embed)
    thresholds = [threshold_at_fpr(benign, fpr) for fpr in FPRS]
    print(f"benign documents {len(benign)}; thresholds at FPR {FPRS}: {np.round(thresholds, 3).tolist()}")
    for (source, label), scores in odd.items():
        if label:
            truth = np.r_[np.ones(len(scores)), np.zeros(len(benign))]
            auc = roc_auc_score(truth, np.r_[scores, benign])
            tprs = [round(float((scores > t).mean()), 3) for t in thresholds]
            print(f"{source} data ({len(scores)}): AUC {auc:.3f}  TPR {tprs}")
    flagged = [round(float((lookalike > t).mean()), 3) for t in thresholds]
    print(f"look-alike documents ({len(lookalike)}) flagged: {flagged}")


def _benign_test(row: LabelledText, source: str) -> bool:
    return row.stage == "data" and row.source == source and row.label == 0 and row.split == "test"


def _max_incongruity(texts: list[str], embed: Vectorize) -> np.ndarray:
    parts = [split_sentences(text)[:SENTENCES] for text in texts]
    return np.array([incongruity(embed(s)).max() if len(s) >= 3 else 0.0 for s in parts])


if __name__ == "__main__":
    main()
