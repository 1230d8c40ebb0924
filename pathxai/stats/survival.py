"""Multivariable elastic-net Cox model with nested, patient-grouped cross-validation.

What :func:`fit_survival_model` does (everything data-driven happens inside training
folds):

* **Outer loop** (performance): ``StratifiedGroupKFold`` on the event indicator, grouped
  by patient. In each outer training set: :class:`~pathxai.stats.preprocess.FeaturePreprocessor`
  is fitted, the penalty is chosen by an **inner** grouped K-fold CV (cross-validated
  partial log-likelihood of Verweij & van Houwelingen 1993), the model is refitted and
  the held-out patients get a risk score (log partial hazard), survival predictions at
  the horizons (Breslow baseline of the training fold), a risk group (cut at the
  training patients' quantiles of the score: no cutpoint sees the test patients) and
  SHAP values.
* **Performance** on the pooled out-of-fold scores: Harrell's and Uno's C-index,
  cumulative/dynamic AUC(t) at the horizons, calibration at a horizon (grouped observed
  Kaplan--Meier vs mean predicted risk; calibration slope), Kaplan--Meier per risk group
  with log-rank test. Confidence intervals: percentile bootstrap over patients.
* **Final model**: preprocessing and penalty choice on all patients (K-fold CV), coefficients
  per SD reported. **Optimism bootstrap** (Harrell): the final model's apparent C minus the
  mean optimism of models refitted on bootstrap resamples (same preprocessing and
  penalty; refitting the penalty choice too would add a little optimism, so the
  correction is slightly conservative in that respect). Out-of-bag SHAP values of each
  bootstrap refit feed the stability summary.
* Optional exploratory optimal cutpoint of the out-of-fold score: maximally selected
  log-rank statistic with its corrected p-value (:mod:`pathxai.stats.cutpoint`).

Notes
-----
Out-of-fold scores of different fold models are pooled for the C-indices (the usual
practice; per-fold Harrell's C is reported too). Bootstrap replicates of Uno's C and
AUC(t) keep the censoring distribution G estimated on all patients. Pairwise metrics
use n x n arrays: fine up to a few thousand patients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pathxai.exceptions import InsufficientDataError, StatsInputError
from pathxai.stats.coxnet import (
    CoxData,
    breslow_baseline,
    cox_loss_grad,
    fit_cox_newton,
    fit_coxnet_path,
    lambda_max,
)
from pathxai.stats.cutpoint import maxstat_cutpoint
from pathxai.stats.explain import linear_shap, summarize_shap
from pathxai.stats.metrics import censoring_survival
from pathxai.stats.preprocess import FeaturePreprocessor
from pathxai.stats.results import SurvivalModelResult

__all__ = ["fit_survival_model", "compare_c_indices", "bootstrap_weights",
           "MIN_EVENTS_MULTIVARIABLE"]

#: Fewest events for the multivariable model (also at least 2 per outer fold).
MIN_EVENTS_MULTIVARIABLE = 10


def _pair_matrices(time, event, risk, *, tau=None, g=None):
    """Numerator/denominator pair matrices for Harrell's and Uno's C (n x n)."""
    diff = risk[:, None] - risk[None, :]
    conc = (diff > 0) + 0.5 * (diff == 0)
    comp = (event[:, None] > 0) & (time[:, None] < time[None, :])
    out = {"harrell": (comp * conc, comp.astype(float))}
    if g is not None:
        w = np.where((event > 0) & (time < tau) & (g > 0), 1.0 / np.maximum(g, 1e-12) ** 2, 0.0)
        cu = comp * w[:, None]
        out["uno"] = (cu * conc, cu)
    return out, conc


def _pair_stat(num: np.ndarray, den: np.ndarray, W: np.ndarray) -> np.ndarray:
    """sum_ij W_i W_j num_ij / sum_ij W_i W_j den_ij for each row of W (B, n)."""
    a = ((W @ num) * W).sum(1)
    b = ((W @ den) * W).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return a / b


def bootstrap_weights(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """Patient multiplicities of the percentile bootstrap, shape ``(n_bootstrap, n)``.

    Parameters
    ----------
    n : number of patients.
    n_bootstrap : number of resamples (0 gives an empty ``(0, n)`` array).
    seed : the same seed gives the same resamples, so two models fitted with one seed
        (e.g. the pre-specified and the all-feature model of :func:`pathxai.stats.analyze`)
        are bootstrapped over identical patient resamples and can be compared pairwise.

    Returns
    -------
    ndarray of float
    """
    if not n_bootstrap:
        return np.zeros((0, n))
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                     for _ in range(n_bootstrap)]).astype(float)


def _ci(values: np.ndarray, estimate: float, ci: float = 0.95) -> dict[str, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo, hi = (np.quantile(v, [(1 - ci) / 2, 1 - (1 - ci) / 2]) if v.size else (np.nan, np.nan))
    return {"estimate": float(estimate), "ci_low": float(lo), "ci_high": float(hi),
            "n_bootstrap": int(v.size)}


def _cv_choose(X_list, train_masks, inner_masks, data, l1_ratio, n_lambdas, ratio, pf=None):
    """Fit path for one level (K inner problems + the full-training problem); pick lambda.

    Returns chosen index, lambdas, betas of the full-training problem (L, p).
    """
    B = len(X_list)
    Xs = np.stack([x[data.order] for x in X_list])
    W = np.stack([m[data.order].astype(float) for m in [*inner_masks, train_masks]])
    lmax = lambda_max(Xs[-1:], W[-1:], data, l1_ratio, pf)[0]
    if not np.isfinite(lmax) or lmax <= 0:
        lmax = 1.0
    lambdas = lmax * np.logspace(0, np.log10(ratio), n_lambdas)
    betas, _ = fit_coxnet_path(Xs, W, data, lambdas, l1_ratio=l1_ratio, penalty_factor=pf)
    # cross-validated partial log-likelihood (Verweij & van Houwelingen)
    cvl = np.zeros(n_lambdas)
    wt = train_masks[data.order].astype(float)
    for k in range(B - 1):
        eta = np.einsum("lp,np->ln", betas[k], Xs[k])
        l_full, _ = cox_loss_grad(eta, wt[None, :], data, grad=False)
        l_in, _ = cox_loss_grad(eta, W[k][None, :], data, grad=False)
        cvl += -l_full * wt.sum() + l_in * W[k].sum()
    best = int(np.argmax(cvl))
    return best, lambdas, betas[-1], cvl


def _inner_splits(idx_train, event, groups, k, seed):
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [idx_train[tr] for tr, _ in cv.split(idx_train, event[idx_train], groups[idx_train])]


def fit_survival_model(
    X: pd.DataFrame,
    time,
    event,
    *,
    groups=None,
    covariates: pd.DataFrame | None = None,
    l1_ratio: float = 0.5,
    n_lambdas: int = 20,
    lambda_min_ratio: float = 0.02,
    outer_folds: int = 5,
    inner_folds: int = 5,
    n_bootstrap: int = 200,
    horizons=None,
    calibration_horizon: float | None = None,
    n_risk_groups: int = 3,
    top_k: int = 10,
    clusters: dict[str, str] | None = None,
    preprocess_params: dict[str, Any] | None = None,
    cutpoint: bool = True,
    seed: int = 0,
) -> SurvivalModelResult:
    """Nested-CV elastic-net Cox model with honest performance, SHAP and bootstrap.

    Parameters
    ----------
    X : DataFrame (n_patients, p) numeric features (NaN allowed; imputed inside folds).
    time : (n,) follow-up time (unit of the clinical table); event : (n,) 0/1.
    groups : (n,) patient ids (default: one group per row).
    covariates : DataFrame (n, c), optional
        Clinical adjustment variables entered **unpenalised** (categoricals dummy-coded,
        standardised and mean-imputed with training-fold statistics); they are part of the
        risk score and of the SHAP summaries but are not candidate biomarkers.
    l1_ratio : elastic-net mix (1 = lasso). n_lambdas, lambda_min_ratio : penalty grid.
    outer_folds, inner_folds : CV folds (outer: performance, inner: penalty choice).
    n_bootstrap : bootstrap replicates for CIs, optimism and SHAP stability.
    horizons : times for AUC(t) (default: 25/50/75 % quantiles of the event times).
    calibration_horizon : time for calibration (default: the middle horizon).
    n_risk_groups : pre-specified quantile groups of the risk score (3 = tertiles).
    top_k : k of the SHAP top-k stability.
    clusters : feature -> cluster label for cluster-level importance.
    preprocess_params : keyword arguments of FeaturePreprocessor.
    cutpoint : also report the exploratory maximally selected log-rank cutpoint.
    seed : seeds the folds and the bootstrap.

    Returns
    -------
    SurvivalModelResult
        ``summary`` (final-model coefficients per SD), ``metrics`` (dict of C-indices with
        CIs, AUC(t), calibration, log-rank, cutpoint), ``km`` (risk-group curves), plus
        attributes ``oof`` (DataFrame per patient), ``shap_summary``, ``shap_clusters``,
        ``shap_oof`` (n, p) and ``x_oof`` (n, p) standardised values for plotting.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n, p = X.shape
    names = list(X.columns)
    n_ev = int(event.sum())
    need = max(MIN_EVENTS_MULTIVARIABLE, 2 * outer_folds)
    if n_ev < need:
        raise InsufficientDataError(
            f"{n_ev} events among {n} patients; the multivariable Cox model with "
            f"{outer_folds} outer folds needs at least {need}"
        )
    if (n - n_ev) < outer_folds:
        raise InsufficientDataError(
            f"only {n - n_ev} censored patients; need at least {outer_folds} for stratified folds"
        )
    groups = np.arange(n) if groups is None else np.asarray(groups)
    pp = dict(preprocess_params or {})
    data = CoxData.from_arrays(time, event)
    ysurv = np.c_[time, event]
    ev_times = time[event > 0]
    if horizons is None:
        horizons = np.quantile(ev_times, [0.25, 0.5, 0.75])
    horizons = np.atleast_1d(np.asarray(horizons, float))
    t_cal = float(calibration_horizon if calibration_horizon is not None
                  else horizons[len(horizons) // 2])

    if covariates is not None and covariates.shape[1]:
        C = pd.get_dummies(covariates, drop_first=True).astype(float).to_numpy()
        cov_names = list(pd.get_dummies(covariates, drop_first=True).columns)
    else:
        C, cov_names = np.zeros((n, 0)), []
    pf = np.r_[np.ones(p), np.zeros(len(cov_names))]
    names_all = names + cov_names

    def full_matrix(pre: FeaturePreprocessor, rows) -> np.ndarray:
        F = pre.expand(pre.transform(X), fill=0.0)
        if not cov_names:
            return F
        m = np.nanmean(C[rows], axis=0)
        sd = np.nanstd(C[rows], axis=0, ddof=1)
        Cz = (C - m) / np.where(sd > 0, sd, 1.0)
        return np.hstack([F, np.nan_to_num(Cz, nan=0.0)])

    def inner_design(rows, split_seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Design matrices (preprocessing fitted on each inner training part) and the
        inner training masks of the patients ``rows``."""
        mats, masks = [], []
        for itr in _inner_splits(rows, event, groups, inner_folds, split_seed):
            m = np.zeros(n, bool)
            m[itr] = True
            mats.append(full_matrix(FeaturePreprocessor(**pp).fit(X.iloc[itr], ysurv[itr]), itr))
            masks.append(m)
        return mats, masks

    # ---------------- outer loop ----------------
    outer = StratifiedGroupKFold(n_splits=outer_folds, shuffle=True, random_state=seed)
    oof_eta = np.full(n, np.nan)
    oof_surv = np.full((n, horizons.size), np.nan)
    oof_cal = np.full(n, np.nan)
    oof_group = np.full(n, -1)
    fold_id = np.full(n, -1)
    shap_oof = np.zeros((n, len(names_all)))
    x_oof = np.zeros((n, len(names_all)))
    fold_shap, fold_dirs, fold_rows = [], [], []
    chosen_lambdas = []
    for f, (tr, te) in enumerate(outer.split(np.zeros(n), event, groups)):
        train = np.zeros(n, bool)
        train[tr] = True
        mats, masks = inner_design(tr, seed + 1 + f)
        pre_f = FeaturePreprocessor(**pp).fit(X.iloc[tr], ysurv[tr])
        Xf = full_matrix(pre_f, tr)
        best, lambdas, path, _ = _cv_choose([*mats, Xf], train, masks, data, l1_ratio,
                                            n_lambdas, lambda_min_ratio, pf)
        beta = path[best]
        chosen_lambdas.append(float(lambdas[best]))
        eta_all = Xf @ beta
        oof_eta[te] = eta_all[te]
        fold_id[te] = f
        bt, bh = breslow_baseline(eta_all[data.order], data, train[data.order].astype(float))
        idx = np.searchsorted(bt, horizons, side="right") - 1
        h0 = np.where(idx >= 0, bh[np.clip(idx, 0, None)], 0.0)
        oof_surv[te] = np.exp(-np.outer(np.exp(eta_all[te]), h0))
        ic = np.searchsorted(bt, t_cal, side="right") - 1
        h0c = bh[ic] if ic >= 0 else 0.0
        oof_cal[te] = 1 - np.exp(-np.exp(eta_all[te]) * h0c)
        cuts = np.quantile(eta_all[tr], np.arange(1, n_risk_groups) / n_risk_groups)
        oof_group[te] = np.searchsorted(cuts, eta_all[te], side="right")
        mu = Xf[tr].mean(0)
        phi = linear_shap(beta, Xf[te], mu)
        shap_oof[te] = phi
        x_oof[te] = Xf[te]
        fold_shap.append(phi)
        fold_dirs.append(np.sign(beta))
        fold_rows.append(te)

    # ---------------- performance of the out-of-fold scores ----------------
    g_all = censoring_survival(time, event, time, left=True)
    tau = float(ev_times.max())
    mats_oof, conc_oof = _pair_matrices(time, event, oof_eta, tau=tau, g=g_all)
    Wb = bootstrap_weights(n, n_bootstrap, seed)
    ones = np.ones((1, n))
    metrics: dict[str, Any] = {}
    for key, (num, den) in mats_oof.items():
        est = _pair_stat(num, den, ones)[0]
        metrics[f"{key}_c"] = _ci(_pair_stat(num, den, Wb) if len(Wb) else [], est)
    # time-dependent AUC (cumulative / dynamic, IPCW)
    w_ipcw = np.where(g_all > 0, 1.0 / np.maximum(g_all, 1e-12), 0.0)
    auc = {}
    for t in horizons:
        cases = (event > 0) & (time <= t)
        ctrl = (time > t).astype(float)
        if not cases.any() or not ctrl.any():
            auc[f"{t:.6g}"] = {"estimate": float("nan"), "ci_low": float("nan"),
                               "ci_high": float("nan"), "n_bootstrap": 0}
            continue
        wc = w_ipcw * cases
        num = wc[:, None] * ctrl[None, :] * conc_oof
        den = wc[:, None] * ctrl[None, :]
        est = _pair_stat(num, den, ones)[0]
        auc[f"{t:.6g}"] = _ci(_pair_stat(num, den, Wb) if len(Wb) else [], est)
    metrics["time_dependent_auc"] = auc
    metrics["horizons"] = [float(h) for h in horizons]
    metrics["per_fold_harrell_c"] = []
    for rows in fold_rows:
        mf, _ = _pair_matrices(time[rows], event[rows], oof_eta[rows])
        num, den = mf["harrell"]
        metrics["per_fold_harrell_c"].append(float(num.sum() / max(den.sum(), 1e-12)))
    metrics["chosen_lambda_per_fold"] = chosen_lambdas
    metrics["calibration"] = _calibration(time, event, oof_eta, oof_cal, t_cal)
    km = _risk_group_km(time, event, oof_group, n_risk_groups, horizons)
    metrics["logrank_risk_groups"] = km["logrank"]
    if cutpoint:
        try:
            ms = maxstat_cutpoint(oof_eta, time, event, method="Lau94")
            metrics["exploratory_cutpoint"] = {**ms.__dict__, "note": (
                "maximally selected log-rank cutpoint of the out-of-fold risk score; "
                "search-corrected p (Lausen et al. 1994); exploratory, not validated")}
        except InsufficientDataError as exc:
            metrics["exploratory_cutpoint"] = {"error": str(exc)}

    # ---------------- final model on all patients ----------------
    all_idx = np.arange(n)
    mats, masks = inner_design(all_idx, seed + 1000)
    pre = FeaturePreprocessor(**pp).fit(X, ysurv)
    Xa = full_matrix(pre, all_idx)
    best, lambdas, path, cvl = _cv_choose([*mats, Xa], np.ones(n, bool), masks, data, l1_ratio,
                                          n_lambdas, lambda_min_ratio, pf)
    lam = float(lambdas[best])
    beta_final = path[best]
    eta_final = Xa @ beta_final
    mats_app, _ = _pair_matrices(time, event, eta_final, tau=tau, g=g_all)
    apparent = {k: float(_pair_stat(*v, ones)[0]) for k, v in mats_app.items()}

    # ---------------- optimism bootstrap (+ out-of-bag SHAP) ----------------
    boot_shap, boot_dirs = [], []
    optimism = {k: [] for k in apparent}
    sel_count = np.zeros(len(names_all))
    if n_bootstrap:
        Xs = Xa[data.order]
        Wsorted = Wb[:, data.order]
        bb, _ = fit_coxnet_path(Xs, Wsorted, data, np.array([lam]), l1_ratio=l1_ratio,
                                beta0=np.broadcast_to(beta_final, (n_bootstrap, Xa.shape[1])),
                                penalty_factor=pf)
        bb = bb[:, 0]
        sel_count = (bb != 0).sum(0)
        for b in range(n_bootstrap):
            eta_b = Xa @ bb[b]
            mats_b, _ = _pair_matrices(time, event, eta_b, tau=tau, g=g_all)
            for k, (num, den) in mats_b.items():
                app = _pair_stat(num, den, Wb[b:b + 1])[0]
                test = _pair_stat(num, den, ones)[0]
                optimism[k].append(app - test)
            oob = Wb[b] == 0
            mu = (Wb[b][:, None] * Xa).sum(0) / Wb[b].sum()
            boot_shap.append(linear_shap(bb[b], Xa[oob], mu))
            boot_dirs.append(np.sign(bb[b]))
        for k in apparent:
            opt = np.asarray(optimism[k])
            corr = apparent[k] - opt
            metrics[f"{k}_c_optimism_corrected"] = {
                **_ci(corr, apparent[k] - float(np.nanmean(opt))),
                "apparent": apparent[k], "mean_optimism": float(np.nanmean(opt)),
                "note": "interval = percentiles of apparent - optimism_b (approximate)"}
    metrics["final_lambda"] = lam
    metrics["l1_ratio"] = l1_ratio

    # stability ranks candidate features only: covariates must not take top-k places
    shap_summary, shap_clusters = summarize_shap(
        [v[:, :p] for v in fold_shap + boot_shap], names, top_k=top_k, clusters=clusters,
        directions=[d[:p] for d in fold_dirs + boot_dirs])
    covariate_shap = None
    if cov_names:
        covariate_shap, _ = summarize_shap(fold_shap + boot_shap, names_all, top_k=top_k,
                                           directions=fold_dirs + boot_dirs)
        covariate_shap = covariate_shap[covariate_shap["feature"].isin(cov_names)]
    reps = np.r_[pre.support_, np.ones(len(cov_names), bool)]
    summary = pd.DataFrame({
        "feature": names_all,
        "kind": ["feature"] * p + ["covariate (unpenalised)"] * len(cov_names),
        "in_model": reps,
        "coef": beta_final,
        "hr": np.exp(beta_final),
        "selected": beta_final != 0,
        "bootstrap_selection_frequency": sel_count / max(n_bootstrap, 1),
        "cluster_members": [";".join(pre.cluster_members_.get(c, [])) for c in names_all],
    })
    summary = summary.reindex(summary["coef"].abs().sort_values(ascending=False).index)
    summary = summary.reset_index(drop=True)
    info = {
        "n_patients": n, "n_events": n_ev, "n_features": p,
        "n_features_after_preprocessing": int(pre.support_.sum()),
        "covariates_unpenalised": cov_names,
        "outer_folds": outer_folds, "inner_folds": inner_folds, "l1_ratio": l1_ratio,
        "penalty_choice": "max cross-validated partial log-likelihood (Verweij & van Houwelingen)",
        "final_lambda": lam, "n_bootstrap": n_bootstrap, "seed": seed, "ties": "breslow",
        "calibration_horizon": t_cal,
    }
    res = SurvivalModelResult(summary, info, metrics, km)
    res.oof = pd.DataFrame({"risk_score": oof_eta, "fold": fold_id, "risk_group": oof_group,
                            "predicted_risk_at_calibration_horizon": oof_cal,
                            **{f"surv_at_{h:.6g}": oof_surv[:, i] for i, h in
                               enumerate(horizons)}})
    res.shap_summary = shap_summary
    res.covariate_shap = covariate_shap
    res.shap_clusters = shap_clusters
    res.shap_oof = shap_oof
    res.x_oof = x_oof
    res.feature_names = names_all
    res.preprocessor = pre
    res.dropped_features = dict(pre.dropped_)
    return res


def compare_c_indices(time, event, risk_a, risk_b, *, n_bootstrap: int = 200,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """Paired difference of Harrell's and Uno's C, ``risk_a`` minus ``risk_b``.

    Both scores belong to the same patients (e.g. the out-of-fold scores of two models).
    The interval is the percentile bootstrap over the resamples of
    :func:`bootstrap_weights` (``seed``), i.e. the very resamples behind the per-model
    intervals of :func:`fit_survival_model` with that seed.

    Parameters
    ----------
    time : (n,) follow-up time; event : (n,) 0/1.
    risk_a, risk_b : (n,) risk scores (higher = shorter survival).
    n_bootstrap : resamples for the interval. seed : seeds the resamples.

    Returns
    -------
    dict
        ``{"harrell_c": {estimate, ci_low, ci_high, n_bootstrap}, "uno_c": {...}}``; the
        estimate is C(risk_a) - C(risk_b) on all patients.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n = time.size
    if np.shape(risk_a) != (n,) or np.shape(risk_b) != (n,):
        raise StatsInputError(
            f"risk scores of shapes {np.shape(risk_a)} and {np.shape(risk_b)} do not match "
            f"the {n} patients; pass one score per patient for both models")
    g_all = censoring_survival(time, event, time, left=True)
    tau = float(time[event > 0].max())
    mats_a, _ = _pair_matrices(time, event, np.asarray(risk_a, float), tau=tau, g=g_all)
    mats_b, _ = _pair_matrices(time, event, np.asarray(risk_b, float), tau=tau, g=g_all)
    Wb = bootstrap_weights(n, n_bootstrap, seed)
    ones = np.ones((1, n))
    out = {}
    for key in mats_a:
        est = _pair_stat(*mats_a[key], ones)[0] - _pair_stat(*mats_b[key], ones)[0]
        boot = (_pair_stat(*mats_a[key], Wb) - _pair_stat(*mats_b[key], Wb)) if len(Wb) else []
        out[f"{key}_c"] = _ci(boot, est)
    return out


def _calibration(time, event, lp, pred_risk, t, n_groups: int = 5) -> dict[str, Any]:
    """Calibration at horizon t: slope of the out-of-fold score and grouped KM comparison."""
    from lifelines import KaplanMeierFitter

    data = CoxData.from_arrays(time, event)
    z = (lp - lp.mean())[data.order]
    fit = fit_cox_newton(z[None, :, None], np.ones((1, len(time))), data)
    slope, se = float(fit["beta"][0, 0]), float(fit["se"][0, 0])
    groups = pd.qcut(pd.Series(pred_risk).rank(method="first"), n_groups, labels=False).to_numpy()
    rows = []
    for g in range(n_groups):
        m = groups == g
        kmf = KaplanMeierFitter().fit(time[m], event[m])
        s = float(kmf.survival_function_at_times(t).iloc[0])
        ci = kmf.confidence_interval_survival_function_
        idx = np.searchsorted(ci.index.values, t, side="right") - 1
        lo, hi = ci.iloc[max(idx, 0)].to_numpy()
        rows.append({"group": g + 1, "n": int(m.sum()), "predicted_risk": float(pred_risk[m].mean()),
                     "observed_risk": 1 - s, "observed_ci_low": float(1 - hi),
                     "observed_ci_high": float(1 - lo)})
    kmf = KaplanMeierFitter().fit(time, event)
    return {
        "horizon": float(t),
        "slope": {"estimate": slope, "ci_low": slope - 1.96 * se, "ci_high": slope + 1.96 * se,
                  "note": "Cox regression of the outcome on the out-of-fold score (ideal 1)"},
        "mean_predicted_risk": float(np.mean(pred_risk)),
        "observed_risk_km": float(1 - kmf.survival_function_at_times(t).iloc[0]),
        "groups": rows,
    }


def _risk_group_km(time, event, group, n_groups, horizons) -> dict[str, Any]:
    """Kaplan--Meier per risk group, at-risk counts at the horizons, log-rank test."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    labels = {0: "low", n_groups - 1: "high"}
    if n_groups == 3:
        labels[1] = "intermediate"
    curves = {}
    for g in range(n_groups):
        m = group == g
        name = labels.get(g, f"group {g + 1}")
        if not m.any():
            continue
        kmf = KaplanMeierFitter(label=f"{name} risk (n={int(m.sum())})").fit(time[m], event[m])
        curves[name] = {
            "n": int(m.sum()), "events": int(event[m].sum()),
            "timeline": kmf.survival_function_.index.tolist(),
            "survival": kmf.survival_function_.iloc[:, 0].tolist(),
            "at_risk": {f"{h:.6g}": int((time[m] >= h).sum()) for h in [0.0, *horizons]},
            "median_survival": float(kmf.median_survival_time_),
            "_fitter": kmf,
        }
    valid = group >= 0
    if np.unique(group[valid]).size < 2:
        return {"curves": curves, "logrank": {
            "chi2": float("nan"), "df": n_groups - 1, "p": float("nan"),
            "groups": "quantiles of the training-fold scores",
            "note": "risk groups collapsed to one group (the penalised model kept no feature "
                    "in the training folds); no log-rank test"}}
    lr = multivariate_logrank_test(time[valid], group[valid], event[valid])
    return {"curves": curves, "logrank": {"chi2": float(lr.test_statistic), "df": n_groups - 1,
                                          "p": float(lr.p_value),
                                          "groups": "quantiles of the training-fold scores"}}
