"""Diagnostic (binary label) models with nested, patient-grouped cross-validation.

Two model families, each :class:`~pathxai.stats.preprocess.FeaturePreprocessor` followed
by a classifier whose hyper-parameters are chosen by an inner grouped CV (pooled AUROC
over inner folds; grid in ``GRIDS``) on the outer training patients only (the
label-free preprocessor is fitted once per inner split and shared by both models):

* ``logistic``: L2-regularised logistic regression (grid over ``C``);
* ``gradient_boosting``: ``HistGradientBoostingClassifier`` (grid over depth).

Reported on pooled out-of-fold probabilities: AUROC and AUPRC with percentile bootstrap
CIs over patients, Brier score, calibration slope and intercept (logistic recalibration
of the outcome on logit(p); ideal 1 and 0) and a reliability curve. SHAP values are
computed on the outer test patients only (closed form for the logistic log-odds,
``shap.TreeExplainer`` for the trees); for the logistic model also on the out-of-bag
patients of bootstrap refits. :func:`univariable_logistic` gives the descriptive OR per SD
per feature with BH q-values.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedGroupKFold

from pathxai.exceptions import InsufficientDataError, StatsInputError
from pathxai.stats.explain import linear_shap, summarize_shap, tree_shap
from pathxai.stats.preprocess import FeaturePreprocessor
from pathxai.stats.results import DiagnosticResult
from pathxai.stats.univariable import bh_qvalues

__all__ = ["fit_diagnostic_models", "univariable_logistic", "MIN_CLASS_SIZE", "GRIDS"]

#: Fewest patients in the smaller class.
MIN_CLASS_SIZE = 10


def _check_label(y) -> np.ndarray:
    y = np.asarray(y)
    vals = np.unique(y[~pd.isna(y)])
    if vals.size != 2:
        raise StatsInputError(f"the label must have exactly two classes; found {vals[:10].tolist()}")
    if set(vals.tolist()) <= {0, 1}:
        return y.astype(int)
    raise StatsInputError(
        f"label values {vals.tolist()} are not 0/1; recode the positive class as 1"
    )


def univariable_logistic(features: pd.DataFrame, y) -> pd.DataFrame:
    """Per-feature logistic regression: OR per SD with Wald 95 % CI, p and BH q.

    Returns a DataFrame with feature, n, or, or_ci_low, or_ci_high, p, q, auroc (of the
    raw feature, oriented by the OR), converged, message.
    """
    import statsmodels.api as sm

    y = _check_label(y)
    rows = []
    for c in features.columns:
        x = features[c].to_numpy(float)
        ok = np.isfinite(x)
        row = {"feature": c, "n": int(ok.sum()), "or": np.nan, "or_ci_low": np.nan,
               "or_ci_high": np.nan, "p_label": np.nan, "auroc": np.nan, "converged": False,
               "message": ""}
        sd = x[ok].std(ddof=1) if ok.sum() > 2 else 0.0
        if sd == 0 or np.unique(y[ok]).size < 2:
            row["message"] = "constant feature or one class among patients with a value"
            rows.append(row)
            continue
        z = (x[ok] - x[ok].mean()) / sd
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                fit = sm.Logit(y[ok], sm.add_constant(z)).fit(disp=0, maxiter=100)
            b, se = float(fit.params[1]), float(fit.bse[1])
            if not np.isfinite(se) or abs(b) > 15:
                raise RuntimeError("coefficient diverges (separation)")
            row.update({"or": np.exp(b), "or_ci_low": np.exp(b - 1.96 * se),
                        "or_ci_high": np.exp(b + 1.96 * se), "p_label": float(fit.pvalues[1]),
                        "auroc": roc_auc_score(y[ok], b * z), "converged": True})
        except Exception as exc:  # perfect separation, singular matrix, convergence warning
            row["message"] = f"logistic fit failed: {type(exc).__name__}: {exc}"[:200]
        rows.append(row)
    out = pd.DataFrame(rows)
    out["q_label"] = bh_qvalues(out["p_label"])
    return out


#: Hyper-parameter grids searched in the inner CV (AUROC).
GRIDS: dict[str, list[dict[str, Any]]] = {
    "logistic": [{"C": c} for c in (0.01, 0.1, 1.0)],
    "gradient_boosting": [{"max_depth": d} for d in (2, 3)],
}


def _make_clf(name: str, params: dict[str, Any], seed: int):
    if name == "logistic":
        return LogisticRegression(max_iter=2000, **params)
    return HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=seed,
                                          early_stopping=False, **params)


def _inner_select(X, y, groups, tr, models, inner_folds, seed, pp):
    """Inner grouped CV on the rows ``tr``: best grid point per model by pooled AUROC.

    The preprocessor is fitted once per inner training split and shared by all models
    (it does not use the label).
    """
    cv = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
    scores = {m: np.zeros(len(GRIDS[m])) for m in models}
    for itr, ite in cv.split(np.zeros(len(tr)), y[tr], groups[tr]):
        a, b = tr[itr], tr[ite]
        pre = FeaturePreprocessor(**pp).fit(X.iloc[a], y[a])
        Za, Zb = pre.transform(X.iloc[a]), pre.transform(X.iloc[b])
        for m in models:
            for g, params in enumerate(GRIDS[m]):
                clf = _make_clf(m, params, seed).fit(Za, y[a])
                pb = clf.predict_proba(Zb)[:, 1]
                scores[m][g] += roc_auc_score(y[b], pb) if np.unique(y[b]).size == 2 else 0.5
    return {m: GRIDS[m][int(np.argmax(scores[m]))] for m in models}


def _boot_ci(y, p, W, fn) -> tuple[float, float]:
    vals = []
    for w in W:
        idx = np.repeat(np.arange(len(y)), w.astype(int))
        if np.unique(y[idx]).size < 2:
            continue
        vals.append(fn(y[idx], p[idx]))
    if not vals:
        return np.nan, np.nan
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def _calibration(y, p) -> dict[str, float]:
    import statsmodels.api as sm

    lp = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    try:
        slope_fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
        slope = float(slope_fit.params[1])
        s_ci = slope_fit.conf_int()[1]
        int_fit = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
        inter = float(int_fit.params[0])
        i_ci = int_fit.conf_int()[0]
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return {"error": f"calibration fit failed: {exc}"}
    return {"slope": slope, "slope_ci_low": float(s_ci[0]), "slope_ci_high": float(s_ci[1]),
            "intercept": inter, "intercept_ci_low": float(i_ci[0]),
            "intercept_ci_high": float(i_ci[1])}


def fit_diagnostic_models(
    X: pd.DataFrame,
    y,
    *,
    groups=None,
    outer_folds: int = 5,
    inner_folds: int = 3,
    n_bootstrap: int = 200,
    top_k: int = 10,
    clusters: dict[str, str] | None = None,
    preprocess_params: dict[str, Any] | None = None,
    models: tuple[str, ...] = ("logistic", "gradient_boosting"),
    seed: int = 0,
) -> DiagnosticResult:
    """Nested patient-grouped CV of the diagnostic models, with held-out SHAP.

    Parameters
    ----------
    X : DataFrame (n_patients, p) numeric; y : (n,) binary label 0/1.
    groups : (n,) patient ids (default: one per row).
    outer_folds, inner_folds : CV folds. n_bootstrap : replicates for CIs and SHAP.
    top_k : SHAP top-k. clusters : feature -> cluster label. preprocess_params : see
    FeaturePreprocessor. models : subset of ('logistic', 'gradient_boosting'). seed : int.

    Returns
    -------
    DiagnosticResult
        ``summary``: one row per model (auroc, CI, auprc, CI, brier, calibration);
        ``curves``: ROC and reliability curves; ``shap_summary`` dict model -> DataFrame;
        ``shap_clusters``; ``oof`` DataFrame of out-of-fold probabilities.
    """
    y = _check_label(y)
    n, p = X.shape
    names = list(X.columns)
    minority = int(min(y.sum(), n - y.sum()))
    need = max(MIN_CLASS_SIZE, 2 * outer_folds)
    if minority < need:
        raise InsufficientDataError(
            f"the smaller label class has {minority} patients; nested CV with {outer_folds} "
            f"outer folds needs at least {need}"
        )
    groups = np.arange(n) if groups is None else np.asarray(groups)
    pp = dict(preprocess_params or {})
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_bootstrap)]
                 ) if n_bootstrap else np.zeros((0, n))
    for name in models:
        if name not in GRIDS:
            raise StatsInputError(f"unknown model {name!r}; choose from {list(GRIDS)}")
    outer = StratifiedGroupKFold(n_splits=outer_folds, shuffle=True, random_state=seed)
    splits = list(outer.split(np.zeros(n), y, groups))
    prob = {m: np.full(n, np.nan) for m in models}
    fold_shap = {m: [] for m in models}
    fold_dirs = {m: [] for m in models}
    chosen = {m: [] for m in models}
    for f, (tr, te) in enumerate(splits):
        best = _inner_select(X, y, groups, tr, models, inner_folds, seed + 1 + f, pp)
        pre = FeaturePreprocessor(**pp).fit(X.iloc[tr], y[tr])
        Ztr, Zte = pre.transform(X.iloc[tr]), pre.transform(X.iloc[te])
        for name in models:
            clf = _make_clf(name, best[name], seed).fit(Ztr, y[tr])
            chosen[name].append(best[name])
            prob[name][te] = clf.predict_proba(Zte)[:, 1]
            if name == "logistic":
                phi = linear_shap(clf.coef_[0], Zte, Ztr.mean(0))
                fold_dirs[name].append(pre.expand(np.sign(clf.coef_[0])))
            else:
                phi = tree_shap(clf, Zte, Ztr, seed=seed)
                zc = Zte - Zte.mean(0)
                fold_dirs[name].append(pre.expand(np.sign((zc * phi).sum(0))))
            fold_shap[name].append(pre.expand(phi))
    rows, curves, shap_summaries, shap_clusters, oof = [], {}, {}, {}, {}
    for name in models:
        boot_shap, boot_dirs = [], []
        if name == "logistic" and n_bootstrap:
            pre = FeaturePreprocessor(**pp).fit(X, y)
            Z = pre.transform(X)
            C = _inner_select(X, y, groups, np.arange(n), ("logistic",), inner_folds, seed,
                              pp)["logistic"]["C"]
            for w in W:
                oob = w == 0
                if np.unique(y[w > 0]).size < 2 or not oob.any():
                    continue
                clf = LogisticRegression(C=C, max_iter=2000).fit(Z, y, sample_weight=w)
                mu = (w[:, None] * Z).sum(0) / w.sum()
                boot_shap.append(pre.expand(linear_shap(clf.coef_[0], Z[oob], mu)))
                boot_dirs.append(pre.expand(np.sign(clf.coef_[0])))
        ss, sc = summarize_shap(fold_shap[name] + boot_shap, names, top_k=top_k,
                                clusters=clusters, directions=fold_dirs[name] + boot_dirs)
        shap_summaries[name], shap_clusters[name] = ss, sc
        pm = prob[name]
        auroc = roc_auc_score(y, pm)
        auprc = average_precision_score(y, pm)
        a_lo, a_hi = _boot_ci(y, pm, W, roc_auc_score)
        p_lo, p_hi = _boot_ci(y, pm, W, average_precision_score)
        cal = _calibration(y, pm)
        rows.append({"model": name, "auroc": auroc, "auroc_ci_low": a_lo, "auroc_ci_high": a_hi,
                     "auprc": auprc, "auprc_ci_low": p_lo, "auprc_ci_high": p_hi,
                     "prevalence": float(y.mean()), "brier": brier_score_loss(y, pm),
                     **{f"calibration_{k}": v for k, v in cal.items()},
                     "chosen_params": chosen[name]})
        fpr, tpr, _ = roc_curve(y, pm)
        pt, pp_ = calibration_curve(y, pm, n_bins=10, strategy="quantile")
        curves[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "prob_true": pt.tolist(),
                        "prob_pred": pp_.tolist()}
        oof[f"prob_{name}"] = pm
    info = {"n_patients": n, "n_positive": int(y.sum()), "outer_folds": outer_folds,
            "inner_folds": inner_folds, "n_bootstrap": n_bootstrap, "seed": seed,
            "selection": "inner StratifiedGroupKFold CV on AUROC over GRIDS"}
    res = DiagnosticResult(pd.DataFrame(rows), info, curves)
    res.shap_summary = shap_summaries
    res.shap_clusters = shap_clusters
    res.oof = pd.DataFrame(oof)
    return res
