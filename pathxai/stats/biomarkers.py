"""The candidate-biomarker table: one row per feature, ranked by an evidence tier.

Evidence tiers (per endpoint; a feature's ``tier`` is the better of its survival and,
when a label is given, diagnostic tier):

* **tier 1** -- univariable q < ``q_threshold`` (BH across features) AND the feature is in
  the held-out SHAP top-k in at least ``stability_threshold`` of the refits (outer folds +
  bootstrap) AND its multivariable direction is consistent (>= ``direction_threshold`` of
  the refits that use it) and agrees with the univariable effect AND, for survival, the
  proportional-hazards test does not reject (p >= 0.05).
* **tier 2** -- q < ``q_threshold`` AND stable at feature or correlation-cluster level
  (the cluster's top-k frequency counts, so correlated copies of a marker are not lost),
  but some tier-1 condition fails (reason in ``tier_reason``).
* **tier 3** -- one line of evidence only: q < ``q_threshold`` or SHAP-stable.
* **tier 4** -- neither.

Rows are ranked by tier, then by SHAP top-k frequency (max over endpoints), then by q,
then by mean |SHAP|.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["build_biomarker_table", "TIER_RULES"]

TIER_RULES = (
    "tier 1: q < {q} and SHAP top-{k} frequency >= {s} and direction consistency >= {d} "
    "agreeing with the univariable effect and (survival) PH test p >= 0.05; "
    "tier 2: q < {q} and stable at feature or cluster level, other tier-1 conditions not all met; "
    "tier 3: q < {q} or SHAP-stable (one line of evidence); tier 4: neither"
)


def _tier(q, stab, cl_stab, consistency, agrees, ph_ok, q_thr, s_thr, d_thr):
    sig = np.isfinite(q) & (q < q_thr)
    stable = stab >= s_thr
    stable_any = stable | (cl_stab >= s_thr)
    cons = np.nan_to_num(consistency, nan=0.0) >= d_thr
    t1 = sig & stable & cons & agrees & ph_ok
    t2 = sig & stable_any & ~t1
    t3 = (sig | stable_any) & ~t1 & ~t2
    tier = np.where(t1, 1, np.where(t2, 2, np.where(t3, 3, 4)))
    reasons = []
    for i in range(len(tier)):
        r = []
        if not sig[i]:
            r.append("q >= threshold")
        if not stable[i]:
            r.append("not SHAP-stable" + (" (cluster is)" if stable_any[i] else ""))
        if stable[i] and not cons[i]:
            r.append("direction inconsistent")
        if stable[i] and not agrees[i]:
            r.append("multivariable direction differs from univariable")
        if not ph_ok[i]:
            r.append("PH assumption questionable")
        reasons.append("; ".join(r) if r else "all criteria met")
    return tier, reasons


def build_biomarker_table(
    univariable: pd.DataFrame,
    shap_survival: pd.DataFrame,
    *,
    clusters: dict[str, str],
    representatives: dict[str, str],
    shap_clusters: pd.DataFrame | None = None,
    univariable_label: pd.DataFrame | None = None,
    shap_label: pd.DataFrame | None = None,
    shap_label_clusters: pd.DataFrame | None = None,
    q_threshold: float = 0.05,
    stability_threshold: float = 0.5,
    direction_threshold: float = 0.9,
    top_k: int = 10,
) -> pd.DataFrame:
    """Merge screening, SHAP stability and diagnostics into the ranked biomarker table.

    Parameters
    ----------
    univariable : summary of :func:`~pathxai.stats.univariable.univariable_cox`.
    shap_survival : per-feature summary of :func:`~pathxai.stats.explain.summarize_shap`
        for the multivariable Cox model.
    clusters : feature -> cluster label; representatives : cluster label -> feature.
    shap_clusters : per-cluster SHAP summary (survival).
    univariable_label, shap_label, shap_label_clusters : the diagnostic counterparts
        (:func:`~pathxai.stats.diagnostic.univariable_logistic` and the logistic model's
        SHAP summary), or None without a label.
    q_threshold, stability_threshold, direction_threshold, top_k : tier rule settings.

    Returns
    -------
    DataFrame ranked best first; columns include rank, feature, cluster, hr, hr_ci_low,
    hr_ci_high, p, q, shap_mean_abs, shap_top_k_frequency, tier (see module docs).
    """
    u = univariable.rename(columns={"n": "n_patients"}).copy()
    t = u[["feature", "n_patients", "n_events", "hr", "hr_ci_low", "hr_ci_high", "p", "q",
           "concordance", "ph_p", "ph_ok", "message"]].copy()
    t["cluster"] = t["feature"].map(clusters).fillna("-")
    t["cluster_representative"] = t["cluster"].map(representatives).fillna("")
    s = shap_survival.set_index("feature")
    for col in ("shap_mean_abs", "shap_ci_low", "shap_ci_high", "shap_rank",
                "shap_top_k_frequency", "selection_frequency", "direction",
                "direction_consistency"):
        t[col] = t["feature"].map(s[col])
    if shap_clusters is not None:
        cs = shap_clusters.set_index("cluster")["shap_top_k_frequency"]
        t["cluster_shap_top_k_frequency"] = t["cluster"].map(cs).fillna(0.0)
    else:
        t["cluster_shap_top_k_frequency"] = t["shap_top_k_frequency"]
    uni_dir = np.sign(np.log(t["hr"].to_numpy(float)))
    agrees = np.nan_to_num(uni_dir) == t["direction"].fillna(0).to_numpy()
    ph_ok = t["ph_ok"].fillna(1.0).astype(bool).to_numpy()
    tier_s, reason_s = _tier(t["q"].to_numpy(float), t["shap_top_k_frequency"].fillna(0).to_numpy(),
                             t["cluster_shap_top_k_frequency"].to_numpy(float),
                             t["direction_consistency"].to_numpy(float), agrees, ph_ok,
                             q_threshold, stability_threshold, direction_threshold)
    t["effect_direction"] = np.where(t["hr"] > 1, "harmful (HR>1)",
                                     np.where(t["hr"] < 1, "protective (HR<1)", "none"))
    t["tier_survival"] = tier_s
    t["tier_survival_reason"] = reason_s
    tier = tier_s.copy()
    evidence = np.where(tier_s < 4, "survival", "")
    if univariable_label is not None and shap_label is not None:
        ul = univariable_label.set_index("feature")
        for col in ("or", "or_ci_low", "or_ci_high", "p_label", "q_label"):
            t[col] = t["feature"].map(ul[col])
        sl = shap_label.set_index("feature")
        t["shap_mean_abs_label"] = t["feature"].map(sl["shap_mean_abs"])
        t["shap_top_k_frequency_label"] = t["feature"].map(sl["shap_top_k_frequency"]).fillna(0)
        t["direction_label"] = t["feature"].map(sl["direction"])
        cons_l = t["feature"].map(sl["direction_consistency"]).to_numpy(float)
        if shap_label_clusters is not None:
            cl = shap_label_clusters.set_index("cluster")["shap_top_k_frequency"]
            cl_stab = t["cluster"].map(cl).fillna(0.0).to_numpy(float)
        else:
            cl_stab = t["shap_top_k_frequency_label"].to_numpy(float)
        agrees_l = np.nan_to_num(np.sign(np.log(t["or"].to_numpy(float)))) == \
            t["direction_label"].fillna(0).to_numpy()
        tier_l, reason_l = _tier(t["q_label"].to_numpy(float),
                                 t["shap_top_k_frequency_label"].to_numpy(float), cl_stab, cons_l,
                                 agrees_l, np.ones(len(t), bool), q_threshold,
                                 stability_threshold, direction_threshold)
        t["tier_label"] = tier_l
        t["tier_label_reason"] = reason_l
        tier = np.minimum(tier_s, tier_l)
        evidence = np.where((tier_s == tier) & (tier_l == tier) & (tier < 4), "both",
                            np.where((tier_l == tier) & (tier < 4) & (tier_s > tier), "diagnostic",
                                     np.where(tier < 4, "survival", "")))
        stab = np.maximum(t["shap_top_k_frequency"].fillna(0), t["shap_top_k_frequency_label"])
        qbest = np.fmin(t["q"].to_numpy(float), t["q_label"].to_numpy(float))
    else:
        stab = t["shap_top_k_frequency"].fillna(0)
        qbest = t["q"].to_numpy(float)
    t["tier"] = tier
    t["evidence"] = evidence
    t["_stab"] = stab
    t["_q"] = np.nan_to_num(qbest, nan=2.0)
    t["_shap"] = t["shap_mean_abs"].fillna(0)
    t = t.sort_values(["tier", "_stab", "_q", "_shap"], ascending=[True, False, True, False])
    t = t.drop(columns=["_stab", "_q", "_shap"]).reset_index(drop=True)
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t.attrs["tier_rules"] = TIER_RULES.format(q=q_threshold, k=top_k, s=stability_threshold,
                                              d=direction_threshold)
    return t
