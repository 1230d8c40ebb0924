"""Cox, KM, log-rank, PH test and maxstat against R (values stored) and lifelines (fitted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test
from stats_testdata import R_COX, R_KM, R_LOGRANK, R_MAXSTAT, R_TIED, R_ZPH_KM

from pathxai.stats import km_curve, maxstat_cutpoint, univariable_cox


def test_univariable_cox_matches_r_coxph(r_data):
    res = univariable_cox(r_data[["x1", "x2"]], r_data["time"], r_data["event"]).summary
    for i, name in enumerate(["x1", "x2"]):
        coef, se, p, lo, hi = R_COX[name]
        row = res.iloc[i]
        assert row["coef"] == pytest.approx(coef, rel=1e-6)
        assert row["se"] == pytest.approx(se, rel=1e-5)
        assert row["p"] == pytest.approx(p, rel=1e-4)
        assert row["hr_ci_low"] == pytest.approx(lo, rel=1e-5)
        assert row["hr_ci_high"] == pytest.approx(hi, rel=1e-5)


def test_univariable_cox_breslow_ties_match_r(r_data):
    tt = np.round(r_data["time"], 1) + 0.1
    row = univariable_cox(r_data[["x1"]], tt, r_data["event"]).summary.iloc[0]
    assert row["coef"] == pytest.approx(R_TIED["coef"], rel=1e-6)
    assert row["se"] == pytest.approx(R_TIED["se"], rel=1e-5)


def test_univariable_cox_matches_lifelines_direct_fit(r_data):
    res = univariable_cox(r_data[["x1", "x2"]], r_data["time"], r_data["event"]).summary
    for i, name in enumerate(["x1", "x2"]):
        z = (r_data[name] - r_data[name].mean()) / r_data[name].std()
        df = pd.DataFrame({"z": z, "t": r_data["time"], "e": r_data["event"]})
        cph = CoxPHFitter().fit(df, "t", "e")
        s = cph.summary.loc["z"]
        # lifelines stops Newton earlier than R (whose values match to 1e-6 above)
        assert res.iloc[i]["hr"] == pytest.approx(s["exp(coef)"], rel=1e-4)
        assert res.iloc[i]["p"] == pytest.approx(s["p"], rel=1e-3)
        assert res.iloc[i]["concordance"] == pytest.approx(cph.concordance_index_, abs=1e-9)
        ph = proportional_hazard_test(cph, df, time_transform="rank").summary
        assert res.iloc[i]["ph_chi2"] == pytest.approx(ph["test_statistic"].iloc[0], rel=1e-3)


def test_univariable_cox_adjusted_matches_lifelines():
    rng = np.random.default_rng(5)
    n = 120
    age = rng.normal(60, 10, n)
    x = rng.normal(size=n) + 0.03 * age
    t_ev = rng.exponential(np.exp(-(0.5 * x + 0.02 * age)))
    t_c = rng.exponential(2, n)
    t, e = np.minimum(t_ev, t_c), (t_ev <= t_c).astype(int)
    res = univariable_cox(pd.DataFrame({"x": x}), t, e,
                          covariates=pd.DataFrame({"age": age})).summary.iloc[0]
    df = pd.DataFrame({"z": (x - x.mean()) / x.std(ddof=1), "age": age, "t": t, "e": e})
    cph = CoxPHFitter().fit(df, "t", "e")
    assert res["coef"] == pytest.approx(cph.params_["z"], rel=1e-4)
    assert res["se"] == pytest.approx(cph.standard_errors_["z"], rel=1e-4)
    ph = proportional_hazard_test(cph, df, time_transform="rank").summary
    assert res["ph_chi2"] == pytest.approx(ph.loc["z", "test_statistic"], rel=1e-3)


def test_ph_test_km_transform_close_to_r_cox_zph(r_data):
    res = univariable_cox(r_data[["x1", "x2"]], r_data["time"], r_data["event"],
                          ph_transform="km").summary
    for i, name in enumerate(["x1", "x2"]):
        # R's score test vs the Grambsch-Therneau approximation: same conclusion, close p
        assert res.iloc[i]["ph_p"] == pytest.approx(R_ZPH_KM[name][1], abs=0.02)


def test_km_matches_r_and_lifelines(r_data):
    times, surv = km_curve(r_data["time"], r_data["event"])
    for t, s_r in R_KM:
        s = surv[np.searchsorted(times, t, side="right") - 1]
        assert s == pytest.approx(s_r, rel=1e-8)
    kmf = KaplanMeierFitter().fit(r_data["time"], r_data["event"])
    np.testing.assert_allclose(kmf.survival_function_at_times(times).to_numpy(), surv,
                               rtol=1e-10)
    tt = np.round(r_data["time"], 1) + 0.1
    times, surv = km_curve(tt, r_data["event"])
    for t, s_r in R_TIED["km"]:
        assert surv[np.searchsorted(times, t, side="right") - 1] == pytest.approx(s_r, rel=1e-8)


def test_logrank_used_in_km_figure_matches_r(r_data):
    lr = multivariate_logrank_test(r_data["time"], r_data["grp"], r_data["event"])
    assert lr.test_statistic == pytest.approx(R_LOGRANK[0], rel=1e-6)
    assert lr.p_value == pytest.approx(R_LOGRANK[1], rel=1e-5)
    tt = np.round(r_data["time"], 1) + 0.1
    lr = multivariate_logrank_test(tt, r_data["grp"], r_data["event"])
    assert lr.test_statistic == pytest.approx(R_TIED["logrank_chisq"], rel=1e-6)


@pytest.mark.parametrize("method", ["Lau92", "Lau94"])
def test_maxstat_matches_r(r_data, method):
    res = maxstat_cutpoint(r_data["x1"], r_data["time"], r_data["event"], method=method)
    cut, stat, p = R_MAXSTAT[method]
    assert res.cutpoint == pytest.approx(cut)
    assert res.statistic == pytest.approx(stat, rel=1e-7)
    assert res.p_value == pytest.approx(p, rel=1e-6)
    assert res.label == "exploratory"
