"""Features of the synthetic cohort's ground-truth masks reproduce the composition it planted."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pathxai.features import aggregate_patients, features_table


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    try:
        from pathxai.datasets import make_synthetic_cohort
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"pathxai.datasets.make_synthetic_cohort not available yet ({exc})")
    out = tmp_path_factory.mktemp("synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = make_synthetic_cohort(out, n_patients=8, seed=11, slide_size=(320, 320),
                                         n_jobs=1, label_maps=False)
    root = manifest.parent
    return root, json.loads((root / "ground_truth.json").read_text())


def _check(got, want, where):
    compared = 0
    for key, value in want.items():
        if key.startswith(("area_mm2__", "count__", "density_", "area_fraction__", "ratio__")):
            assert key in got.index, f"{where}: feature {key} missing"
            assert np.isclose(got[key], value, rtol=1e-9, atol=1e-12, equal_nan=True), (
                f"{where}: {key} = {got[key]} but planted {value}")
            compared += 1
    return compared


def test_slide_and_patient_features_match_ground_truth(cohort):
    root, truth = cohort
    table = features_table(root / "ground_truth" / "masks")
    by_slide = table.set_index("slide_id")
    n = 0
    for s in truth["slides"]:
        n += _check(by_slide.loc[s["slide_id"]], s["realised"], s["slide_id"])
    assert n >= 3 * len(truth["slides"])
    s2p = {sid: p["patient_id"] for p in truth["patients"] for sid in p["slides"]}
    patients = aggregate_patients(table, s2p).set_index("patient_id")
    for p in truth["patients"]:
        _check(patients.loc[p["patient_id"]], p["realised"], p["patient_id"])
    for key in ("density_per_mm2__lymphocyte__in__tumor", "area_fraction__necrosis", "ratio__tumor__to__stroma"):
        assert key in patients.columns
