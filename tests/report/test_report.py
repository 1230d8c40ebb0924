"""The HTML report: self-contained, escaped, and its figures render in a real browser.

The run folder is built by hand here (the report reads only files), so these tests
do not need the segmentation or statistics stages.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pathxai.pipeline.io import atomic_write_json, atomic_write_png
from pathxai.pipeline.stages import overlay, qc_area_table
from pathxai.report import render_report

EVIL = "<script>alert('x')</script>"
EVIL_SLIDE = "S<img src=x onerror=alert(1)>"


def _fig_png(path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


@pytest.fixture()
def run_dir(tmp_path):
    out = tmp_path / "run"
    prompts = ["tumor", f"stroma {EVIL}"]
    rng = np.random.default_rng(0)
    slide_ids = ["S01", "S02", "S03", "S04", "S05", "S06"]
    # tumour area: five ordinary slides and one 10x outlier
    tumor_area = [1.0, 1.1, 0.9, 1.05, 0.95, 10.0]
    for sid, area in zip(slide_ids, tumor_area):
        sdir = out / "slides" / sid
        thumb = rng.integers(150, 255, size=(48, 64, 3), dtype=np.uint8)
        atomic_write_png(sdir / "qc" / "thumbnail.png", thumb)
        mask = np.zeros((48, 64), bool)
        mask[10:30, 10:40] = True
        atomic_write_png(sdir / "qc" / "tumor.png", overlay(thumb, mask, (213, 94, 0)))
        atomic_write_json(
            sdir / "areas.json",
            {"mpp": 2.0, "area_mm2": {"tumor": area},
             "overlays": [{"prompt": prompts[0], "slug": "tumor", "file": "qc/tumor.png"}]},
        )
    areas = pd.DataFrame({"slide_id": slide_ids, "area_mm2__tumor": tumor_area})
    qc_area_table(areas).to_csv(out / "qc_areas.csv", index=False)
    pd.DataFrame(
        {"slide_id": [EVIL_SLIDE], "stage": ["slide"], "error_type": ["SlideReadError"],
         "message": [f"cannot read slide {EVIL}: truncated"], "time": ["2026-01-01T00:00:00+00:00"]}
    ).to_csv(out / "failures.csv", index=False)
    pats = pd.DataFrame({"patient_id": [f"P{i}" for i in range(6)],
                         "density_per_mm2__lymphocyte__in__tumor": rng.normal(100, 10, 6),
                         EVIL: rng.normal(size=6)})
    pats.to_csv(out / "patient_features.csv", index=False)
    (out / "patients").mkdir()
    pd.DataFrame({"patient_id": pats["patient_id"], "time": [5, 6, 7, 8, 9, 10],
                  "event": [1, 0, 1, 0, 1, 0]}).to_csv(out / "patients" / "outcomes.csv", index=False)
    stats = out / "stats"
    stats.mkdir()
    pd.DataFrame({"feature": ["density_per_mm2__lymphocyte__in__tumor", EVIL],
                  "hr": [0.5, 1.2], "q": [1e-5, 0.4], f"col {EVIL}": ["a", "b"]}).to_csv(
        stats / "biomarkers.csv", index=False)
    for name in ("volcano", "forest", "km_top", "shap_beeswarm", "roc", "calibration"):
        _fig_png(stats / "figures" / f"{name}.png", name)
    flow = {
        "patients_in": 7, "slides_in": 7, "slides_ok": 6,
        "slides_failed": [{"slide_id": EVIL_SLIDE, "patient_id": "P6", "reason": f"SlideReadError: {EVIL}"}],
        "patients_no_slides": [{"patient_id": "P6", "reason": "no slide processed (all of its slides failed)"}],
        "patients_excluded_stats": [], "patients_analysed": 6, "events": 3, "median_follow_up": 8.0,
        "time_unit": "months", "label_col": None, "label_counts": None, "patient_col": "patient_id",
        "slide_col": "slide_id",
    }
    atomic_write_json(out / "cohort_flow.json", flow)
    atomic_write_json(
        out / "run.json",
        {"pathxai_version": "0.1.0", "manifest": str(tmp_path / "cohort" / "manifest.yaml"),
         "parameters": {"prompts": prompts, "model": "stain", "stats": {"seed": 0, "n_bootstrap": 20},
                        "time_col": "time", "time_unit": "months", "event_col": "event",
                        "label_col": None, "covariates": [EVIL], "executor": "local", "n_workers": 1},
         "model": {"name": "stain", "class": "StainSegmentor", "sha256": "ab" * 32},
         "seeds": {"stats": 0}, "timings_s": {"slides": 1.0}, "versions": {"numpy": np.__version__},
         "counts": {"slides": {"computed": 6, "cached": 0, "failed": 1}}},
    )
    return out


def test_report_is_one_self_contained_file(run_dir):
    path = render_report(run_dir)
    html = path.read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    # 1 flow + 1 area plot + 1 distributions + 6 stats figures + 6 slides x (thumbnail + 1 overlay)
    assert len(srcs) == 1 + 1 + 1 + 6 + 6 * 2
    assert all(re.match(r"data:image/(png|jpeg);base64,", s) for s in srcs)
    assert "<link" not in html and "http://" not in html and "https://" not in html
    for title in ("Cohort overview", "Segmentation QC", "Feature distributions", "volcano",
                  "Kaplan", "SHAP", "ROC", "Candidate biomarkers", "Methods"):
        assert title in html


def test_user_text_is_escaped(run_dir):
    html = render_report(run_dir).read_text()
    assert "<script" not in html.lower()
    assert "onerror=alert" not in html.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "S&lt;img src=x onerror=alert(1)&gt;" in html


def test_outlier_slide_is_flagged_first(run_dir):
    # independent robust z of the 10 mm² slide: median 1.025, MAD 0.075 -> z = 80
    x = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 10.0])
    med = np.median(x)
    z = (10.0 - med) / (1.4826 * np.median(np.abs(x - med)))
    assert z > 3.5
    qc = pd.read_csv(run_dir / "qc_areas.csv")
    assert qc.loc[qc["flagged"], "slide_id"].tolist() == ["S06"]
    assert qc.loc[5, "z__tumor"] == pytest.approx(z)
    html = render_report(run_dir).read_text()
    gallery = re.findall(r'<div class="qc-slide( flagged)?">\s*<h3>(\w+)', html)
    assert gallery[0] == (" flagged", "S06")
    assert [g[1] for g in gallery[1:]] == ["S01", "S02", "S03", "S04", "S05"]


def test_report_counts(run_dir):
    html = render_report(run_dir).read_text()
    kpis = dict((label, value) for value, label in re.findall(r"<b>([^<]*)</b><span>([^<]*)</span>", html))
    assert kpis["patients in manifest"] == "7"
    assert kpis["slides excluded"] == "1"
    assert kpis["events"] == "3"
    assert kpis["median follow-up (reverse Kaplan–Meier)"].startswith("8.0 months")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


_CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-imgs-total', imgs.length);
  document.body.setAttribute('data-imgs-ok', ok);
});
</script>
"""


def _chromium_cmd(exe, tmp_path):
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}"]


@pytest.mark.slow
def test_figures_load_in_headless_chromium(run_dir, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium chromium-driver)")
    html = render_report(run_dir).read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _CHECK_SCRIPT + "</body>"))
    res = subprocess.run(
        [*_chromium_cmd(exe, tmp_path), "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    total = re.search(r'data-imgs-total="(\d+)"', res.stdout)
    ok = re.search(r'data-imgs-ok="(\d+)"', res.stdout)
    assert total and ok, f"probe script did not run; chromium stderr: {res.stderr[-500:]}"
    assert int(total.group(1)) == 21
    assert int(ok.group(1)) == int(total.group(1))

    shot = tmp_path / "report.png"
    res = subprocess.run(
        [*_chromium_cmd(exe, tmp_path), "--hide-scrollbars", "--window-size=1280,2400",
         f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), res.stderr[-500:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2400, 1280)
    # the header bar is the accent colour #2f5d8a, and the page is not blank
    assert np.abs(img[20, 640].astype(int) - (0x2F, 0x5D, 0x8A)).max() <= 3
    assert img.std() > 20


def test_render_report_from_result_like_object(run_dir, tmp_path):
    class Result:
        out_dir = run_dir

    target = render_report(Result(), out_path=tmp_path / "elsewhere.html")
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert json.loads((run_dir / "run.json").read_text())["model"]["name"] == "stain"
