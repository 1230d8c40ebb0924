"""FeaturePreprocessor: documented drops, transforms, clusters, sklearn behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFitted
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from pathxai.exceptions import StatsInputError
from pathxai.stats import FeaturePreprocessor


def _frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(size=n)
    df = pd.DataFrame({
        "a": a,
        "a_copy": a * 2 + rng.normal(0, 1e-3, n),  # monotone copy: rho = 1
        "b": rng.normal(size=n),
        "const": 3.0,
        "near_const": np.r_[np.zeros(n - 2), 1.0, 2.0],
        "mostly_missing": np.r_[rng.normal(size=10), np.full(n - 10, np.nan)],
    })
    df.loc[3, "b"] = np.nan
    return df


def test_drops_with_reasons_and_clusters():
    pre = FeaturePreprocessor().fit(_frame())
    assert "constant" in pre.dropped_["const"]
    assert "near-constant" in pre.dropped_["near_const"]
    assert "missing" in pre.dropped_["mostly_missing"]
    assert pre.clusters_["a"] == pre.clusters_["a_copy"] != pre.clusters_["b"]
    assert len(pre.representatives_) == 2 and "b" in pre.representatives_
    dropped_copy = ({"a", "a_copy"} - set(pre.representatives_)).pop()
    assert "correlated" in pre.dropped_[dropped_copy]
    assert "a" in pre.log_features_  # skewed, non-negative
    Z = pre.transform(_frame())
    assert Z.shape == (80, 2)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0, ddof=1), 1, atol=1e-12)


def test_uses_training_statistics_only():
    df = _frame()
    pre = FeaturePreprocessor(cluster_threshold=None, skew_transform="none").fit(df.iloc[:40])
    z = pre.transform(df.iloc[40:])
    b = df["b"].iloc[:40]
    b = b.fillna(b.median())  # training median imputation happens before scaling
    j = pre.representatives_.index("b")
    expected = (df["b"].iloc[40:].to_numpy() - b.mean()) / b.std(ddof=1)
    np.testing.assert_allclose(z[:, j], expected, atol=1e-12)


def test_cluster_threshold_is_pairwise():
    rng = np.random.default_rng(1)
    base = rng.normal(size=200)
    X = np.c_[base, base + rng.normal(0, 0.2, 200), rng.normal(size=200)]
    pre = FeaturePreprocessor(cluster_threshold=0.9, skew_transform="none").fit(X)
    rho = abs(spearmanr(X[:, 0], X[:, 1])[0])
    same = pre.clusters_["x0"] == pre.clusters_["x1"]
    assert same == (rho > 0.9)


def test_sklearn_pipeline_and_errors():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    y = (X["a"] + rng.normal(0, 0.5, 60) > 0).astype(int)
    pipe = Pipeline([("pre", FeaturePreprocessor()), ("clf", LogisticRegression())])
    gs = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=3).fit(X, y)
    assert gs.best_estimator_.named_steps["pre"].support_.sum() == 4
    assert clone(FeaturePreprocessor(max_missing=0.3)).max_missing == 0.3
    with pytest.raises(SkNotFitted):
        FeaturePreprocessor().transform(X)
    with pytest.raises(StatsInputError, match="non-numeric"):
        FeaturePreprocessor().fit(X.assign(e="x"))
    with pytest.raises(StatsInputError, match="skew_transform"):
        FeaturePreprocessor(skew_transform="sqrt").fit(X)
    q = FeaturePreprocessor(skew_transform="quantile", cluster_threshold=None).fit(X)
    assert q.transform(X).shape == (60, 4)


def test_representative_chosen_by_training_outcome():
    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    X = pd.DataFrame({"copy": a + rng.normal(0, 0.25, 300), "a": a})  # rho ~ 0.97
    y = (a + rng.normal(0, 0.3, 300) > 0).astype(int)
    by_outcome = FeaturePreprocessor(skew_transform="none").fit(X, y)
    assert by_outcome.clusters_["a"] == by_outcome.clusters_["copy"]
    assert by_outcome.representatives_ == ["a"]
    # without an outcome: equal mean |rho| in a pair -> first column
    assert FeaturePreprocessor(skew_transform="none").fit(X).representatives_ == ["copy"]
    surv = np.c_[np.exp(-a + rng.normal(0, 0.3, 300)), np.ones(300)]
    assert FeaturePreprocessor(skew_transform="none").fit(X, surv).representatives_ == ["a"]
