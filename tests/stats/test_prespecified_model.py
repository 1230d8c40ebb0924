"""The pre-specified multivariable model (primary family only) next to the all-feature
model: which features it uses, the headline rule, both C-indices in ``multivariable.json``,
the paired comparison, the pre-specified logistic model, and unchanged output without a
primary family."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pathxai.stats import analyze, fit_survival_model, harrell_c, uno_c
from pathxai.stats.analyze import HEADLINE_RULE, _model_block
from pathxai.stats.survival import bootstrap_weights, compare_c_indices

FAST = {"n_bootstrap": 20, "outer_folds": 3, "inner_folds": 3, "figures": False, "seed": 0}
PRIMARY = ["prot", "harm", "noise0"]
#: the keys the top level of multivariable.json had before the pre-specified model
LEGACY_KEYS = ("harrell_c", "uno_c", "harrell_c_optimism_corrected", "uno_c_optimism_corrected",
               "time_dependent_auc", "horizons", "per_fold_harrell_c", "chosen_lambda_per_fold",
               "calibration", "logrank_risk_groups", "exploratory_cutpoint", "final_lambda",
               "l1_ratio", "info", "coefficients", "km", "shap", "shap_clusters",
               "covariate_shap", "dropped_features_all_patients")


def _data(n: int = 120, p_noise: int = 14, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2 + p_noise)),
                     columns=["prot", "harm", *[f"noise{j}" for j in range(p_noise)]])
    t_ev = rng.exponential(np.exp(0.7 * X["prot"] - 0.8 * X["harm"]))
    t_c = rng.uniform(0, 3, n)
    ids = [f"P{i:03d}" for i in range(n)]
    clin = pd.DataFrame({"pid": ids, "t": np.minimum(t_ev, t_c), "e": (t_ev <= t_c).astype(int),
                         "y": (rng.random(n) < 1 / (1 + np.exp(-1.5 * X["prot"]))).astype(int),
                         "age": rng.normal(60, 8, n).round()})
    return X.assign(pid=ids), clin


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def with_primary(data, tmp_path_factory):
    feats, clin = data
    out = tmp_path_factory.mktemp("prim")
    res = analyze(feats, clin, id_col="pid", time_col="t", event_col="e", label_col="y",
                  covariates=["age"], primary_features=PRIMARY, out_dir=out, **FAST)
    return res, out


@pytest.fixture(scope="module")
def without_primary(data):
    feats, clin = data
    return analyze(feats, clin, id_col="pid", time_col="t", event_col="e", label_col="y",
                   covariates=["age"], **FAST)


def test_prespecified_model_uses_only_primary_features(with_primary):
    res, _ = with_primary
    mv = res.multivariable
    assert mv["headline"] == "primary" and mv["headline_rule"] == HEADLINE_RULE
    coef = pd.DataFrame(mv["primary"]["coefficients"])
    assert set(coef.loc[coef["kind"] == "feature", "feature"]) == set(PRIMARY)
    assert set(coef.loc[coef["kind"] != "feature", "feature"]) == {"age"}  # unpenalised covariate
    assert mv["primary"]["features"] == PRIMARY and mv["primary"]["n_features"] == 3
    assert set(mv["primary"]["shap"]["feature"]) == set(PRIMARY)
    # the all-feature model sees every candidate
    all_coef = pd.DataFrame(mv["all_features"]["coefficients"])
    assert {"noise5", "noise13"} <= set(all_coef["feature"])
    assert mv["all_features"]["n_features"] == 16
    assert res.survival_primary is not None
    assert list(res.survival_primary.feature_names) == [*PRIMARY, "age"]


def test_prespecified_model_is_the_nested_cv_model_on_the_primary_columns(data, with_primary):
    """Same folds, seeds, preprocessing and covariates as fitting the model directly."""
    feats, clin = data
    res, _ = with_primary
    direct = fit_survival_model(feats[PRIMARY], clin["t"], clin["e"], groups=clin["pid"].to_numpy(),
                                covariates=clin[["age"]], n_bootstrap=20, outer_folds=3,
                                inner_folds=3, top_k=3,
                                preprocess_params={"cluster_threshold": 0.9,
                                                   "skew_transform": "auto_log"}, seed=0)
    assert res.multivariable["primary"]["harrell_c"] == pytest.approx(direct.metrics["harrell_c"])
    np.testing.assert_allclose(res.survival_primary.oof["risk_score"], direct.oof["risk_score"])


def test_headline_is_the_prespecified_model_and_both_c_indices_are_saved(with_primary):
    res, out = with_primary
    mv = json.loads((out / "multivariable.json").read_text())
    for key in ("primary", "all_features"):
        for metric in ("harrell_c", "uno_c", "harrell_c_optimism_corrected"):
            m = mv[key][metric]
            assert m["ci_low"] <= m["estimate"] <= m["ci_high"] or metric.endswith("corrected")
            assert 0.0 <= m["ci_low"] < m["ci_high"] <= 1.0
        assert set(mv[key]["time_dependent_auc"]) == set(mv["time_dependent_auc"])
    # top level = the headline (pre-specified) model; SHAP stays on the all-feature model
    for key in ("harrell_c", "uno_c", "calibration", "logrank_risk_groups", "coefficients", "info"):
        assert mv[key] == mv["primary"][key]
    assert mv["harrell_c"] != mv["all_features"]["harrell_c"]
    assert mv["shap_model"] == "all_features" and len(mv["shap"]) == 16
    # paired difference of the two out-of-fold scores
    d = mv["comparison"]["primary_minus_all_features"]["harrell_c"]
    assert d["estimate"] == pytest.approx(mv["primary"]["harrell_c"]["estimate"]
                                          - mv["all_features"]["harrell_c"]["estimate"])
    assert d["ci_low"] <= d["estimate"] <= d["ci_high"] and d["n_bootstrap"] == 20
    params = json.loads((out / "analysis.json").read_text())
    assert params["multivariable_headline"] == "primary"
    assert "survival_primary_s" in params["timings"]
    assert "pre-specified" in repr(res) and "all features" in repr(res)


def test_prespecified_logistic_model(with_primary):
    res, out = with_primary
    dg = json.loads((out / "diagnostic.json").read_text())
    assert dg["headline"] == "primary"
    p = dg["primary"]
    assert p["model"] == "logistic" and p["features"] == PRIMARY
    assert 0.0 <= p["auroc_ci_low"] <= p["auroc"] <= p["auroc_ci_high"] <= 1.0
    assert p["auroc"] > 0.7  # the label depends on 'prot', a primary feature
    assert {r["feature"] for r in p["shap"]} == set(PRIMARY)
    assert [m["model"] for m in dg["models"]] == ["logistic", "gradient_boosting"]  # unchanged


def test_without_primary_family_the_output_is_as_before(without_primary, with_primary):
    mv = without_primary.multivariable
    assert mv["headline"] == "all_features"
    assert mv["primary"] is None and mv["comparison"] is None and "primary_note" not in mv
    assert without_primary.survival_primary is None
    # the legacy top level is the all-feature model, as it always was
    legacy = {**_model_block(without_primary.survival), "shap": without_primary.survival.shap_summary}
    for key in LEGACY_KEYS:
        assert key in mv
        if key in legacy:
            a, b = mv[key], legacy[key]
            if isinstance(a, pd.DataFrame):
                pd.testing.assert_frame_equal(a, b)
            else:
                assert a == b, key
    # and it does not depend on whether a pre-specified model was fitted too
    assert mv["harrell_c"] == with_primary[0].multivariable["all_features"]["harrell_c"]
    assert without_primary.diagnostic["primary"] is None
    assert without_primary.diagnostic["headline"] == "all_features"
    assert "survival_primary_s" not in without_primary.params["timings"]


def test_panel_without_matching_features_keeps_the_all_feature_headline(data):
    feats, clin = data
    res = analyze(feats, clin, id_col="pid", time_col="t", event_col="e",
                  primary_features="established", **FAST)  # no panel feature in these columns
    mv = res.multivariable
    assert res.params["primary_family"] == []
    assert mv["headline"] == "all_features" and mv["primary"] is None
    assert "no primary feature" in mv["primary_note"]


def test_compare_c_indices_and_bootstrap_weights():
    rng = np.random.default_rng(0)
    n = 60
    t = rng.exponential(1.0, n)
    e = (rng.random(n) < 0.7).astype(int)
    a = -t + rng.normal(0, 0.5, n)
    b = rng.normal(size=n)
    W = bootstrap_weights(n, 30, seed=4)
    assert W.shape == (30, n) and (W.sum(1) == n).all()
    np.testing.assert_array_equal(W, bootstrap_weights(n, 30, seed=4))
    assert bootstrap_weights(n, 0, seed=4).shape == (0, n)
    d = compare_c_indices(t, e, a, b, n_bootstrap=30, seed=4)
    assert d["harrell_c"]["estimate"] == pytest.approx(harrell_c(t, e, a) - harrell_c(t, e, b))
    assert d["uno_c"]["estimate"] == pytest.approx(uno_c(t, e, a) - uno_c(t, e, b))
    assert d["harrell_c"]["ci_low"] > 0  # a is far better than noise
    same = compare_c_indices(t, e, a, a, n_bootstrap=30, seed=4)["harrell_c"]
    assert same["estimate"] == same["ci_low"] == same["ci_high"] == 0.0
    with pytest.raises(ValueError, match="one score per patient"):
        compare_c_indices(t, e, a[:-1], b)
