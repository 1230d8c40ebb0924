"""SHAP closed form vs the shap package, stability summary, tiers, batched Cox fits,
and the survival model's metrics vs the standalone metric functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.linear_model import LogisticRegression
from stats_testdata import simulate_cohort

from pathxai.stats import (
    CoxNet,
    build_biomarker_table,
    cumulative_dynamic_auc,
    fit_survival_model,
    harrell_c,
    linear_shap,
    summarize_shap,
    uno_c,
)


def test_linear_shap_matches_shap_linear_explainer():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] - X[:, 2] + rng.normal(size=200) > 0).astype(int)
    clf = LogisticRegression().fit(X[:150], y[:150])
    ref = shap.LinearExplainer(clf, shap.maskers.Independent(X[:150], max_samples=150))
    expected = ref.shap_values(X[150:])
    got = linear_shap(clf.coef_[0], X[150:], X[:150].mean(0))
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_summarize_shap_hand_example():
    # two fits, 3 features; fit 1 uses a (+) and b (-); fit 2 uses a (+) and c (+)
    s1 = np.array([[2.0, -1.0, 0.0], [-2.0, 1.0, 0.0]])
    s2 = np.array([[1.0, 0.0, 0.5], [-3.0, 0.0, -0.5]])
    dirs = [np.array([1, -1, 0]), np.array([1, 0, 1])]
    per, per_cl = summarize_shap([s1, s2], ["a", "b", "c"], top_k=1, directions=dirs,
                                 clusters={"a": "A", "b": "BC", "c": "BC"})
    per = per.set_index("feature")
    assert per.loc["a", "shap_mean_abs"] == pytest.approx((2.0 + 2.0) / 2)
    assert per.loc["b", "shap_mean_abs"] == pytest.approx(0.5)
    assert per.loc["a", "shap_top_k_frequency"] == 1.0
    assert per.loc["b", "shap_top_k_frequency"] == 0.0
    assert per.loc["b", "selection_frequency"] == 0.5
    assert per.loc["a", "direction"] == 1 and per.loc["b", "direction"] == -1
    assert per.loc["a", "direction_consistency"] == 1.0
    cl = per_cl.set_index("cluster")
    assert cl.loc["BC", "shap_mean_abs"] == pytest.approx((1.0 + 0.5) / 2)


def test_tiers_follow_documented_rule():
    uni = pd.DataFrame({
        "feature": ["strong", "ph_bad", "only_q", "only_shap", "none"],
        "n": 100, "n_events": 60,
        "hr": [2.0, 2.0, 1.5, 1.1, 1.0], "hr_ci_low": 1.0, "hr_ci_high": 3.0,
        "p": [1e-6, 1e-6, 1e-3, 0.5, 0.9], "q": [1e-5, 1e-5, 0.01, 0.6, 0.9],
        "concordance": 0.6, "ph_p": [0.5, 0.001, 0.5, 0.5, 0.5],
        "ph_ok": [1.0, 0.0, 1.0, 1.0, 1.0], "message": "",
    })
    shap_s = pd.DataFrame({
        "feature": uni["feature"], "shap_mean_abs": [0.5, 0.4, 0.01, 0.3, 0.0],
        "shap_ci_low": 0.0, "shap_ci_high": 1.0, "shap_rank": [1, 2, 4, 3, 5],
        "shap_top_k_frequency": [1.0, 0.9, 0.1, 0.8, 0.0],
        "selection_frequency": [1.0, 1.0, 0.2, 0.9, 0.0], "direction": [1, 1, 1, 1, 0],
        "direction_consistency": [1.0, 1.0, 1.0, 1.0, np.nan],
    })
    t = build_biomarker_table(uni, shap_s, clusters={f: f for f in uni["feature"]},
                              representatives={f: f for f in uni["feature"]})
    tier = t.set_index("feature")["tier"]
    assert tier.to_dict() == {"strong": 1, "ph_bad": 2, "only_q": 3, "only_shap": 3, "none": 4}
    assert list(t["feature"][:2]) == ["strong", "ph_bad"]
    assert "PH" in t.set_index("feature").loc["ph_bad", "tier_survival_reason"]
    assert "tier 1" in t.attrs["tier_rules"]


def test_integer_weights_equal_duplicated_rows():
    X, t, e, _, _ = simulate_cohort(n=80, p_noise=3, seed=1)
    Z = (X - X.mean()) / X.std()
    w = np.random.default_rng(0).integers(0, 3, 80)
    a = CoxNet(alpha=0.05, tol=1e-9).fit(Z.to_numpy(), np.c_[t, e], sample_weight=w)
    idx = np.repeat(np.arange(80), w)
    b = CoxNet(alpha=0.05, tol=1e-9).fit(Z.to_numpy()[idx], np.c_[t[idx], e[idx]])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)


def test_survival_model_metrics_agree_with_metric_functions():
    X, t, e, lp, _ = simulate_cohort(n=150, p_noise=5, seed=2)
    res = fit_survival_model(X, t, e, n_bootstrap=20, inner_folds=3, seed=0)
    risk = res.oof["risk_score"].to_numpy()
    m = res.metrics
    assert m["harrell_c"]["estimate"] == pytest.approx(harrell_c(t, e, risk), abs=1e-12)
    tau = t[e == 1].max()
    assert m["uno_c"]["estimate"] == pytest.approx(uno_c(t, e, risk, tau=tau), abs=1e-12)
    h = m["horizons"]
    auc = cumulative_dynamic_auc(t, e, risk, h)
    got = [m["time_dependent_auc"][f"{x:.6g}"]["estimate"] for x in h]
    np.testing.assert_allclose(got, auc, atol=1e-12)
    # no patient is scored by a model that saw it
    assert (res.oof["fold"] >= 0).all() and res.oof["risk_score"].notna().all()
    assert set(res.oof["risk_group"]) <= {0, 1, 2}
    assert res.metrics["exploratory_cutpoint"]["label"] == "exploratory"
