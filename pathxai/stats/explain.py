"""SHAP values on held-out data and their stability across refits.

* :func:`linear_shap` -- exact SHAP values of a linear score (Cox log partial hazard,
  logistic log-odds) under feature independence: ``phi_ij = beta_j (x_ij - mean_train_j)``
  (what ``shap.LinearExplainer`` computes with an independent masker).
* :func:`tree_shap` -- ``shap.TreeExplainer`` (interventional on a background sample of
  the training rows, model output = log-odds margin).
* :func:`summarize_shap` -- combines SHAP matrices computed on the *test* rows of many
  fits (outer CV folds, out-of-bag bootstrap rows): mean |SHAP| per feature with a
  percentile interval across fits, how often the feature is among the top ``k``
  (stability), the direction of its effect and how consistent it is, and importance per
  correlation cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["linear_shap", "tree_shap", "summarize_shap"]


def linear_shap(coef: np.ndarray, X_test: np.ndarray, train_mean: np.ndarray) -> np.ndarray:
    """Exact SHAP values of ``X @ coef`` relative to the training mean.

    Parameters
    ----------
    coef : (p,) ; X_test : (m, p) ; train_mean : (p,)

    Returns
    -------
    ndarray (m, p) in the model's output unit (log hazard ratio or log-odds).
    """
    return (np.asarray(X_test, float) - np.asarray(train_mean, float)) * np.asarray(coef, float)


def tree_shap(model, X_test: np.ndarray, X_background: np.ndarray, *, seed: int = 0,
              max_background: int = 100) -> np.ndarray:
    """SHAP values (log-odds margin) of a fitted tree ensemble on ``X_test``.

    Uses ``shap.TreeExplainer`` with ``feature_perturbation='interventional'`` on at most
    ``max_background`` training rows (sampled with ``seed``).

    Returns
    -------
    ndarray (m, p) for the positive class.
    """
    import shap

    rng = np.random.default_rng(seed)
    bg = X_background
    if bg.shape[0] > max_background:
        bg = bg[rng.choice(bg.shape[0], max_background, replace=False)]
    expl = shap.TreeExplainer(model, data=bg, feature_perturbation="interventional",
                              model_output="raw")
    vals = expl.shap_values(X_test, check_additivity=False)
    vals = np.asarray(vals)
    if vals.ndim == 3:  # (m, p, classes) or (classes, m, p)
        vals = vals[..., 1] if vals.shape[-1] == 2 else vals[1]
    return vals


def summarize_shap(
    shap_per_fit: Sequence[np.ndarray],
    feature_names: Sequence[str],
    *,
    top_k: int = 10,
    clusters: dict[str, str] | None = None,
    ci: float = 0.95,
    directions: Sequence[np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stability summary of held-out SHAP values across fits.

    Parameters
    ----------
    shap_per_fit : list of ndarray (m_f, p)
        SHAP values on the test rows of each fit, columns = ``feature_names``
        (a feature absent from a fit has zeros there).
    feature_names : list of p str
    top_k : int
        A feature is "in the top k" of a fit when its mean |SHAP| ranks among the k
        largest and is > 0.
    clusters : dict feature -> cluster label, optional
    ci : float
        Width of the percentile interval of mean |SHAP| across fits.
    directions : list of ndarray (p,), optional
        Per fit, the sign of each feature's effect (+1 raises the score, -1 lowers it,
        0 not used). Default: sign of the correlation between feature value and SHAP is
        not available, so the sign of mean SHAP among rows above the median is used by
        the caller; for linear models pass ``sign(coef)``.

    Returns
    -------
    per_feature : DataFrame with feature, shap_mean_abs, shap_ci_low, shap_ci_high,
        shap_rank, shap_top_k_frequency, selection_frequency, direction (+1/-1/0),
        direction_consistency, n_fits.
    per_cluster : DataFrame with cluster, members, shap_mean_abs, ci, top-k frequency.
    """
    names = list(feature_names)
    p = len(names)
    M = np.array([np.abs(s).mean(0) if len(s) else np.zeros(p) for s in shap_per_fit])  # (F, p)
    F = M.shape[0]
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    ranks = np.argsort(np.argsort(-M, axis=1), axis=1)  # 0 = most important
    in_top = (ranks < top_k) & (M > 0)
    used = M > 0
    if directions is None:
        D = np.zeros_like(M)
    else:
        D = np.sign(np.asarray(directions, float))
    pos = ((D > 0) & used).sum(0)
    neg = ((D < 0) & used).sum(0)
    direction = np.where(pos > neg, 1, np.where(neg > pos, -1, 0))
    nsel = used.sum(0)
    consistency = np.where(nsel > 0, np.maximum(pos, neg) / np.maximum(nsel, 1), np.nan)
    mean_abs = M.mean(0)
    per_feature = pd.DataFrame({
        "feature": names,
        "shap_mean_abs": mean_abs,
        "shap_ci_low": np.quantile(M, lo, axis=0),
        "shap_ci_high": np.quantile(M, hi, axis=0),
        "shap_top_k_frequency": in_top.mean(0),
        "selection_frequency": used.mean(0),
        "direction": direction,
        "direction_consistency": consistency,
        "n_fits": F,
    })
    per_feature["shap_rank"] = per_feature["shap_mean_abs"].rank(ascending=False,
                                                                 method="min").astype(int)
    clusters = clusters or {n: n for n in names}
    labels = [clusters.get(n, n) for n in names]
    ulab = list(dict.fromkeys(labels))
    Mc = np.stack([M[:, [i for i, lab in enumerate(labels) if lab == u]].sum(1) for u in ulab],
                  axis=1)
    rc = np.argsort(np.argsort(-Mc, axis=1), axis=1)
    per_cluster = pd.DataFrame({
        "cluster": ulab,
        "members": [";".join(n for n, lab in zip(names, labels) if lab == u) for u in ulab],
        "shap_mean_abs": Mc.mean(0),
        "shap_ci_low": np.quantile(Mc, lo, axis=0),
        "shap_ci_high": np.quantile(Mc, hi, axis=0),
        "shap_top_k_frequency": ((rc < top_k) & (Mc > 0)).mean(0),
    }).sort_values("shap_mean_abs", ascending=False, ignore_index=True)
    return per_feature, per_cluster
