"""Segmentation metrics: Dice, IoU, aggregated Jaccard index (AJI) and bootstrap CIs.

Conventions
-----------
- Masks are compared pixel by pixel on the same grid; anything non-zero is foreground.
- **Empty-empty case**: when prediction and target are both empty, Dice and IoU are
  ``empty_score`` (default 1.0: correctly predicting absence is a perfect answer). When only
  one is empty they are 0.
- **AJI** (Kumar et al., IEEE TMI 36(7), 2017): for each ground-truth object G_i take the
  predicted object P_j of highest IoU with it; add ``|G_i ∩ P_j|`` to C and ``|G_i ∪ P_j|``
  to U; finally add the area of every predicted object never chosen to U. AJI = C / U.
  As in the original definition a predicted object may be chosen by several ground-truth
  objects (so merges are penalised twice); a ground-truth object overlapping no prediction
  adds its own area to U.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dice", "iou", "aji", "bootstrap_mean_ci"]


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred), np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from target shape {t.shape}")
    return p != 0, t != 0


def dice(pred: np.ndarray, target: np.ndarray, *, empty_score: float = 1.0) -> float:
    """Dice coefficient ``2|P ∩ T| / (|P| + |T|)`` of two masks of shape (H, W).

    Parameters
    ----------
    pred, target : ndarray, shape (H, W)
        Non-zero = foreground (instance labels are fine).
    empty_score : float
        Value when both are empty.
    """
    p, t = _pair(pred, target)
    denom = int(p.sum()) + int(t.sum())
    if denom == 0:
        return float(empty_score)
    return 2.0 * int(np.logical_and(p, t).sum()) / denom


def iou(pred: np.ndarray, target: np.ndarray, *, empty_score: float = 1.0) -> float:
    """Intersection over union (Jaccard) ``|P ∩ T| / |P ∪ T|``; see :func:`dice`."""
    p, t = _pair(pred, target)
    union = int(np.logical_or(p, t).sum())
    if union == 0:
        return float(empty_score)
    return int(np.logical_and(p, t).sum()) / union


def aji(pred_instances: np.ndarray, target_instances: np.ndarray, *,
        empty_score: float = 1.0) -> float:
    """Aggregated Jaccard index of two instance label images (0 = background).

    Parameters
    ----------
    pred_instances, target_instances : ndarray of int, shape (H, W)
        Object ids; ids need not be consecutive.
    empty_score : float
        Value when both contain no object.

    Returns
    -------
    float in [0, 1]
    """
    p = np.asarray(pred_instances)
    t = np.asarray(target_instances)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from target shape {t.shape}")
    from skimage.segmentation import relabel_sequential

    p, _, _ = relabel_sequential(p.astype(np.int64))  # ids 1..n, background stays 0
    t_ids, _, _ = relabel_sequential(t.astype(np.int64))
    n_p, n_t = int(p.max()), int(t_ids.max())
    if n_t == 0 and n_p == 0:
        return float(empty_score)
    if n_t == 0 or n_p == 0:
        return 0.0
    # contingency table: rows target ids 0..n_t, cols pred ids 0..n_p
    cont = np.bincount(t_ids.ravel() * (n_p + 1) + p.ravel(),
                       minlength=(n_t + 1) * (n_p + 1)).reshape(n_t + 1, n_p + 1)
    area_t = cont.sum(axis=1)[1:]
    area_p = cont.sum(axis=0)[1:]
    inter = cont[1:, 1:].astype(np.float64)
    union = area_t[:, None] + area_p[None, :] - inter
    ious = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    best = ious.argmax(axis=1)
    has = inter[np.arange(n_t), best] > 0
    c = float(inter[np.arange(n_t), best][has].sum())
    u = float(union[np.arange(n_t), best][has].sum()) + float(area_t[~has].sum())
    used = np.zeros(n_p, bool)
    used[best[has]] = True
    u += float(area_p[~used].sum())
    return c / u if u > 0 else float(empty_score)


def bootstrap_mean_ci(values: Sequence[float], *, n_boot: int = 1000, ci: float = 0.95,
                      seed: int = 0, groups: Sequence[object] | None = None
                      ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a mean.

    Parameters
    ----------
    values : sequence of float
        Per-image scores (NaN ignored).
    n_boot : int
        Bootstrap resamples.
    ci : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    groups : sequence, optional
        Cluster of each value (e.g. patient or slide). When given, whole clusters are
        resampled (cluster bootstrap) and the statistic is the mean over all values of the
        drawn clusters; with fewer than 2 clusters the interval is (NaN, NaN).

    Returns
    -------
    (low, high) : tuple of float
        NaN when fewer than 2 values (or clusters) are available.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    alpha = (1.0 - ci) / 2.0
    rng = np.random.default_rng(seed)
    if groups is None:
        v = v[ok]
        if v.size < 2:
            return float("nan"), float("nan")
        idx = rng.integers(0, v.size, size=(n_boot, v.size))
        means = v[idx].mean(axis=1)
    else:
        g = np.asarray(list(groups), dtype=object)[ok]
        v = v[ok]
        _, codes = np.unique(g.astype(str), return_inverse=True)
        k = int(codes.max()) + 1 if codes.size else 0
        if k < 2:
            return float("nan"), float("nan")
        sums = np.bincount(codes, weights=v, minlength=k)
        counts = np.bincount(codes, minlength=k).astype(np.float64)
        draw = rng.integers(0, k, size=(n_boot, k))
        means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
