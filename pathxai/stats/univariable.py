"""Univariable Cox screening: one model per feature, optionally adjusted for covariates.

Descriptive only (all patients); it selects nothing for the multivariable model, whose
preprocessing and selection happen inside cross-validation folds.

Per feature: hazard ratio per SD of the feature (SD with ddof=1 over the patients with a
value) with a Wald 95 % CI and p-value, Benjamini--Hochberg q across every feature that
was tested, Harrell's C of the fitted linear predictor, and the Grambsch--Therneau
proportional-hazards test on scaled Schoenfeld residuals (the approximation used by
``lifelines.statistics.proportional_hazard_test``; time transform 'rank' by default,
'km' as in R's ``cox.zph``). Ties: Breslow. Models that fail to converge are kept in the
table with NaN estimates and the reason in ``message``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm
from statsmodels.stats.multitest import multipletests

from pathxai.exceptions import InsufficientDataError, StatsInputError
from pathxai.stats.coxnet import CoxData, _revcumsum, fit_cox_newton
from pathxai.stats.metrics import harrell_c, km_curve
from pathxai.stats.results import UnivariableCoxResult

__all__ = ["univariable_cox", "bh_qvalues", "MIN_EVENTS_UNIVARIABLE"]

#: Fewest events for which a per-feature Cox model is attempted.
MIN_EVENTS_UNIVARIABLE = 5


def bh_qvalues(p) -> np.ndarray:
    """Benjamini--Hochberg q-values; NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def _ph_test(X, w, data: CoxData, fit, transform: str) -> np.ndarray:
    """Grambsch--Therneau chi-square (1 df) for the first column of each problem."""
    B, n, d = X.shape
    beta = fit["beta"]
    eta = np.einsum("bnd,bd->bn", X, beta)
    m = eta.max(-1, keepdims=True)
    e = w * np.exp(eta - m)
    s0 = np.maximum(_revcumsum(e)[:, data.first], 1e-300)
    s1 = _revcumsum(e[..., None] * X, axis=1)[:, data.first]
    resid = X - s1 / s0[..., None]  # Schoenfeld residuals (rows with an event)
    isev = (w > 0) & (data.event[None, :] > 0)
    stats = np.full(B, np.nan)
    for b in range(B):
        ev = isev[b]
        D = ev.sum()
        if D < 3 or not fit["converged"][b]:
            continue
        r = resid[b, ev]  # (D, d), time order
        scaled = beta[b] + D * r @ fit["cov"][b].T
        if transform == "rank":
            g = np.arange(1, D + 1, dtype=float)
        elif transform == "km":
            keep = w[b] > 0
            kt, ks = km_curve(data.time[keep], data.event[keep])
            idx = np.searchsorted(kt, data.time[ev], side="left") - 1
            g = 1.0 - np.where(idx >= 0, ks[np.clip(idx, 0, None)], 1.0)
        elif transform == "identity":
            g = data.time[ev]
        else:
            raise StatsInputError(f"ph_transform={transform!r}; use 'rank', 'km' or 'identity'")
        gc = g - g.mean()
        num = (gc * scaled[:, 0]).sum() ** 2
        stats[b] = num / (D * fit["cov"][b][0, 0] * (gc**2).sum())
    return stats


def _covariate_matrix(covariates: pd.DataFrame | None, n: int) -> tuple[np.ndarray, list[str]]:
    if covariates is None or covariates.shape[1] == 0:
        return np.zeros((n, 0)), []
    cov = pd.get_dummies(covariates, drop_first=True, dummy_na=False)
    cov = cov.astype(float)
    sd = cov.std(ddof=1).replace(0, np.nan)
    const = list(sd.index[sd.isna()])
    if const:
        raise StatsInputError(f"covariate column(s) {const} are constant; remove them")
    return cov.to_numpy(float), list(cov.columns)


def univariable_cox(
    features: pd.DataFrame,
    time,
    event,
    *,
    covariates: pd.DataFrame | None = None,
    ph_transform: str = "rank",
    ph_alpha: float = 0.05,
    skew_transform: str = "none",
    skew_threshold: float = 1.0,
) -> UnivariableCoxResult:
    """Fit one Cox model per feature column (HR per SD) and collect the screening table.

    Parameters
    ----------
    features : DataFrame (n_patients, p) numeric
        One row per patient; NaN = missing (that patient is left out of that feature's model).
    time : array-like (n,) follow-up time (> 0; unit as in the clinical table)
    event : array-like (n,) 1 = event, 0 = censored
    covariates : DataFrame (n, c), optional
        Adjustment variables (categoricals are dummy-coded). Patients missing a covariate
        are left out of every model (counted in ``n``).
    ph_transform : {'rank', 'km', 'identity'}
        Time transform of the proportional-hazards test.
    ph_alpha : float
        ``ph_ok`` is ``ph_p >= ph_alpha``.
    skew_transform : {'none', 'auto_log'}
        'auto_log' models ``log(x + c)`` for non-negative features with skewness above
        ``skew_threshold``, ``c`` = half the smallest positive value (unit-invariant; column
        ``transform``); the HR is then per SD of ``log(x + c)``.
        Heavy right tails make Wald p-values anti-conservative (on null data, p < 0.001
        about 4x too often for log-normal features), which breaks FDR control.

    Returns
    -------
    UnivariableCoxResult
        ``summary`` columns: feature, n, n_events, sd, coef, se, hr, hr_ci_low, hr_ci_high,
        z, p, q, concordance, ph_chi2, ph_p, ph_ok, converged, message; plus
        ``transform`` ('none' or 'log(x+c)' with c) and ``sd`` (of the modelled values).
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    n = len(time)
    if features.shape[0] != n:
        raise StatsInputError(f"features have {features.shape[0]} rows but time has {n}")
    if event.sum() < MIN_EVENTS_UNIVARIABLE:
        raise InsufficientDataError(
            f"{int(event.sum())} events among {n} patients; univariable Cox needs at least "
            f"{MIN_EVENTS_UNIVARIABLE}"
        )
    nonnum = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if nonnum:
        raise StatsInputError(f"non-numeric feature column(s) {nonnum[:5]}; convert or drop them")
    if skew_transform not in ("none", "auto_log"):
        raise StatsInputError(f"skew_transform={skew_transform!r}; use 'none' or 'auto_log'")
    data = CoxData.from_arrays(time, event)
    F = features.to_numpy(float)[data.order]
    F = np.where(np.isfinite(F), F, np.nan)
    transform = np.array(["none"] * F.shape[1], dtype=object)
    if skew_transform == "auto_log":
        from scipy.stats import skew

        for j in range(F.shape[1]):
            v = F[np.isfinite(F[:, j]), j]
            if v.size > 2 and v.min() >= 0 and v.std() > 0 and skew(v) > skew_threshold:
                c = v[v > 0].min() / 2 if (v > 0).any() else 1.0
                F[:, j] = np.log(F[:, j] + c)
                transform[j] = f"log(x+{c:.4g})"
    C, cov_names = _covariate_matrix(covariates, n)
    C = C[data.order]
    cov_ok = np.all(np.isfinite(C), axis=1)
    p = F.shape[1]
    ok = np.isfinite(F) & cov_ok[:, None]  # (n, p)
    mean = np.array([F[ok[:, j], j].mean() if ok[:, j].any() else 0.0 for j in range(p)])
    sd = np.array([F[ok[:, j], j].std(ddof=1) if ok[:, j].sum() > 1 else 0.0 for j in range(p)])
    Z = np.where(ok, (F - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    Cz = np.where(cov_ok[:, None], C, 0.0)
    if Cz.shape[1]:
        cm = Cz[cov_ok].mean(0)
        Cz = np.where(cov_ok[:, None], Cz - cm, 0.0)
    X = np.concatenate([Z.T[:, :, None], np.broadcast_to(Cz, (p,) + Cz.shape)], axis=2)
    w = ok.T.astype(float)
    n_events = (w * data.event).sum(1)
    fit = fit_cox_newton(X, w, data)
    beta, se = fit["beta"][:, 0], fit["se"][:, 0]
    conv = fit["converged"].copy()
    message = fit["message"].copy()
    few = n_events < MIN_EVENTS_UNIVARIABLE
    const = sd == 0
    conv &= ~few & ~const
    for j in np.flatnonzero(few):
        message[j] = f"only {int(n_events[j])} events among patients with a value"
    for j in np.flatnonzero(const):
        message[j] = "feature is constant among patients with a value"
    # constant / event-poor features can have se == 0; they are masked (NaN) and
    # reported in ``message`` below, so the division warning carries no information
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se
    pval = 2 * norm.sf(np.abs(z))
    ph = _ph_test(X, w, data, fit, ph_transform)
    ph_p = chi2.sf(ph, 1)
    conc = np.full(p, np.nan)
    for j in range(p):
        if conv[j]:
            m = ok[:, j]
            conc[j] = harrell_c(data.time[m], data.event[m], beta[j] * Z[m, j])
    nanif = np.where(conv, 1.0, np.nan)
    summary = pd.DataFrame({
        "feature": list(features.columns),
        "n": ok.sum(0),
        "n_events": n_events.astype(int),
        "transform": transform,
        "sd": sd,
        "coef": beta * nanif,
        "se": se * nanif,
        "hr": np.exp(beta) * nanif,
        "hr_ci_low": np.exp(beta - 1.959963984540054 * se) * nanif,
        "hr_ci_high": np.exp(beta + 1.959963984540054 * se) * nanif,
        "z": z * nanif,
        "p": pval * nanif,
    })
    summary["q"] = bh_qvalues(summary["p"])
    summary["concordance"] = conc
    summary["ph_chi2"] = ph * nanif
    summary["ph_p"] = ph_p * nanif
    summary["ph_ok"] = np.where(np.isfinite(summary["ph_p"]), summary["ph_p"] >= ph_alpha, np.nan)
    summary["converged"] = conv
    summary["message"] = message
    info = {
        "n_patients": n,
        "n_events": int(event.sum()),
        "n_features": p,
        "n_tested": int(conv.sum()),
        "n_failed": int((~conv).sum()),
        "covariates": cov_names,
        "ties": "breslow",
        "skew_transform": skew_transform,
        "ph_test": f"Grambsch-Therneau scaled Schoenfeld, time transform {ph_transform!r}",
        "multiple_testing": "Benjamini-Hochberg over tested features",
    }
    return UnivariableCoxResult(summary, info)
