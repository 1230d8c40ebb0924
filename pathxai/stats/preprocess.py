"""Feature preprocessing that is fitted inside training folds only.

:class:`FeaturePreprocessor` is a scikit-learn transformer (``fit`` returns ``self``,
fitted attributes end in ``_``) that, using the *training* rows only:

1. drops features that are mostly missing, constant or near-constant, recording the
   reason for each in ``dropped_``;
2. optionally log-transforms skewed non-negative features, ``log(x + c)`` with
   ``c`` = half the smallest positive training value (unit-invariant, unlike ``log1p``),
   or applies a normal-scores quantile transform;
3. imputes remaining missing values with the training median;
4. standardises to mean 0 / SD 1 (SD with ddof=1, so effects are "per SD");
5. groups features whose absolute Spearman correlation exceeds ``cluster_threshold``
   (complete-linkage clustering, so every pair inside a cluster exceeds it) and keeps
   one representative per cluster: with ``representative='outcome'`` and ``y`` given to
   ``fit``, the member most associated with the outcome *in the training rows*
   (largest |C - 0.5|, Harrell's C for a survival ``y`` = [time, event], AUROC for a
   binary ``y``); otherwise the member with the largest mean |rho| to the others. Ties:
   fewer missing values, then column order.

The output holds the representatives only, standardised. Put it in a
:class:`sklearn.pipeline.Pipeline` so that cross-validation refits it per fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata, skew
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pathxai.exceptions import StatsInputError

__all__ = ["FeaturePreprocessor", "spearman_clusters"]


def spearman_clusters(X: np.ndarray, threshold: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Cluster columns whose |Spearman rho| exceeds ``threshold`` (complete linkage).

    Parameters
    ----------
    X : ndarray (n, p) without missing values.
    threshold : float in (0, 1]

    Returns
    -------
    labels : ndarray (p,) int cluster id starting at 0, in order of first appearance.
    abs_rho : ndarray (p, p) absolute Spearman correlation matrix.
    """
    p = X.shape[1]
    if p == 1:
        return np.zeros(1, int), np.ones((1, 1))
    ranks = rankdata(X, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)
    abs_rho = np.nan_to_num(np.abs(rho), nan=0.0)
    np.fill_diagonal(abs_rho, 1.0)
    dist = np.clip(1.0 - abs_rho, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(dist, checks=False), method="complete")
    raw = fcluster(z, t=1.0 - threshold, criterion="distance")
    # renumber by first appearance so ids are stable and readable
    _, first = np.unique(raw, return_index=True)
    order = {lab: k for k, lab in enumerate(raw[np.sort(first)])}
    return np.array([order[r] for r in raw]), abs_rho


def _association(x: np.ndarray, y) -> float:
    """|C - 0.5| of ``x`` for the outcome ``y`` (survival [time, event] or binary)."""
    y = np.asarray(y, float)
    if y.ndim == 2 and y.shape[1] == 2:
        from pathxai.stats.metrics import harrell_c

        c = harrell_c(y[:, 0], y[:, 1], x)
    else:
        from sklearn.metrics import roc_auc_score

        if np.unique(y).size != 2:
            return 0.0
        c = roc_auc_score(y, x)
    return abs(c - 0.5) if np.isfinite(c) else 0.0


class FeaturePreprocessor(TransformerMixin, BaseEstimator):
    """Filter, transform, impute, standardise and de-correlate features (fit on training rows).

    Parameters
    ----------
    max_missing : float
        Drop a feature when more than this fraction of training values is missing.
    max_mode_fraction : float
        Drop a feature as near-constant when its most frequent value covers more than this
        fraction of non-missing training values.
    skew_transform : {'auto_log', 'log', 'quantile', 'none'}
        'auto_log': ``log(x + c)`` for non-negative features with skewness >
        ``skew_threshold``; 'log': the same for every non-negative feature (``c`` = half
        the smallest positive training value, in ``log_offsets_``); 'quantile': normal scores
        (rank-based, fitted on training rows); 'none'.
    skew_threshold : float
    representative : {'outcome', 'correlation'}
        How a cluster's representative is chosen (see above; 'outcome' needs ``y``).
    cluster_threshold : float or None
        |Spearman rho| above which features are clustered; None keeps every feature.

    Attributes
    ----------
    feature_names_in_ : ndarray (p,) str
    dropped_ : dict feature -> reason
    log_features_ : list of str
    clusters_ : dict feature -> int cluster id (kept features only)
    representatives_ : list of str (output columns, in input order)
    cluster_members_ : dict representative -> list of member features
    center_, scale_, median_ : ndarray over the kept (pre-cluster) features
    support_ : ndarray (p,) bool, True for features in the output
    """

    def __init__(self, max_missing: float = 0.2, max_mode_fraction: float = 0.95,
                 skew_transform: str = "auto_log", skew_threshold: float = 1.0,
                 cluster_threshold: float | None = 0.9, representative: str = "outcome"):
        self.max_missing = max_missing
        self.max_mode_fraction = max_mode_fraction
        self.skew_transform = skew_transform
        self.skew_threshold = skew_threshold
        self.cluster_threshold = cluster_threshold
        self.representative = representative

    def _as_frame(self, X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            df = X
        else:
            arr = np.asarray(X)
            names = getattr(self, "feature_names_in_", None)
            if names is None or len(names) != arr.shape[1]:
                names = [f"x{i}" for i in range(arr.shape[1])]
            df = pd.DataFrame(arr, columns=list(names))
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        if bad:
            raise StatsInputError(
                f"non-numeric feature column(s) {bad[:5]}; convert them or drop them before "
                "preprocessing (pathxai.stats.analyze records such columns as exclusions)"
            )
        return df.astype(float).replace([np.inf, -np.inf], np.nan)

    def fit(self, X, y=None):
        if self.representative not in ("outcome", "correlation"):
            raise StatsInputError(
                f"representative={self.representative!r}; use 'outcome' or 'correlation'")
        if self.skew_transform not in ("auto_log", "log", "quantile", "none"):
            raise StatsInputError(
                f"skew_transform={self.skew_transform!r}; use 'auto_log', 'log', 'quantile' or 'none'"
            )
        df = self._as_frame(X)
        self.feature_names_in_ = np.array(df.columns, dtype=object)
        self.n_features_in_ = df.shape[1]
        dropped: dict[str, str] = {}
        kept: list[str] = []
        n = len(df)
        for c in df.columns:
            col = df[c].to_numpy()
            ok = np.isfinite(col)
            miss = 1.0 - ok.mean() if n else 1.0
            if miss > self.max_missing:
                dropped[c] = f"missing in {miss:.0%} of training rows (> {self.max_missing:.0%})"
                continue
            vals = col[ok]
            if vals.size < 2 or np.nanstd(vals) == 0:
                dropped[c] = "constant in training rows"
                continue
            _, counts = np.unique(vals, return_counts=True)
            mode = counts.max() / vals.size
            if mode > self.max_mode_fraction:
                dropped[c] = (
                    f"near-constant: one value in {mode:.0%} of training rows "
                    f"(> {self.max_mode_fraction:.0%})"
                )
                continue
            kept.append(c)
        if not kept:
            raise StatsInputError(
                f"every one of {df.shape[1]} features was dropped in preprocessing "
                f"(e.g. {next(iter(dropped.items()))}); check the feature table"
            )
        sub = df[kept].to_numpy(float)
        log_feats: list[str] = []
        if self.skew_transform in ("auto_log", "log"):
            for j, c in enumerate(kept):
                v = sub[:, j][np.isfinite(sub[:, j])]
                if v.min() < 0:
                    continue
                if self.skew_transform == "log" or skew(v) > self.skew_threshold:
                    log_feats.append(c)
        self.log_features_ = log_feats
        self.log_offsets_ = {}
        for c in log_feats:
            v = sub[:, kept.index(c)]
            pos = v[np.isfinite(v) & (v > 0)]
            self.log_offsets_[c] = float(pos.min() / 2) if pos.size else 1.0
        self.kept_features_ = kept
        sub = self._apply_transform(sub, fit=True)
        self.median_ = np.nanmedian(sub, axis=0)
        sub = np.where(np.isfinite(sub), sub, self.median_)
        self.center_ = sub.mean(0)
        sd = sub.std(0, ddof=1)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        z = (sub - self.center_) / self.scale_
        if self.cluster_threshold is None or len(kept) == 1:
            labels = np.arange(len(kept))
            abs_rho = np.eye(len(kept))
        else:
            labels, abs_rho = spearman_clusters(z, self.cluster_threshold)
        missing = df[kept].isna().mean().to_numpy()
        reps: list[int] = []
        members: dict[str, list[str]] = {}
        for lab in np.unique(labels):
            idx = np.flatnonzero(labels == lab)
            if idx.size == 1:
                best = idx[0]
            else:
                if self.representative == "outcome" and y is not None:
                    score = np.array([_association(z[:, i], y) for i in idx])
                else:
                    score = (abs_rho[np.ix_(idx, idx)].sum(1) - 1) / (idx.size - 1)
                key = np.lexsort((idx, missing[idx], -np.round(score, 12)))
                best = idx[key[0]]
            reps.append(best)
            members[kept[best]] = [kept[i] for i in idx]
        reps.sort()
        self.clusters_ = {c: int(labels[i]) for i, c in enumerate(kept)}
        self.representatives_ = [kept[i] for i in reps]
        self.cluster_members_ = {r: members[r] for r in self.representatives_}
        self._rep_idx = np.array(reps)
        for r, mem in self.cluster_members_.items():
            for m in mem:
                if m != r:
                    dropped[m] = f"correlated with {r} (|Spearman rho| > {self.cluster_threshold})"
        self.dropped_ = dropped
        names = list(self.feature_names_in_)
        self.support_ = np.array([c in set(self.representatives_) for c in names])
        return self

    def _apply_transform(self, sub: np.ndarray, *, fit: bool) -> np.ndarray:
        sub = sub.copy()
        if self.skew_transform in ("auto_log", "log"):
            for c in self.log_features_:
                j = self.kept_features_.index(c)
                sub[:, j] = np.log(np.clip(sub[:, j], 0, None) + self.log_offsets_[c])
        elif self.skew_transform == "quantile":
            if fit:
                self._q_ref = [np.sort(col[np.isfinite(col)]) for col in sub.T]
            from scipy.stats import norm

            for j, ref in enumerate(self._q_ref):
                col = sub[:, j]
                ok = np.isfinite(col)
                lo = np.searchsorted(ref, col[ok], side="left")
                hi = np.searchsorted(ref, col[ok], side="right")
                u = (0.5 * (lo + hi) + 0.5) / (ref.size + 1)
                sub[ok, j] = norm.ppf(np.clip(u, 1e-6, 1 - 1e-6))
        return sub

    def transform_all(self, X) -> np.ndarray:
        """Standardised values of every kept feature (before de-correlation), (n, k)."""
        check_is_fitted(self, "representatives_")
        df = self._as_frame(X)
        missing = [c for c in self.kept_features_ if c not in df.columns]
        if missing:
            raise StatsInputError(f"columns {missing[:5]} seen in fit are missing from X")
        sub = self._apply_transform(df[self.kept_features_].to_numpy(float), fit=False)
        sub = np.where(np.isfinite(sub), sub, self.median_)
        return (sub - self.center_) / self.scale_

    def transform(self, X) -> np.ndarray:
        """Standardised representatives, shape (n, len(representatives_))."""
        return self.transform_all(X)[:, self._rep_idx]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "representatives_")
        return np.array(self.representatives_, dtype=object)

    def expand(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Map values over output columns (..., k) back to input columns (..., p)."""
        check_is_fitted(self, "representatives_")
        values = np.asarray(values, float)
        out = np.full(values.shape[:-1] + (self.n_features_in_,), fill)
        pos = {c: i for i, c in enumerate(self.feature_names_in_)}
        idx = [pos[c] for c in self.representatives_]
        out[..., idx] = values
        return out
