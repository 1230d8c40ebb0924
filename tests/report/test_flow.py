"""REMARK cohort flow and QC outlier flags (pure functions behind the report)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pathxai.pipeline.run import cohort_flow
from pathxai.pipeline.stages import qc_area_table, robust_z
from pathxai.report.figures import flow_diagram


def _cohort():
    slides = pd.DataFrame({"slide_id": ["a1", "a2", "b1", "c1", "d1", "e1"],
                           "patient_id": ["A", "A", "B", "C", "D", "E"]})
    clinical = pd.DataFrame({"patient_id": list("ABCDE"), "t": [1, 2, 3, 4, 5], "e": [1, 0, 1, 0, 0],
                             "y": [0, 1, 0, 1, 1]})
    return SimpleNamespace(slides=slides, clinical=clinical, patient_col="patient_id", slide_col="slide_id",
                           time_col="t", event_col="e", label_col="y", time_unit="months")


def test_flow_counts_exclusions_and_reverse_km_follow_up():
    failures = pd.DataFrame({"slide_id": ["a2", "b1", "gone"], "stage": ["slide"] * 3,
                             "error_type": ["SlideReadError"] * 3, "message": ["truncated"] * 3})
    patient_features = pd.DataFrame({"patient_id": ["A", "C", "D", "E"], "f": [1.0, 2, 3, 4]})
    stats_ex = pd.DataFrame({"kind": ["patient", "feature"], "id": ["E", "f"], "reason": ["time missing", "constant"]})
    flow = cohort_flow(_cohort(), failures, ["a1", "c1", "d1", "e1"], patient_features, stats_ex)
    assert flow["patients_in"] == 5 and flow["slides_in"] == 6
    # 'gone' is not in the cohort any more; a2 and b1 failed
    assert [d["slide_id"] for d in flow["slides_failed"]] == ["a2", "b1"]
    assert [d["patient_id"] for d in flow["patients_no_slides"]] == ["B"]
    assert flow["patients_excluded_stats"] == [{"patient_id": "E", "reason": "time missing"}]
    assert flow["patients_analysed"] == 3  # A, C, D
    assert flow["events"] == 2  # A and C
    # reverse KM on A (t=1, event), C (t=3, event), D (t=4, censored): censoring is the
    # "event", so the curve stays 1 until t=4 where the 1 patient at risk is censored -> 0
    assert flow["median_follow_up"] == pytest.approx(4.0)
    assert flow["label_counts"] == {"0": 2, "1": 1}  # y of A, C, D = 0, 0, 1
    fig = flow_diagram(flow)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "5 patients, 6 slides" in texts and "Excluded: 2 slides failed" in texts


def test_robust_z_matches_definition():
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    med = 3.0
    mad = np.median(np.abs(x - med))  # = 1
    np.testing.assert_allclose(robust_z(x), (x - med) / (1.4826 * mad))
    assert np.all(robust_z(np.ones(4)) == 0)  # MAD 0 -> no flags


def test_qc_flags_outliers_and_empty_slides():
    areas = pd.DataFrame({"slide_id": list("abcdef"), "area_mm2__tumor": [1.0, 1.1, 0.9, 1.0, 1.05, 5.0],
                          "n_tiles": [3, 3, 3, 0, 3, 3]})
    qc = qc_area_table(areas)
    assert qc["flagged"].tolist() == [False, False, False, True, False, True]
    assert "no tissue tile" in qc.loc[3, "flag_reason"]
    assert "tumor area high" in qc.loc[5, "flag_reason"]
