"""Planted clinical outcomes of the synthetic cohort (survival and a diagnostic label).

Generative model (documented in ``ground_truth.json`` of every cohort):

* Covariates: ``age`` ~ Normal(62, 10) years, clipped to [30, 90], rounded to whole
  years; ``stage`` ∈ {1, 2, 3, 4} with probabilities (0.25, 0.35, 0.25, 0.15);
  independent of the slides.
* Survival: Weibull proportional hazards, ``h(t) = h0(t) · exp(lp)`` with
  ``S0(t) = exp(-(t / scale)^k)``, ``scale = median0 / ln(2)^(1/k)`` and the linear
  predictor ``lp = Σ β_j (x_j − mean_j) + β_age (age − 60) + β_stage (stage − 1)``,
  where ``x`` are the realised patient features (``composition.PLANTED_FEATURES``)
  and ``β_j = ln(HR per SD) / SD_j`` with the cohort's realised mean and sample
  SD (ddof 1). Event time ``T = scale · (E · exp(−lp))^(1/k)``, ``E ~ Exp(1)``.
* Censoring: ``C = min(Exp(rate), admin)``; ``rate`` is solved (Monte Carlo on
  the same ``lp``, bisection) so the expected censored share equals the target.
  Observed ``time = min(T, C)``, ``event = T <= C``.
* Label: ``label ~ Bernoulli(sigmoid(γ · (ln ratio − mean) / SD))`` on the
  log tumor-to-stroma ratio, ``γ = ln(OR per SD)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["OutcomeModel", "simulate_outcomes"]


@dataclass(frozen=True)
class OutcomeModel:
    """Parameters of the planted effects.

    Attributes
    ----------
    hr_per_sd_lymphocyte_density_in_tumor : float
        Hazard ratio per SD of ``density_per_mm2__lymphocyte__in__tumor`` (< 1: protective).
    hr_per_sd_necrosis_fraction : float
        Hazard ratio per SD of ``area_fraction__necrosis`` (> 1: harmful).
    hr_per_year_age : float
        Hazard ratio per year of age.
    hr_per_stage : float
        Hazard ratio per stage step.
    or_per_sd_log_tumor_stroma_ratio : float
        Odds ratio of ``label = 1`` per SD of ``ln(ratio__tumor__to__stroma)``.
    weibull_shape : float
        Weibull shape ``k`` (> 1: hazard rising with time).
    baseline_median_months : float
        Median survival at ``lp = 0``, months.
    censoring_fraction : float
        Target expected share of censored patients.
    admin_censoring_months : float
        End of follow-up, months.
    """

    hr_per_sd_lymphocyte_density_in_tumor: float = 0.5
    hr_per_sd_necrosis_fraction: float = 2.0
    hr_per_year_age: float = 1.03
    hr_per_stage: float = 1.6
    or_per_sd_log_tumor_stroma_ratio: float = 4.0
    weibull_shape: float = 1.3
    baseline_median_months: float = 40.0
    censoring_fraction: float = 0.30
    admin_censoring_months: float = 120.0


def _sd(x: np.ndarray) -> float:
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    return sd if sd > 0 else 1.0


def _weibull_times(lp: np.ndarray, e: np.ndarray, m: OutcomeModel) -> np.ndarray:
    scale = m.baseline_median_months / np.log(2.0) ** (1.0 / m.weibull_shape)
    return scale * (e * np.exp(-lp)) ** (1.0 / m.weibull_shape)


def _censoring_rate(lp: np.ndarray, m: OutcomeModel, rng: np.random.Generator) -> float:
    """Exponential censoring rate (1/months) giving the target censored share."""
    reps = 400
    t = _weibull_times(np.tile(lp, reps), rng.exponential(1.0, lp.size * reps), m)
    u = rng.exponential(1.0, t.size)

    def censored(rate: float) -> float:
        c = np.minimum(u / rate, m.admin_censoring_months) if rate > 0 else \
            np.full(t.size, m.admin_censoring_months)
        return float(np.mean(c < t))

    lo, hi = 0.0, 1.0
    if censored(lo) >= m.censoring_fraction:
        return 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if censored(mid) < m.censoring_fraction else (lo, mid)
    return 0.5 * (lo + hi)


def simulate_outcomes(
    features: pd.DataFrame,
    rng: np.random.Generator,
    model: OutcomeModel | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Draw covariates, censored survival and a binary label from realised features.

    Parameters
    ----------
    features : DataFrame
        One row per patient, index = patient id, columns include the three
        ``composition.PLANTED_FEATURES``.
    rng : numpy.random.Generator
    model : OutcomeModel, optional

    Returns
    -------
    clinical : DataFrame
        Columns ``patient_id, age, stage, time_months, event, label`` (one row per
        patient, in the order of ``features``).
    truth : dict
        JSON-ready: the generative model, planted effects by feature name
        (coefficient per unit, effect per SD, SD, mean, direction), the censoring
        rate, the realised censored share and the per-patient linear predictors.
    """
    from lifelines.utils import concordance_index
    from sklearn.metrics import roc_auc_score

    m = model or OutcomeModel()
    n = len(features)
    cols = ["density_per_mm2__lymphocyte__in__tumor", "area_fraction__necrosis",
            "ratio__tumor__to__stroma"]
    bad = features.index[~np.isfinite(features[cols].to_numpy(float)).all(axis=1)
                         | (features["ratio__tumor__to__stroma"].to_numpy(float) <= 0)]
    if len(bad):
        raise ValueError(
            f"patients {', '.join(map(str, bad[:10]))} have no tumor or no stroma in their "
            "slides, so the planted features are undefined; use larger slides")
    dens = features["density_per_mm2__lymphocyte__in__tumor"].to_numpy(float)
    necr = features["area_fraction__necrosis"].to_numpy(float)
    log_tsr = np.log(features["ratio__tumor__to__stroma"].to_numpy(float))

    age = np.clip(np.rint(rng.normal(62, 10, n)), 30, 90)
    stage = rng.choice([1, 2, 3, 4], size=n, p=[0.25, 0.35, 0.25, 0.15])

    b_dens = np.log(m.hr_per_sd_lymphocyte_density_in_tumor) / _sd(dens)
    b_necr = np.log(m.hr_per_sd_necrosis_fraction) / _sd(necr)
    b_age = np.log(m.hr_per_year_age)
    b_stage = np.log(m.hr_per_stage)
    lp = (b_dens * (dens - dens.mean()) + b_necr * (necr - necr.mean())
          + b_age * (age - 60.0) + b_stage * (stage - 1.0))

    rate = _censoring_rate(lp, m, np.random.default_rng(rng.integers(2**63)))
    t_event = _weibull_times(lp, rng.exponential(1.0, n), m)
    c = rng.exponential(1.0, n) / rate if rate > 0 else np.full(n, np.inf)
    c = np.minimum(c, m.admin_censoring_months)
    time = np.maximum(np.round(np.minimum(t_event, c), 2), 0.01)
    event = (t_event <= c).astype(int)

    gamma = np.log(m.or_per_sd_log_tumor_stroma_ratio)
    z_tsr = (log_tsr - log_tsr.mean()) / _sd(log_tsr)
    logit = gamma * z_tsr
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    clinical = pd.DataFrame({
        "patient_id": list(features.index),
        "age": age.astype(int),
        "stage": stage.astype(int),
        "time_months": time,
        "event": event,
        "label": label,
    })
    c_index = float(concordance_index(time, -lp, event))
    auc = float(roc_auc_score(label, logit)) if 0 < label.sum() < n else float("nan")

    def effect(name, coef, per_sd, sd, mean, kind, transform="identity"):
        return {
            "feature": name, "transform": transform, "coefficient_per_unit": float(coef),
            f"{kind}_per_sd": float(per_sd), "sd": float(sd), "mean": float(mean),
            "direction": "protective" if per_sd < 1 else "harmful" if kind == "hr" else
            ("positive" if per_sd > 1 else "negative"),
        }

    truth = {
        "model": asdict(m),
        "survival": {
            "time_column": "time_months", "event_column": "event", "time_unit": "months",
            "effects": [
                effect("density_per_mm2__lymphocyte__in__tumor", b_dens,
                       m.hr_per_sd_lymphocyte_density_in_tumor, _sd(dens), dens.mean(), "hr"),
                effect("area_fraction__necrosis", b_necr, m.hr_per_sd_necrosis_fraction,
                       _sd(necr), necr.mean(), "hr"),
            ],
            "covariates": [
                {"covariate": "age", "coefficient_per_unit": float(b_age),
                 "hr_per_unit": m.hr_per_year_age, "unit": "year", "centre": 60.0},
                {"covariate": "stage", "coefficient_per_unit": float(b_stage),
                 "hr_per_unit": m.hr_per_stage, "unit": "stage step", "centre": 1.0},
            ],
            "censoring_rate_per_month": float(rate),
            "censored_fraction": float(1.0 - event.mean()),
            "n_events": int(event.sum()),
            "c_index_true_lp": c_index,
        },
        "diagnostic": {
            "label_column": "label",
            "effects": [
                effect("ratio__tumor__to__stroma", gamma / _sd(log_tsr),
                       m.or_per_sd_log_tumor_stroma_ratio, _sd(log_tsr), log_tsr.mean(),
                       "or", transform="log"),
            ],
            "prevalence": float(label.mean()),
            "auc_true_logit": auc,
        },
        "linear_predictor": {str(p): float(v) for p, v in zip(features.index, lp)},
    }
    return clinical, truth
