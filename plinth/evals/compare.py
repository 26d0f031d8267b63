"""Comparing two targets on the same items: the mean difference with a paired bootstrap interval.

Contract: :func:`paired_bootstrap` takes per-item scores of A and B on the *same* items (paired by
position), resamples items with replacement ``resamples`` times (NumPy generator seeded by ``seed``),
and returns the observed mean difference ``b - a`` with the percentile interval at ``confidence``, and
the share of resamples in which B did not beat A (a one-sided bootstrap p-value).

>>> r = paired_bootstrap([0, 0, 0, 0], [1, 1, 1, 1])
>>> r["diff"], r["ci_low"], r["ci_high"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["paired_bootstrap"]


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean of A, mean of B, ``diff`` = mean(B - A), its ``ci_low``/``ci_high``, ``p_b_not_better``."""
    assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = y - x
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {
        "n": len(d),
        "a": float(x.mean()),
        "b": float(y.mean()),
        "diff": float(d.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_b_not_better": float((means <= 0).mean()),
    }
