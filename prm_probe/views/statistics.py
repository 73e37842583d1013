"""Statistics over seeds: bootstrap intervals of a mean and the paired Wilcoxon signed-rank test, reported with
what a reader needs to judge them (n after ties, the smallest p the data could give, the method).

Every function takes plain sequences (one value per seed) and returns plain numbers; NaN where the data cannot
support the statistic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap_mean_ci", "paired_wilcoxon", "wilcoxon_floor"]


def bootstrap_mean_ci(values: Sequence[float], *, level: float = 0.95, n_boot: int = 10_000,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling the values; NaNs dropped).

    Example:
        >>> lo, hi = bootstrap_mean_ci([0.0, 1.0] * 20)
        >>> 0.3 < lo < 0.5 < hi < 0.7
        True
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def wilcoxon_floor(n: int) -> float:
    """The smallest two-sided p an exact Wilcoxon signed-rank test of ``n`` non-zero differences can give:
    all differences of one sign, 2 / 2^n (1 for n = 0).

    Example:
        >>> wilcoxon_floor(4), wilcoxon_floor(5)
        (0.125, 0.0625)
    """
    return min(1.0, 2.0 / 2 ** n) if n > 0 else 1.0


#: Up to this many non-zero differences the signed-rank test is exact (all 2^n sign patterns, ties as mid-ranks).
EXACT_MAX = 20


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of the paired differences ``b − a`` (one pair per seed).

    Zero differences are dropped (Wilcoxon's convention), so the test rests on ``n`` pairs, not on all of them.
    Up to :data:`EXACT_MAX` pairs the p-value is exact: the share of the 2^n sign patterns of the ranks (mid-ranks
    for tied |differences|) whose W+ lies at least as far from its mean as the observed one, so it never falls
    below the floor; beyond, scipy's normal approximation with the tie correction.

    Returns:
        ``p``; ``n`` (non-zero differences, the test's sample size); ``pairs`` (all pairs); ``floor`` (the
        smallest p possible with ``n`` pairs, :func:`wilcoxon_floor`); ``method`` (``exact`` or ``normal``);
        ``p`` is NaN with ``n`` < 1.

    Example:
        >>> r = paired_wilcoxon([0, 0, 0, 0, 0], [1, 2, 0, 3, 4])
        >>> r["n"], r["pairs"], r["floor"], r["p"]
        (4, 5, 0.125, 0.125)
        >>> paired_wilcoxon([0] * 4, [0.5] * 4)["p"]  # tied differences, all positive: still the floor
        0.125
    """
    from scipy.stats import rankdata, wilcoxon

    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    d = d[np.isfinite(d)]
    nonzero = d[d != 0]
    n = int(nonzero.size)
    out = {"p": float("nan"), "n": n, "pairs": int(d.size), "floor": wilcoxon_floor(n), "method": ""}
    if n < 1:
        return out
    if n <= EXACT_MAX:
        ranks = rankdata(np.abs(nonzero))  # mid-ranks for ties
        observed = ranks[nonzero > 0].sum()
        signs = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1  # (2^n, n): every sign pattern
        w = signs @ ranks
        centre = ranks.sum() / 2
        out["p"] = float(np.mean(np.abs(w - centre) >= abs(observed - centre) - 1e-9))
        out["method"] = "exact"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = wilcoxon(nonzero, method="approx")
    out["p"] = float(res.pvalue) if math.isfinite(res.pvalue) else float("nan")
    out["method"] = "normal"
    return out
