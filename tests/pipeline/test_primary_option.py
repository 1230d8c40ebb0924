"""The pre-specified primary family in the pipeline: ``--primary`` of ``pathxai run`` /
``pathxai demo``, its default (the established panel), that changing it (or the
panel) re-runs only the statistics, and that the pre-specified multivariable model it
defines reaches ``multivariable.json`` and the report next to the all-feature model."""

from __future__ import annotations

import fnmatch
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pathxai.stats", reason="statistics stage not installed")

from pathxai.cli import build_parser  # noqa: E402
from pathxai.features import registry  # noqa: E402
from pathxai.pipeline import run  # noqa: E402
from pathxai.pipeline.cli import _stats_params  # noqa: E402
from pathxai.pipeline.stages import run_statistics  # noqa: E402
from pathxai.report.html import _model_performance  # noqa: E402

STATS = {"n_bootstrap": 10, "outer_folds": 3, "inner_folds": 3, "figures": False}


@pytest.mark.parametrize("command", ["run", "demo"])
def test_primary_option_becomes_a_stats_parameter(command):
    parser = build_parser()
    pos = ["m.yaml", "--out", "o"] if command == "run" else []
    args = parser.parse_args([command, *pos])
    assert "primary_features" not in _stats_params(args)  # run() then uses the panel
    args = parser.parse_args([command, *pos, "--primary", "none"])
    assert _stats_params(args)["primary_features"] is None
    args = parser.parse_args([command, *pos, "--primary", "established"])
    assert _stats_params(args)["primary_features"] == "established"
    args = parser.parse_args([command, *pos, "--primary", "area_fraction__*,established"])
    assert _stats_params(args)["primary_features"] == ["area_fraction__*", "established"]


def test_run_statistics_passes_primary_features_to_analyze(tmp_path):
    rng = np.random.default_rng(2)
    n = 80
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=["prot", "harm", *[f"noise{j}" for j in range(4)]])
    t_ev = rng.exponential(np.exp(0.6 * X["prot"] - 0.8 * X["harm"]))
    t_c = rng.uniform(0, 3, n)
    t, e = np.minimum(t_ev, t_c), (t_ev <= t_c).astype(int)
    ids = [f"P{i:02d}" for i in range(n)]
    cohort = SimpleNamespace(clinical=pd.DataFrame({"patient_id": ids, "t": t, "e": e}),
                             patient_col="patient_id", time_col="t", event_col="e",
                             label_col=None, covariates=[], time_unit="months")
    analysis = run_statistics(X.assign(patient_id=ids), cohort,
                              {**STATS, "primary_features": ["prot", "noise*"]},
                              tmp_path / "stats")
    assert set(analysis.params["primary_family"]) == {"prot", "noise0", "noise1", "noise2", "noise3"}
    saved = json.loads((tmp_path / "stats" / "analysis.json").read_text())
    assert saved["primary_features"] == ["prot", "noise*"]
    b = pd.read_csv(tmp_path / "stats" / "biomarkers.csv")
    assert (b.set_index("feature").loc[["prot", "harm"], "family"] == ["primary", "exploratory"]).all()
    # the pre-specified model: primary family only, the headline; the all-feature model too
    mv = json.loads((tmp_path / "stats" / "multivariable.json").read_text())
    assert mv["headline"] == "primary"
    assert mv["primary"]["features"] == saved["primary_family"]
    assert {r["feature"] for r in mv["primary"]["coefficients"]} == set(saved["primary_family"])
    assert mv["all_features"]["n_features"] == 6 and mv["harrell_c"] == mv["primary"]["harrell_c"]
    perf = _model_performance(tmp_path / "stats")
    rows = {r[0]: r for r in perf["survival"]["rows"]}
    assert set(rows) == {"pre-specified (primary family) — headline", "all features (exploratory)"}
    c = mv["primary"]["harrell_c"]
    assert rows["pre-specified (primary family) — headline"][2] == (
        f"{c['estimate']:.3f} ({c['ci_low']:.3f}–{c['ci_high']:.3f})")
    assert perf["comparison"] is not None and perf["diagnostic"] is None


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    from pathxai.datasets import make_synthetic_cohort

    root = tmp_path_factory.mktemp("cohort")
    manifest = make_synthetic_cohort(root, n_patients=24, seed=0, slide_size=(384, 384), n_jobs=1)
    out = tmp_path_factory.mktemp("run")
    run(manifest, out, model="stain", stats_params=STATS, progress=False)
    return manifest, out


def _counts(out):
    return json.loads((out / "run.json").read_text())["counts"]


@pytest.mark.slow  # the module fixture is one ~30 s pipeline run on 2 shared cores
def test_pipeline_defaults_to_the_established_panel(first):
    _, out = first
    info = json.loads((out / "run.json").read_text())
    assert info["parameters"]["primary_features"] == "established"
    assert "primary_features" not in info["parameters"]["stats"]  # the default, not given
    params = json.loads((out / "stats" / "analysis.json").read_text())
    family = params["primary_family"]
    patterns = registry.established_panel_patterns()
    assert family and all(any(fnmatch.fnmatchcase(f, p) for p in patterns) for f in family)
    b = pd.read_csv(out / "stats" / "biomarkers.csv")
    assert set(b.loc[b["family"] == "primary", "feature"]) == set(family)
    assert "within each family" in params["multiple_testing"]
    # the panel defines the pre-specified (headline) model; in this tiny stain-baseline run
    # most panel features are missing on half of the patients, so it may not be fittable:
    # then the all-feature model is the headline and the reason is shown
    mv = json.loads((out / "stats" / "multivariable.json").read_text())
    html = (out / "report.html").read_text()
    assert 'id="performance"' in html
    if mv["primary"] is None:
        assert mv["headline"] == "all_features"
        assert mv["primary_note"].startswith("pre-specified model not fitted")
        assert "pre-specified model not fitted" in html
    else:
        assert mv["headline"] == "primary" and mv["primary"]["features"] == family
        _assert_both_c_indices_shown(mv, html)


def _assert_both_c_indices_shown(mv, html):
    for key, label in (("primary", "pre-specified (primary family) — headline"),
                       ("all_features", "all features (exploratory)")):
        c = mv[key]["harrell_c"]
        assert label in html and f"{c['estimate']:.3f} ({c['ci_low']:.3f}–{c['ci_high']:.3f})" in html


@pytest.mark.slow
def test_prespecified_model_reaches_the_report(first, tmp_path):
    manifest, out = first
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    primary = ["area_mm2__*", "count__lymphocyte"]  # present for every patient of this run
    run(manifest, copy, model="stain", stats_params={**STATS, "primary_features": primary},
        progress=False)
    c = _counts(copy)
    assert (c["slides"]["computed"], c["aggregate"], c["stats"]) == (0, "cached", "computed")
    mv = json.loads((copy / "stats" / "multivariable.json").read_text())
    family = json.loads((copy / "stats" / "analysis.json").read_text())["primary_family"]
    assert mv["headline"] == "primary" and mv["primary"]["features"] == family
    coef = {r["feature"] for r in mv["primary"]["coefficients"] if r["kind"] == "feature"}
    assert coef == set(family) and all(f.startswith(("area_mm2__", "count__lymphocyte")) for f in coef)
    assert mv["all_features"]["n_features"] > len(family)
    _assert_both_c_indices_shown(mv, (copy / "report.html").read_text())


@pytest.mark.slow
def test_disabling_the_panel_reruns_only_the_statistics(first, tmp_path):
    manifest, out = first
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    run(manifest, copy, model="stain", stats_params={**STATS, "primary_features": None},
        progress=False)
    c = _counts(copy)
    assert (c["slides"]["computed"], c["aggregate"], c["stats"], c["report"]) == (
        0, "cached", "computed", "computed")
    assert json.loads((copy / "run.json").read_text())["parameters"]["primary_features"] is None
    assert set(pd.read_csv(copy / "stats" / "biomarkers.csv")["family"]) == {"exploratory"}
    mv = json.loads((copy / "stats" / "multivariable.json").read_text())
    assert mv["headline"] == "all_features" and mv["primary"] is None
    html = (copy / "report.html").read_text()
    assert "pre-specified (primary family)" not in html and "No pre-specified primary features" in html


@pytest.mark.slow
def test_editing_the_panel_definition_reruns_the_statistics(first, tmp_path, monkeypatch):
    manifest, out = first
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    family = json.loads((out / "stats" / "analysis.json").read_text())["primary_family"]
    keep = tuple(e for e in registry.ESTABLISHED_PANEL
                 if not any(fnmatch.fnmatchcase(family[0], p) for p in e.patterns))
    monkeypatch.setattr(registry, "ESTABLISHED_PANEL", keep)
    run(manifest, copy, model="stain", stats_params=STATS, progress=False)  # same parameters
    c = _counts(copy)
    assert (c["slides"]["computed"], c["aggregate"], c["stats"]) == (0, "cached", "computed")
    new_family = json.loads((copy / "stats" / "analysis.json").read_text())["primary_family"]
    assert family[0] not in new_family and set(new_family) < set(family)
