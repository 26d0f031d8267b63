"""False alarms on long ordinary documents: movie plots joined six at a time, scored at the data stage.

Neither the held-out benign documents (one plot, one abstract, one e-mail each) nor the look-alike set
has many long runs of plain prose, and a document scores the *maximum* over its windows and sentence
groups, so a head that reads order-like sentences into prose shows it here first: the movie catalogue,
Plinth's own demo data, chunked long. Each argument is a saved head (``.npz``; default the shipped one)::

    .venv/bin/python benchmarks/guard_long_documents.py
    git show d556437:plinth/guard/models/prompt_attack.npz > /tmp/before.npz
    .venv/bin/python benchmarks/guard_long_documents.py /tmp/before.npz plinth/guard/models/prompt_attack.npz

Prints, per head, the share of documents flagged at each strength's data-stage threshold and the
median layered score. The plots are the first ones over 400 characters of the 1980s, 1990s and 2000s
lists; some of them are training rows (as single plots), so this is a check for regressions, not a
held-out figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from plinth.guard import (
    DEFAULT_MODEL_PATH,
    FPR_BY_STRENGTH,
    AttackClassifier,
    SignatureDetector,
    layered_scores,
)

DECADES = ("1980s", "1990s", "2000s")
PLOTS_PER_DOCUMENT = 6  # ~540 words: longer than one 180-word window, like a long retrieved chunk


def documents(data: Path, per_decade: int) -> list[str]:
    """``per_decade`` documents from each decade's list, each six consecutive plots joined."""
    docs = []
    for decade in DECADES:
        movies = json.loads((data / f"movies/wikipedia/movies-{decade}.json").read_text(encoding="utf-8"))
        plots = [m["extract"] for m in movies if len(m.get("extract") or "") > 400]
        for start in range(0, per_decade * PLOTS_PER_DOCUMENT, PLOTS_PER_DOCUMENT):
            docs.append(" ".join(plots[start : start + PLOTS_PER_DOCUMENT]))
    return docs


def flagged(head: AttackClassifier, docs: list[str]) -> tuple[dict[str, float], float]:
    """Share of ``docs`` above each strength's data-stage threshold, and their median layered score."""
    scores = np.array([s.score for s in layered_scores(docs, "data", head, SignatureDetector())])
    thresholds = head.thresholds["data"]
    return {k: float(np.mean(scores > thresholds[k])) for k in FPR_BY_STRENGTH}, float(np.median(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("heads", nargs="*", type=Path, default=[DEFAULT_MODEL_PATH])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-decade", type=int, default=20, help="documents from each decade's list")
    args = parser.parse_args()
    docs = documents(args.data, args.per_decade)
    print(f"{len(docs)} documents of {PLOTS_PER_DOCUMENT} plots; share flagged per strength, median score")
    print(f"{'head':50s} " + " ".join(f"{k:>7s}" for k in FPR_BY_STRENGTH) + "  median")
    for path in args.heads:
        shares, median = flagged(AttackClassifier.load(path), docs)
        cells = " ".join(f"{shares[k]:7.3f}" for k in FPR_BY_STRENGTH)
        print(f"{str(path)[-50:]:50s} {cells}  {median:6.3f}")


if __name__ == "__main__":
    main()
