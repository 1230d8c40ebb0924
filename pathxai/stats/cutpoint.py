"""Maximally selected log-rank statistic for an (exploratory) optimal cutpoint.

A cutpoint picked as "the split with the smallest log-rank p" is optimistic: its naive
p-value ignores the search. :func:`maxstat_cutpoint` reports the maximum standardised
log-rank statistic over candidate cutpoints with a p-value corrected for the search,
by the Lausen & Schumacher (1992) approximation ('Lau92') or the improved Bonferroni
inequality of Lausen, Sauerbrei & Schumacher (1994) ('Lau94'), as in R's
``maxstat::maxstat.test(..., smethod = "LogRank")``. Results are labelled exploratory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from pathxai.exceptions import InsufficientDataError

__all__ = ["MaxstatResult", "logrank_scores", "maxstat_cutpoint"]


@dataclass(frozen=True)
class MaxstatResult:
    """Outcome of :func:`maxstat_cutpoint` (exploratory).

    Attributes
    ----------
    cutpoint : float
        Group "low" is ``x <= cutpoint``.
    statistic : float
        Maximum absolute standardised log-rank statistic.
    p_value : float
        Search-corrected p-value (method in ``method``).
    method : str
    n_low, n_high : int
    label : str
        Always "exploratory".
    """

    cutpoint: float
    statistic: float
    p_value: float
    method: str
    n_low: int
    n_high: int
    label: str = "exploratory"


def logrank_scores(time, event) -> np.ndarray:
    """Log-rank (Savage) scores a_i = d_i - sum_{j: t_j <= t_i} d_j / (n - r_j + 1).

    ``r_j`` is the minimum rank of t_j (ties share the risk set).
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n = time.size
    rmin = rankdata(time, method="min")
    rmax = rankdata(time, method="max")
    order = np.argsort(time, kind="mergesort")
    fact = event[order] / (n - rmin[order] + 1)
    cum = np.cumsum(fact)
    # for row i, sum over every j with t_j <= t_i = cum at sorted position rmax_i - 1
    return event - cum[(rmax - 1).astype(int)]


def _p_lau92(b: float, minprop: float, maxprop: float) -> float:
    db = norm.pdf(b)
    p = 4 * db / b + db * (b - 1 / b) * np.log((maxprop * (1 - minprop)) / ((1 - maxprop) * minprop))
    return float(min(max(p, 0.0), 1.0))


def _p_lau94(b: float, n: int, m: np.ndarray) -> float:
    m = np.asarray(m, float)
    if m.size < 2:
        return float(min(2 * norm.sf(b), 1.0))
    m1, m2 = m[:-1], m[1:]
    t = np.sqrt(1 - m1 * (n - m2) / ((n - m1) * m2))
    D = np.sum(1 / np.pi * np.exp(-(b**2) / 2) * (t - (b**2 / 4 - 1) * (t**3) / 6))
    return float(min(max(1 - (norm.cdf(b) - norm.cdf(-b)) + D, 0.0), 1.0))


def maxstat_cutpoint(x, time, event, *, minprop: float = 0.1, maxprop: float = 0.9,
                     method: str = "Lau92") -> MaxstatResult:
    """Maximally selected standardised log-rank statistic over cutpoints of ``x``.

    Parameters
    ----------
    x : (n,) continuous marker (e.g. a risk score); time : (n,); event : (n,) 0/1.
    minprop, maxprop : float
        Candidate cutpoints leave at least ``minprop`` and at most ``maxprop`` of the
        patients in the low group.
    method : {'Lau92', 'Lau94'}

    Returns
    -------
    MaxstatResult (exploratory; never use the cutpoint for validation on the same data)
    """
    x = np.asarray(x, float)
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n = x.size
    if event.sum() < 2:
        raise InsufficientDataError(f"{int(event.sum())} events; a cutpoint search needs >= 2")
    a = logrank_scores(time, event)
    order = np.argsort(x, kind="mergesort")
    xs, as_ = x[order], a[order]
    cand = np.unique(xs)
    m = np.searchsorted(xs, cand, side="right")  # low-group sizes
    keep = (m >= np.floor(n * minprop)) & (m <= np.floor(n * maxprop)) & (m < n)
    cand, m = cand[keep], m[keep]
    if cand.size == 0:
        raise InsufficientDataError("no candidate cutpoint leaves both groups large enough")
    s = np.cumsum(as_)[m - 1]
    abar = a.mean()
    var_a = np.sum((a - abar) ** 2)
    e = m * abar
    v = m * (n - m) / (n * (n - 1)) * var_a
    stat = np.abs(s - e) / np.sqrt(v)
    k = int(np.argmax(stat))
    b = float(stat[k])
    if method == "Lau92":
        p = _p_lau92(b, minprop, maxprop)
    elif method == "Lau94":
        p = _p_lau94(b, n, m)
    else:
        raise ValueError(f"method={method!r}; use 'Lau92' or 'Lau94'")
    return MaxstatResult(float(cand[k]), b, p, method, int(m[k]), int(n - m[k]))
