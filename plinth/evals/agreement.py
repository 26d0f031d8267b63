"""Agreement between a judge's scores and human scores on the same items.

Contract: both functions take two equal-length sequences of paired scores. :func:`cohen_kappa` treats
scores as categories (rounded to integers; ``weights="quadratic"`` credits near misses) and is
scikit-learn's ``cohen_kappa_score``; :func:`spearman` is SciPy's rank correlation (average ranks for
ties). Either returns None when it is undefined (fewer than two pairs, or a constant side).

>>> cohen_kappa([1, 2, 3, 4], [1, 2, 3, 4])
1.0
>>> spearman([1, 2, 3], [10, 20, 40])
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["agreement", "cohen_kappa", "spearman"]


def cohen_kappa(a: Sequence[float], b: Sequence[float], weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters' categorical scores (``weights``: None, "linear" or "quadratic")."""
    assert len(a) == len(b), (len(a), len(b))
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    x, y = [round(v) for v in a], [round(v) for v in b]
    if len(set(x) | set(y)) < 2:
        return None  # one category only: chance agreement is 1, kappa is 0/0
    value = float(cohen_kappa_score(x, y, weights=weights))
    return None if math.isnan(value) else value


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None when a side is constant or there are fewer than two pairs."""
    assert len(a) == len(b), (len(a), len(b))
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def agreement(human: Sequence[float], judge: Sequence[float]) -> dict[str, Any]:
    """All three numbers for one criterion: kappa, quadratic-weighted kappa, Spearman, and ``n``."""
    return {
        "n": len(human),
        "cohen_kappa": cohen_kappa(human, judge),
        "weighted_kappa": cohen_kappa(human, judge, weights="quadratic"),
        "spearman": spearman(human, judge),
    }
