"""Must-show on the synthetic cohort: planted effects on top of biomarkers.csv and the
C-index CI covering the value the planted model implies (ground-truth feature values)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pathxai.stats import analyze, harrell_c

synthetic = pytest.importorskip("pathxai.datasets", reason="synthetic cohort generator absent")

pytestmark = pytest.mark.slow  # renders a 100-patient cohort (~15 s CPU)

PLANTED_SURVIVAL = {"density_per_mm2__lymphocyte__in__tumor": "protective",
                    "area_fraction__necrosis": "harmful"}
PLANTED_LABEL = "ratio__tumor__to__stroma"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    if not hasattr(synthetic, "make_synthetic_cohort"):
        pytest.skip("pathxai.datasets.make_synthetic_cohort not available")
    root = tmp_path_factory.mktemp("syn")
    manifest = synthetic.make_synthetic_cohort(root / "cohort", n_patients=100, seed=11,
                                               slide_size=(512, 512), label_maps=False,
                                               n_jobs=1)
    truth = json.loads((manifest.parent / "ground_truth.json").read_text())
    feats = pd.DataFrame([{"patient_id": p["patient_id"], **p["realised"]}
                          for p in truth["patients"]])
    clinical = pd.read_csv(manifest.parent / "clinical.csv")
    res = analyze(feats, clinical, id_col="patient_id", time_col="time_months",
                  event_col="event", label_col="label", covariates=["age", "stage"], seed=0,
                  n_bootstrap=40,
                  inner_folds=3, figures=False, out_dir=root / "out")
    return truth, feats, clinical, res, root / "out"


def test_planted_effects_top_biomarkers_csv(cohort):
    truth, feats, clinical, res, out = cohort
    table = pd.read_csv(out / "biomarkers.csv")
    top = table.head(4)
    # a planted feature counts as found if it, or its correlation cluster, ranks on top
    for name, direction in PLANTED_SURVIVAL.items():
        cl = table.set_index("feature").loc[name, "cluster"]
        hit = top[(top["feature"] == name) | (top["cluster"] == cl)]
        assert len(hit), f"{name} not in the top 4: {list(top['feature'])}"
        hr = table.set_index("feature").loc[name, "hr"]
        assert (hr < 1) if direction == "protective" else (hr > 1)
    cl = table.set_index("feature").loc[PLANTED_LABEL, "cluster"]
    assert ((top["feature"] == PLANTED_LABEL) | (top["cluster"] == cl)).any()


def test_c_index_ci_covers_planted_model(cohort):
    truth, feats, clinical, res, _ = cohort
    # the model is adjusted for age and stage (unpenalised), as is the planted model
    implied = truth["survival"]["c_index_true_lp"]
    lp = pd.Series(truth["linear_predictor"] if "linear_predictor" in truth else
                   {p["patient_id"]: p["linear_predictor"] for p in truth["patients"]})
    merged = clinical.assign(lp=clinical["patient_id"].map(lp))
    assert harrell_c(merged["time_months"], merged["event"], merged["lp"]) == pytest.approx(
        implied, abs=1e-9)
    c = res.multivariable["harrell_c"]
    assert c["ci_low"] <= implied <= c["ci_high"], (implied, c)
    cov = res.survival.summary.set_index("feature")
    assert cov.loc["stage", "kind"].startswith("covariate") and cov.loc["stage", "hr"] > 1
