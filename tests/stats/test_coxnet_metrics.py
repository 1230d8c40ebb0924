"""Elastic-net Cox vs lifelines; concordance / Uno / AUC(t) against independent code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFitted
from sklearn.metrics import roc_auc_score

from pathxai.exceptions import StatsInputError
from pathxai.stats import CoxNet, cumulative_dynamic_auc, harrell_c, uno_c


def _data(n=150, p=5, seed=0, censor=1.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X = (X - X.mean(0)) / X.std(0, ddof=1)  # lifelines rescales by this SD: keep it 1
    lp = 0.8 * X[:, 0] - 0.5 * X[:, 1]
    t_ev = rng.exponential(np.exp(-lp))
    t_c = rng.exponential(censor, n) if censor else np.full(n, np.inf)
    return X, np.minimum(t_ev, t_c), (t_ev <= t_c).astype(int), lp


@pytest.mark.parametrize("penalizer,l1_ratio", [(0.05, 0.5), (0.1, 0.0), (0.02, 0.9)])
def test_coxnet_matches_lifelines_penalised_fit(penalizer, l1_ratio):
    X, t, e, _ = _data()
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(t=t, e=e)
    ref = CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio).fit(df, "t", "e").params_.values
    m = CoxNet(alpha=penalizer, l1_ratio=l1_ratio, tol=1e-9).fit(X, np.c_[t, e])
    # lifelines smooths |b| (soft-abs), so exact zeros there are ~1e-4
    np.testing.assert_allclose(m.coef_, ref, atol=2e-3)


def test_coxnet_sklearn_contract_and_predictions():
    X, t, e, lp = _data(seed=1)
    est = CoxNet(alpha=0.01)
    with pytest.raises(SkNotFitted):
        est.predict(X)
    assert est.fit(X, np.c_[t, e]) is est
    assert clone(est).get_params()["alpha"] == 0.01
    assert est.score(X, np.c_[t, e]) == pytest.approx(
        concordance_index(t, -est.predict(X), e), abs=1e-12)
    s = est.predict_survival(X[:3], [0.1, 0.5, 5.0])
    assert s.shape == (3, 3) and np.all(np.diff(s, axis=1) <= 0) and np.all((s > 0) & (s <= 1))
    with pytest.raises(StatsInputError, match="0/1"):
        est.fit(X, np.c_[t, np.full_like(t, 2)])


def test_harrell_c_matches_lifelines():
    X, t, e, lp = _data(n=200, seed=2)
    risk = np.round(lp, 1)  # ties in risk
    assert harrell_c(t, e, risk) == pytest.approx(concordance_index(t, -risk, e), abs=1e-12)


def test_uno_c_equals_harrell_without_censoring():
    X, t, e, lp = _data(n=150, seed=3, censor=None)
    assert e.all()
    assert uno_c(t, e, lp) == pytest.approx(harrell_c(t, e, lp), abs=1e-12)


def test_uno_c_hand_example():
    # 4 patients; censoring KM: only patient 2 (t=2) censored -> G(t-) = 1 for t<=2,
    # 2/3 after. Pairs (i event, T_i < T_j): (1,2),(1,3),(1,4) weight 1; (3,4) weight 1/(2/3)^2
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([1, 0, 1, 1])
    r = np.array([4.0, 1.0, 2.0, 3.0])  # pair (3,4) discordant
    w34 = 1 / (2 / 3) ** 2
    expected = 3 / (3 + w34)
    assert uno_c(t, e, r, tau=10) == pytest.approx(expected)


def test_time_dependent_auc_equals_auroc_without_censoring():
    X, t, e, lp = _data(n=200, seed=4, censor=None)
    horizons = np.quantile(t, [0.3, 0.6])
    auc = cumulative_dynamic_auc(t, e, lp, horizons)
    for h, a in zip(horizons, auc):
        case = t <= h
        assert a == pytest.approx(roc_auc_score(case, lp), abs=1e-12)


def test_zero_penalty_factor_gives_unpenalised_mle():
    from pathxai.stats.coxnet import CoxData, fit_cox_newton, fit_coxnet_path

    X, t, e, _ = _data(n=120, p=3, seed=5)
    d = CoxData.from_arrays(t, e)
    Xs = X[d.order]
    ref = fit_cox_newton(Xs[None], np.ones((1, 120)), d)["beta"][0]
    # penalise only column 2 (strongly): columns 0, 1 are the MLE given x2 = 0
    ref01 = fit_cox_newton(Xs[None, :, :2], np.ones((1, 120)), d)["beta"][0]
    b, _ = fit_coxnet_path(Xs, np.ones((1, 120)), d, np.array([10.0]), l1_ratio=1.0,
                           penalty_factor=np.array([0.0, 0.0, 1.0]), tol=1e-10)
    np.testing.assert_allclose(b[0, 0, :2], ref01, atol=1e-5)
    assert b[0, 0, 2] == 0.0
    b, _ = fit_coxnet_path(Xs, np.ones((1, 120)), d, np.array([1.0]),
                           penalty_factor=np.zeros(3), tol=1e-10)
    np.testing.assert_allclose(b[0, 0], ref, atol=1e-5)
