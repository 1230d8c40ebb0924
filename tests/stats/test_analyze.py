"""End-to-end analysis on a simulated cohort with planted effects, outputs and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from stats_testdata import simulate_cohort

from pathxai.cli import main as cli_main
from pathxai.exceptions import InsufficientDataError, StatsInputError
from pathxai.stats import analyze, harrell_c

REQUIRED = ["rank", "feature", "cluster", "hr", "hr_ci_low", "hr_ci_high", "p", "q",
            "shap_mean_abs", "shap_top_k_frequency", "tier"]
FAST = {"n_bootstrap": 30, "inner_folds": 3, "outer_folds": 5, "figures": False}


def _tables(n=300, p_noise=20, seed=0):
    X, t, e, lp, y = simulate_cohort(n=n, p_noise=p_noise, seed=seed)
    ids = [f"P{i:03d}" for i in range(n)]
    feats = X.assign(patient=ids)
    clin = pd.DataFrame({"patient": ids, "months": t, "dead": e, "label": y,
                         "age": np.random.default_rng(seed).normal(60, 8, n)})
    return feats, clin, lp


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    feats, clin, lp = _tables()
    out = tmp_path_factory.mktemp("analysis")
    res = analyze(feats, clin, id_col="patient", time_col="months", event_col="dead",
                  label_col="label", seed=1, out_dir=out, n_bootstrap=40, inner_folds=3,
                  figures=True)
    return res, out, clin, lp


def test_planted_effects_rank_on_top(result):
    res, _, _, _ = result
    b = res.biomarkers
    top = list(b["feature"].head(3))
    # harm and harm_copy0 carry the same signal (one cluster): either may represent it
    assert "prot" in top and "diag" in top and ({"harm", "harm_copy0"} & set(top))
    row = b.set_index("feature")
    assert row.loc["prot", "hr"] < 1 < row.loc["harm", "hr"]
    assert row.loc["prot", "tier"] == 1 and row.loc["diag", "tier"] == 1
    assert row.loc["harm", "cluster"] == row.loc["harm_copy0", "cluster"]
    noise = b[b["feature"].str.startswith("noise")]
    assert (noise["tier"] > 1).all()


def test_c_index_ci_covers_true_model(result):
    res, _, clin, lp = result
    c = res.multivariable["harrell_c"]
    true_c = harrell_c(clin["months"], clin["dead"], lp)
    assert c["ci_low"] <= true_c <= c["ci_high"]
    assert c["ci_low"] < c["estimate"] < c["ci_high"]
    for key in ("uno_c", "harrell_c_optimism_corrected"):
        assert res.multivariable[key]["ci_low"] < res.multivariable[key]["ci_high"]
    assert res.multivariable["logrank_risk_groups"]["p"] < 0.001
    d = res.diagnostic["models"].set_index("model")
    assert (d["auroc_ci_low"] > 0.6).all()


def test_outputs_written(result):
    res, out, _, _ = result
    b = pd.read_csv(out / "biomarkers.csv")
    assert set(REQUIRED) <= set(b.columns)
    assert list(b["rank"]) == list(range(1, len(b) + 1))
    for f in ("univariable_cox.csv", "multivariable.json", "diagnostic.json", "analysis.json",
              "params.json", "exclusions.csv", "figures/volcano.png", "figures/forest.png",
              "figures/km_risk_groups.png", "figures/shap_beeswarm.png",
              "figures/shap_stability.png", "figures/roc.png",
              "figures/calibration_survival.png", "figures/calibration_diagnostic.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    mv = json.loads((out / "multivariable.json").read_text())
    assert {"estimate", "ci_low", "ci_high"} <= set(mv["harrell_c"])
    params = json.loads((out / "analysis.json").read_text())
    assert params["seed"] == 1 and "lifelines" in params["versions"]
    assert not list(out.glob(".*tmp*"))
    assert "BiomarkerAnalysis" in repr(res) and "<table" in res._repr_html_()
    ax = res.univariable.plot()
    assert ax.get_xlabel().startswith("hazard ratio")
    res.survival.print_summary()
    assert "harrell_c" in res.survival._repr_html_()
    assert res.diagnostic_result.plot_calibration().get_xlabel() == "mean predicted probability"
    assert res.survival.plot().get_xlabel().startswith("penalised log HR")


def test_same_seed_same_result():
    feats, clin, _ = _tables(n=120, p_noise=5, seed=3)
    kw = dict(id_col="patient", time_col="months", event_col="dead", seed=7, **FAST)
    a = analyze(feats, clin, **kw)
    b = analyze(feats, clin, **kw)
    pd.testing.assert_frame_equal(a.biomarkers, b.biomarkers)


def test_bad_input_is_reported_not_dropped():
    feats, clin, _ = _tables(n=120, p_noise=5, seed=4)
    kw = dict(id_col="patient", time_col="months", event_col="dead", **FAST)
    feats = feats.assign(grade=["G1"] * 120, n_slides=2)
    clin.loc[0, "months"] = np.nan
    clin2 = pd.concat([clin, pd.DataFrame({"patient": ["X1"], "months": [1.0], "dead": [1]})])
    res = analyze(feats.iloc[:-2], clin2, **kw)
    ex = res.exclusions
    assert "grade" in set(ex["id"]) and "non-numeric" in ex.set_index("id").loc["grade", "reason"]
    assert {"P000", "X1", "P118", "P119", "n_slides"} <= set(ex["id"])
    assert "n_slides" not in set(res.biomarkers["feature"])
    assert res.params["n_patients"] == 117
    with pytest.raises(StatsInputError, match="not in the clinical table"):
        analyze(feats.iloc[:-2], clin2, on_unmatched="error", **kw)
    with pytest.raises(StatsInputError, match="no id matches"):
        analyze(feats.assign(patient=[f"Q{i}" for i in range(120)]), clin, **kw)
    with pytest.raises(StatsInputError, match="more than once"):
        analyze(pd.concat([feats, feats.iloc[:2]]), clin, **kw)
    with pytest.raises(InsufficientDataError, match="censored"):
        analyze(feats, clin.assign(dead=0), **kw)
    few = clin.assign(dead=0)
    few.loc[:5, "dead"] = 1
    with pytest.raises(InsufficientDataError, match="5 events among 119 patients"):
        analyze(feats, few, **kw)
    with pytest.raises(StatsInputError, match="0/1"):
        analyze(feats, clin.assign(dead=2), **kw)
    with pytest.raises(StatsInputError, match="'nope' not in the clinical"):
        analyze(feats, clin, label_col="nope", **{k: v for k, v in kw.items()})


def test_convergence_failure_reported_per_feature():
    feats, clin, _ = _tables(n=120, p_noise=3, seed=5)
    # a feature that perfectly orders event times among events -> infinite MLE
    order = np.argsort(clin["months"].to_numpy())
    sep = np.empty(120)
    sep[order] = -np.arange(120.0)
    dead = np.ones(120, int)
    dead[order[-15:]] = 0  # censor the 15 longest: every event still has the largest x
    clin = clin.assign(dead=dead)
    feats = feats.assign(separating=sep)
    res = analyze(feats, clin, id_col="patient", time_col="months", event_col="dead", **FAST)
    row = res.univariable.summary.set_index("feature").loc["separating"]
    assert not row["converged"] and "diverges" in row["message"]
    assert np.isnan(row["q"])
    assert "separating" in set(res.exclusions["id"])


def test_cli_writes_outputs(tmp_path, capsys):
    feats, clin, _ = _tables(n=120, p_noise=5, seed=6)
    feats.to_csv(tmp_path / "f.csv", index=False)
    clin.to_csv(tmp_path / "c.csv", index=False)
    rc = cli_main(["analyze", "--features", str(tmp_path / "f.csv"), "--clinical",
                   str(tmp_path / "c.csv"), "--id", "patient", "--time", "months", "--event",
                   "dead", "--covariates", "age", "--seed", "2", "--n-bootstrap", "10",
                   "--out", str(tmp_path / "out")])
    assert rc == 0
    assert set(REQUIRED) <= set(pd.read_csv(tmp_path / "out" / "biomarkers.csv").columns)
    assert (tmp_path / "out" / "figures" / "km_risk_groups.png").is_file()
    rc = cli_main(["analyze", "--features", str(tmp_path / "f.csv"), "--clinical",
                   str(tmp_path / "c.csv"), "--id", "nope", "--time", "months", "--event",
                   "dead", "--out", str(tmp_path / "out2")])
    assert rc == 2 and "id column 'nope'" in capsys.readouterr().err


def test_small_null_cohort_degrades_gracefully():
    rng = np.random.default_rng(8)
    n = 24
    ids = [f"S{i}" for i in range(n)]
    feats = pd.DataFrame(rng.normal(size=(n, 6)), columns=list("abcdef")).assign(pid=ids)
    t = rng.exponential(1, n)
    e = np.r_[np.ones(19), np.zeros(5)].astype(int)
    clin = pd.DataFrame({"pid": ids, "t": t, "e": e})
    res = analyze(feats, clin, id_col="pid", time_col="t", event_col="e", n_bootstrap=20,
                  inner_folds=3, figures=True)
    lr = res.multivariable["logrank_risk_groups"]
    assert np.isfinite(lr["p"]) or "collapsed" in lr["note"]
    assert (res.biomarkers["tier"] >= 3).all()
    assert "km_risk_groups" in res.figures
