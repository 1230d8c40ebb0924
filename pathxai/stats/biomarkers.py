"""The candidate-biomarker table: one row per feature, ranked by an evidence tier.

Evidence tiers (per endpoint; a feature's ``tier`` is the better of its survival and,
when a label is given, diagnostic tier):

* **tier 1** -- univariable q < ``q_threshold`` (BH within the feature's family, see
  below) AND the feature is in the held-out SHAP top-k in at least
  ``stability_threshold`` of the refits (outer folds + bootstrap) AND its multivariable
  direction is consistent (>= ``direction_threshold`` of the refits that use it) and
  agrees with the univariable effect AND, for survival, the proportional-hazards test does
  not reject (p >= 0.05).
* **tier 2** -- q < ``q_threshold`` AND stable at feature or correlation-cluster level
  (the cluster's top-k frequency counts, so correlated copies of a marker are not lost),
  but some tier-1 condition fails (reason in ``tier_reason``).
* **tier 3** -- one line of evidence only: q < ``q_threshold`` or SHAP-stable.
* **tier 4** -- neither.

Families (column ``family``): features named in advance (``primary_features`` of
:func:`~pathxai.stats.analyze`) are *primary*, all others *exploratory*; BH is applied
within each family (:mod:`pathxai.stats.families`).

Ranking (:data:`RANKING_RULE`):

1. every row gets the evidence key (tier; primary before exploratory; SHAP top-k
   frequency, max over endpoints, descending; q, min over endpoints; mean |SHAP|
   descending; feature name);
2. the best row of each correlation cluster (|Spearman rho| > threshold, computed
   outcome-blind on the features; a feature without a cluster is its own) is that
   cluster's *lead*;
3. the leads come first, ordered by their key (``cluster_rank`` 1..K: one row per distinct
   marker), then every other member, by the same key, with ``redundant_with`` naming its
   lead. So correlated copies of one marker cannot push distinct markers down, and no row
   is dropped.

Why primary before exploratory *within* a tier: the tier is the strength of evidence and
stays the first key, so a strong exploratory finding is never hidden below a weak
pre-specified one. Between features with the same evidence, the pre-specified one was
chosen from published evidence before the outcomes were seen (higher prior probability
of a true effect) and is tested in a small confirmatory family; REMARK asks that such
analyses be reported first and kept apart from data-driven ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathxai.exceptions import StatsInputError

__all__ = ["build_biomarker_table", "cluster_table", "TIER_RULES", "RANKING_RULE"]

TIER_RULES = (
    "tier 1: q < {q} and SHAP top-{k} frequency >= {s} and direction consistency >= {d} "
    "agreeing with the univariable effect and (survival) PH test p >= 0.05; "
    "tier 2: q < {q} and stable at feature or cluster level, other tier-1 conditions not all met; "
    "tier 3: q < {q} or SHAP-stable (one line of evidence); tier 4: neither; "
    "q = Benjamini-Hochberg within the feature's family (primary / exploratory) and endpoint"
)

RANKING_RULE = (
    "rows ordered by tier, then primary before exploratory, then SHAP top-k frequency "
    "(desc), q (asc), mean |SHAP| (desc); the best row of each correlation cluster "
    "(|Spearman rho| > {c}, outcome-blind) leads it: leads first (cluster_rank 1..K), then the "
    "other members in the same order with redundant_with naming their lead"
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
    families: dict[str, str] | None = None,
    cluster_threshold: float = 0.9,
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
    families : feature -> ``'primary'`` / ``'exploratory'`` (default: all exploratory).
        The q values given must already be computed within these families.
    cluster_threshold : the |Spearman rho| of the clusters (recorded in the rule text).

    Returns
    -------
    DataFrame ranked best first (see module docs); columns include rank, feature, family,
    cluster, cluster_rank, redundant_with, n_cluster_members, hr, hr_ci_low, hr_ci_high, p,
    q, shap_mean_abs, shap_top_k_frequency, tier. ``attrs``: ``tier_rules``,
    ``ranking_rule``.
    """
    u = univariable.rename(columns={"n": "n_patients"}).copy()
    t = u[["feature", "n_patients", "n_events", "hr", "hr_ci_low", "hr_ci_high", "p", "q",
           "concordance", "ph_p", "ph_ok", "message"]].copy()
    t["cluster"] = t["feature"].map(clusters).fillna("-")
    t["cluster_representative"] = t["cluster"].map(representatives).fillna("")
    fam = families or {}
    bad = sorted({v for v in fam.values() if v not in ("primary", "exploratory")})
    if bad:
        raise StatsInputError(f"families values must be 'primary' or 'exploratory'; got {bad}")
    t.insert(1, "family", t["feature"].map(fam).fillna("exploratory"))
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
    t = _rank(t, stab, qbest)
    t.attrs["tier_rules"] = TIER_RULES.format(q=q_threshold, k=top_k, s=stability_threshold,
                                              d=direction_threshold)
    t.attrs["ranking_rule"] = RANKING_RULE.format(c=cluster_threshold)
    return t


def _rank(t: pd.DataFrame, stab, qbest) -> pd.DataFrame:
    """Order rows by the evidence key with cluster leads first (see module docs)."""
    t = t.copy()
    t["_stab"] = np.asarray(stab, float)
    t["_q"] = np.nan_to_num(np.asarray(qbest, float), nan=2.0)
    t["_shap"] = t["shap_mean_abs"].fillna(0).to_numpy(float)
    t["_fam"] = (t["family"] != "primary").astype(int)
    t = t.sort_values(["tier", "_fam", "_stab", "_q", "_shap", "feature"],
                      ascending=[True, True, False, True, False, True], kind="mergesort")
    # a feature without a correlation cluster ('-': dropped before clustering) is its own
    ckey = np.where(t["cluster"].astype(str) == "-", "-:" + t["feature"].astype(str),
                    t["cluster"].astype(str))
    t["_ckey"] = ckey
    lead_of = t.drop_duplicates("_ckey").set_index("_ckey")["feature"]
    is_lead = ~t.duplicated("_ckey")
    t["redundant_with"] = np.where(is_lead, "", t["_ckey"].map(lead_of))
    order = {k: i + 1 for i, k in enumerate(lead_of.index)}
    t["cluster_rank"] = t["_ckey"].map(order).astype(int)
    t["n_cluster_members"] = t["_ckey"].map(t["_ckey"].value_counts()).astype(int)
    t = pd.concat([t[is_lead], t[~is_lead]])
    t = t.drop(columns=["_stab", "_q", "_shap", "_fam", "_ckey"]).reset_index(drop=True)
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    front = ["rank", "feature", "family", "cluster", "cluster_rank", "redundant_with",
             "n_cluster_members"]
    return t[front + [c for c in t.columns if c not in front]]


def cluster_table(biomarkers: pd.DataFrame, shap_clusters: pd.DataFrame | None = None,
                  representatives: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per correlation cluster of a ranked biomarker table, best cluster first.

    Parameters
    ----------
    biomarkers : the output of :func:`build_biomarker_table`.
    shap_clusters : per-cluster SHAP summary of the survival model (columns ``cluster``,
        ``shap_mean_abs``, ``shap_ci_low``, ``shap_ci_high``, ``shap_top_k_frequency``),
        merged in when given.
    representatives : cluster -> feature the multivariable model used for it.

    Returns
    -------
    DataFrame with cluster_rank, cluster, lead_feature, family (of the lead), tier (of the
    lead), n_members, n_primary, members (';'-joined, in rank order), representative and
    the cluster SHAP columns.
    """
    b = biomarkers.sort_values("rank")
    key = np.where(b["cluster"].astype(str) == "-", "-:" + b["feature"].astype(str),
                   b["cluster"].astype(str))
    rows = []
    for _, g in b.groupby(key, sort=False):
        lead = g.iloc[0]
        rows.append({"cluster_rank": int(lead["cluster_rank"]), "cluster": lead["cluster"],
                     "lead_feature": lead["feature"], "family": lead["family"],
                     "tier": int(lead["tier"]), "n_members": len(g),
                     "n_primary": int((g["family"] == "primary").sum()),
                     "members": ";".join(g["feature"].astype(str))})
    out = pd.DataFrame(rows).sort_values("cluster_rank").reset_index(drop=True)
    out["representative"] = out["cluster"].map(representatives or {}).fillna("")
    if shap_clusters is not None and len(shap_clusters):
        cols = [c for c in ("cluster", "shap_mean_abs", "shap_ci_low", "shap_ci_high",
                            "shap_top_k_frequency") if c in shap_clusters.columns]
        out = out.merge(shap_clusters[cols], on="cluster", how="left")
    return out
