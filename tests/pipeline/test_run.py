"""End-to-end cohort runs (pathxai.pipeline.run): caching, failures, run.json, report.

One tiny synthetic cohort (small slides, the classical stain segmentor, few
bootstrap resamples) is run several times in one module-scoped folder so that the
cache behaviour can be read off ``run.json`` between runs.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("pathxai.cohort", reason="cohort stage not installed")
pytest.importorskip("pathxai.stats", reason="statistics stage not installed")

from pathxai.exceptions import PipelineError  # noqa: E402
from pathxai.pipeline import run  # noqa: E402
from pathxai.pipeline.stages import slide_dir_for  # noqa: E402

N_PATIENTS = 24  # the statistics need >= 10 events and >= 10 patients per label class
STATS = {"n_bootstrap": 10, "outer_folds": 3, "inner_folds": 3}

pytestmark = pytest.mark.slow  # ~1.5 min on 2 shared cores: several full runs of a 30-slide cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Synthetic cohort + a truncated copy of one slide, for a patient who has another slide."""
    from pathxai.datasets import make_synthetic_cohort

    root = tmp_path_factory.mktemp("cohort")
    manifest = make_synthetic_cohort(root, n_patients=N_PATIENTS, seed=0, slide_size=(512, 512), n_jobs=1)
    slides = pd.read_csv(root / "slides.csv", dtype=str)
    counts = slides["patient_id"].value_counts()
    donor = slides[slides["patient_id"] == counts[counts >= 2].index[0]].iloc[0]
    data = (root / donor["path"]).read_bytes()
    broken = root / "slides" / "broken_slide.tiff"
    broken.write_bytes(data[: len(data) // 3])  # truncated: the header reads, the tiles do not
    extra = donor.copy()
    extra["slide_id"] = "broken_slide"
    extra["path"] = "slides/broken_slide.tiff"
    pd.concat([slides, extra.to_frame().T], ignore_index=True).to_csv(root / "slides.csv", index=False)
    return {"manifest": manifest, "root": root, "n_slides": len(slides) + 1}


@pytest.fixture(scope="module")
def first(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run(cohort["manifest"], out, model="stain", stats_params=STATS, progress=False)
    return out, result


def _counts(out):
    return json.loads((out / "run.json").read_text())["counts"]


def test_first_run_computes_everything_and_isolates_the_broken_slide(cohort, first):
    out, result = first
    c = result.counts
    n_good = cohort["n_slides"] - 1
    assert c["slides"]["computed"] == n_good
    assert c["slides"]["cached"] == 0
    assert c["slides"]["failed"] == 1
    assert (c["aggregate"], c["stats"], c["report"]) == ("computed", "computed", "computed")
    fails = pd.read_csv(out / "failures.csv")
    assert fails["slide_id"].tolist() == ["broken_slide"]
    assert fails["error_type"].iloc[0] in {"SlideReadError", "OSError", "ValueError"}
    assert isinstance(fails["message"].iloc[0], str) and fails["message"].iloc[0]
    assert len(result.slide_features) == n_good
    assert "broken_slide" not in set(result.slide_features["slide_id"])
    # the broken slide's patient still has a slide, so every patient is analysed
    assert len(result.patient_features) == N_PATIENTS
    flow = json.loads((out / "cohort_flow.json").read_text())
    assert [d["slide_id"] for d in flow["slides_failed"]] == ["broken_slide"]
    assert flow["patients_in"] == N_PATIENTS and flow["slides_in"] == cohort["n_slides"]
    html = (out / "report.html").read_text()
    assert "broken_slide" in html


def test_run_json_records_provenance(first):
    out, _ = first
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["model"]["name"] == "stain" and len(info["model"]["sha256"]) == 64
    assert info["parameters"]["stats"] == {**STATS, "seed": 0}
    assert info["seeds"]["stats"] == 0
    for pkg in ("pathxai", "numpy", "pandas", "lifelines", "torch"):
        assert pkg in info["versions"]
    assert set(info["timings_s"]) == {"validate", "slides", "aggregate", "stats", "report"}
    assert "=== pathxai run" in (out / "run.log").read_text()


def test_mask_areas_match_the_mask_files(first):
    out, result = first
    sid = result.slide_features["slide_id"].iloc[0]
    sdir = slide_dir_for(out, sid)
    rec = json.loads((sdir / "areas.json").read_text())
    mpp = rec["mpp"]
    for slug, area in rec["area_mm2"].items():
        files = [p for p in (sdir / "masks").glob(f"{slug}.*") if ".instances" not in p.name
                 and p.suffix in (".png", ".tif", ".tiff")]
        mask = np.asarray(Image.open(files[0]))
        assert area == pytest.approx((mask > 0).sum() * mpp**2 / 1e6)
    assert (sdir / "qc" / "thumbnail.jpg").is_file()


def test_second_run_recomputes_nothing(cohort, first):
    out, _ = first
    before = (out / "slide_features.csv").read_bytes()
    result = run(cohort["manifest"], out, model="stain", stats_params=STATS, progress=False)
    c = _counts(out)
    assert c["slides"]["computed"] == 0
    assert c["slides"]["cached"] == cohort["n_slides"] - 1
    assert c["slides"]["failed"] == 0 and c["slides"]["failed_cached"] == 1
    assert (c["aggregate"], c["stats"], c["report"]) == ("cached", "cached", "cached")
    assert (out / "slide_features.csv").read_bytes() == before
    assert result.analysis is None
    # the broken slide is still reported once, not duplicated
    assert pd.read_csv(out / "failures.csv")["slide_id"].tolist() == ["broken_slide"]
    assert (out / "run.log").read_text().count("=== pathxai run") == 2


def test_changed_stats_parameter_reruns_only_the_statistics(cohort, first):
    out, _ = first
    run(cohort["manifest"], out, model="stain", stats_params={**STATS, "n_bootstrap": 12}, progress=False)
    c = _counts(out)
    assert c["slides"]["computed"] == 0 and c["slides"]["cached"] == cohort["n_slides"] - 1
    assert c["aggregate"] == "cached"
    assert c["stats"] == "computed"
    assert c["report"] == "computed"


def test_changed_prompts_resegment(cohort, first, tmp_path):
    out, _ = first
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    run(cohort["manifest"], copy, model="stain", prompts=["tumor", "stroma"], stats_params=STATS,
        progress=False)
    c = _counts(copy)
    assert c["slides"]["computed"] == cohort["n_slides"] - 1
    assert c["slides"]["segmented"] == cohort["n_slides"] - 1


def test_max_failures_stops_the_run(cohort, first, tmp_path):
    from pathxai.exceptions import TooManyFailuresError

    out, _ = first
    copy = tmp_path / "r"
    shutil.copytree(out, copy)
    with pytest.raises(TooManyFailuresError, match="max_failures=0"):
        run(cohort["manifest"], copy, model="stain", stats_params=STATS, progress=False, max_failures=0)
    assert json.loads((copy / "run.json").read_text())["status"].startswith("stopped")
    # one failure is within max_failures=1: the run finishes
    run(cohort["manifest"], copy, model="stain", stats_params=STATS, progress=False, max_failures=1)
    assert json.loads((copy / "run.json").read_text())["status"] == "finished"


def test_slide_ids_cannot_leave_the_output_folder(tmp_path):
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(PipelineError):
            slide_dir_for(tmp_path, bad)


def test_cli_run_uses_the_cache_and_prints_the_report_path(cohort, first, tmp_path, capsys):
    from pathxai.cli import main

    out, _ = first
    copy = tmp_path / "cli"
    shutil.copytree(out, copy)
    code = main(["run", str(cohort["manifest"]), "--out", str(copy), "--model", "stain",
                 "--n-bootstrap", "10", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"slides: 0 computed, {cohort['n_slides'] - 1} cached, 1 failed" in printed
    assert f"report: {copy.resolve() / 'report.html'}" in printed


def test_cli_run_bad_manifest_is_one_readable_error(tmp_path, capsys):
    from pathxai.cli import main

    (tmp_path / "manifest.yaml").write_text("slides: missing.csv\nclinical: missing.csv\n")
    code = main(["run", str(tmp_path / "manifest.yaml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
