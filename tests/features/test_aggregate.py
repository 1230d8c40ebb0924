"""Slide -> patient pooling rules on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pathxai.exceptions import FeatureError
from pathxai.features import aggregate_patients, aggregation_rules


def _table():
    return pd.DataFrame({
        "slide_id": ["a", "b", "c"],
        "area_mm2__tissue": [10.0, 30.0, 5.0],
        "area_mm2__tumor": [2.0, 6.0, 0.0],
        "area_mm2__stroma": [4.0, 4.0, 0.0],
        "area_fraction__tumor": [0.2, 0.2, 0.0],
        "ratio__tumor__to__stroma": [0.5, 1.5, np.nan],
        "count__lymphocyte": [10.0, 30.0, 0.0],
        "count__lymphocyte__in__tumor": [4.0, 2.0, 0.0],
        "density_per_mm2__lymphocyte__in__tumor": [2.0, 1 / 3, np.nan],
        "mean_area_um2__lymphocyte": [20.0, 40.0, np.nan],
        "sd_area_um2__lymphocyte": [2.0, 4.0, np.nan],
        "median_area_um2__lymphocyte": [19.0, 41.0, np.nan],
        "fraction_within_50um__lymphocyte__of__tumor": [0.5, 0.1, np.nan],
        "compactness__tumor": [0.5, 0.9, np.nan],
    })


def test_rules_by_hand():
    t = _table()
    out = aggregate_patients(t, {"a": "P1", "b": "P1", "c": "P2"}, include_n_slides=True).set_index("patient_id")
    p1 = out.loc["P1"]
    assert p1["n_slides"] == 2
    assert p1["area_mm2__tumor"] == 8.0                                   # pooled area
    assert p1["area_fraction__tumor"] == pytest.approx(8 / 40)            # area-weighted
    assert p1["ratio__tumor__to__stroma"] == pytest.approx(8 / 8)         # Σ tumor / Σ stroma
    assert p1["density_per_mm2__lymphocyte__in__tumor"] == pytest.approx(6 / 8)  # pooled count / area
    assert p1["mean_area_um2__lymphocyte"] == pytest.approx((10 * 20 + 30 * 40) / 40)  # object-weighted
    # pooled SD of 10 objects (mean 20, sd 2) and 30 objects (mean 40, sd 4)
    grand = 35.0
    var = (10 * (4 + (20 - grand) ** 2) + 30 * (16 + (40 - grand) ** 2)) / 40
    assert p1["sd_area_um2__lymphocyte"] == pytest.approx(math.sqrt(var))
    assert p1["median_area_um2__lymphocyte"] == pytest.approx((10 * 19 + 30 * 41) / 40)
    assert p1["fraction_within_50um__lymphocyte__of__tumor"] == pytest.approx((5 + 3) / 40)
    assert p1["compactness__tumor"] == pytest.approx((2 * 0.5 + 6 * 0.9) / 8)  # area-weighted
    p2 = out.loc["P2"]
    assert p2["area_fraction__tumor"] == 0.0
    assert math.isnan(p2["ratio__tumor__to__stroma"]) and math.isnan(p2["mean_area_um2__lymphocyte"])


def test_pooled_values_equal_features_of_the_union():
    """Two half-slides pooled = the features of the whole slide (exact rules)."""
    from pathxai.features import compute_features

    rng = np.random.default_rng(0)
    tumor = rng.random((40, 80)) < 0.4
    stroma = ~tumor & (rng.random((40, 80)) < 0.5)
    lab = np.zeros((40, 80), np.int32)
    lab[5:8, 5:9] = 1
    lab[20:25, 50:52] = 2
    lab[30:33, 70:79] = 3
    kw = {"mpp": 0.5}
    whole = compute_features({"tumor": tumor, "stroma": stroma}, instances={"lymphocyte": lab}, **kw)
    halves = [compute_features({"tumor": tumor[:, s], "stroma": stroma[:, s]},
                               instances={"lymphocyte": lab[:, s]}, **kw) for s in (slice(0, 40), slice(40, 80))]
    t = pd.DataFrame(halves).assign(slide_id=["h1", "h2"])
    p = aggregate_patients(t, {"h1": "P", "h2": "P"}).iloc[0]
    for name in ("area_fraction__tumor", "ratio__tumor__to__stroma", "density_per_mm2__lymphocyte__in__tumor",
                 "count__lymphocyte", "mean_area_um2__lymphocyte", "sd_area_um2__lymphocyte",
                 "density_per_mm2__lymphocyte", "fraction__lymphocyte__in__tumor"):
        assert p[name] == pytest.approx(whole[name]), name


def test_errors():
    t = _table()
    with pytest.raises(FeatureError, match="without a patient"):
        aggregate_patients(t, {"a": "P1"})
    with pytest.raises(FeatureError, match="no registry entry"):
        aggregation_rules(["not_a_feature"])
    frame = pd.DataFrame({"slide_id": ["a", "b", "c"], "patient_id": ["X", "X", "Y"]})
    res = aggregate_patients(t, frame)
    assert list(res["patient_id"]) == ["X", "Y"] and "n_slides" not in res.columns
