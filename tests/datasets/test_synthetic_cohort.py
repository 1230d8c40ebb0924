"""make_synthetic_cohort: files, determinism, slide metadata, ground truth, planted effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from skimage.color import rgb2hed
from skimage.measure import regionprops_table

from pathxai.cohort import load_cohort
from pathxai.datasets import make_synthetic_cohort
from pathxai.datasets.outcomes import OutcomeModel, simulate_outcomes

SMALL = {"n_patients": 10, "slide_size": (512, 384), "n_jobs": 1}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    manifest = make_synthetic_cohort(out, seed=3, **SMALL)
    assert manifest == out.resolve() / "manifest.yaml"
    return out


def test_writes_every_file(cohort_dir):
    for name in ("manifest.yaml", "slides.csv", "clinical.csv", "ground_truth.json"):
        assert (cohort_dir / name).is_file()
    slides = pd.read_csv(cohort_dir / "slides.csv")
    clinical = pd.read_csv(cohort_dir / "clinical.csv")
    assert list(clinical.columns) == ["patient_id", "age", "stage", "time_months", "event",
                                      "label"]
    assert len(clinical) == 10 and clinical["patient_id"].is_unique
    assert set(slides["patient_id"]) == set(clinical["patient_id"])
    assert slides["slide_id"].is_unique and len(slides) >= 10
    for sid in slides["slide_id"]:
        d = cohort_dir / "ground_truth" / "masks" / sid
        for f in ("tumor.png", "stroma.png", "necrosis.png", "adipose_tissue.png",
                  "lymphocytic_infiltrate.png", "gland.png", "tissue.png",
                  "neoplastic_cell.instances.tif", "lymphocyte.instances.tif",
                  "connective_tissue_cell.instances.tif", "meta.json"):
            assert (d / f).is_file(), f
        assert json.loads((d / "meta.json").read_text())["mpp"] == 0.5
    # the manifest validates with the cohort loader
    cohort = load_cohort(cohort_dir / "manifest.yaml")
    assert cohort.n_patients == 10 and cohort.time_col == "time_months"
    assert cohort.label_col == "label" and cohort.covariates == ["age", "stage"]


def test_slides_are_pyramidal_tiffs_with_mpp(cohort_dir):
    path = cohort_dir / "slides" / "P001-S1.tiff"
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        assert page.is_tiled and (page.tilewidth, page.tilelength) == (256, 256)
        assert (page.imagewidth, page.imagelength) == (512, 384)
        xres = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3  # centimetre
        assert 1e4 / (xres[0] / xres[1]) == pytest.approx(0.5)   # µm per pixel
        level1 = tf.pages[1]
        assert (level1.imagewidth, level1.imagelength) == (256, 192)
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(str(path)) as slide:
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert slide.level_count == 2 and slide.dimensions == (512, 384)


def test_ground_truth_matches_the_image_and_the_recorded_composition(cohort_dir):
    truth = json.loads((cohort_dir / "ground_truth.json").read_text())
    rec = truth["slides"][0]
    sid = rec["slide_id"]
    d = cohort_dir / "ground_truth" / "masks" / sid
    image = tifffile.imread(cohort_dir / "slides" / f"{sid}.tiff", level=0)
    masks = {n: np.asarray(Image.open(d / f"{n}.png")) > 0
             for n in ("tumor", "stroma", "necrosis", "tissue")}
    lym = tifffile.imread(d / "lymphocyte.instances.tif")
    neo = tifffile.imread(d / "neoplastic_cell.instances.tif")
    nuclei = (lym > 0) | (neo > 0)
    # nuclei are where the haematoxylin is (JPEG round trip included)
    h = rgb2hed(image)[..., 0]
    assert h[nuclei].mean() > h[masks["tissue"] & ~nuclei].mean() + 0.02
    # composition re-derived independently from the written files
    px_mm2 = (0.5e-3) ** 2
    tumor_mm2 = masks["tumor"].sum() * px_mm2
    props = regionprops_table(lym, properties=("centroid",))
    r = np.rint(props["centroid-0"]).astype(int)
    c = np.rint(props["centroid-1"]).astype(int)
    n_in = int(masks["tumor"][r, c].sum())
    real = rec["realised"]
    assert real["area_mm2__tumor"] == pytest.approx(tumor_mm2)
    assert real["count__lymphocyte"] == int(lym.max())
    if tumor_mm2 > 0:
        assert real["density_per_mm2__lymphocyte__in__tumor"] == pytest.approx(n_in / tumor_mm2)
    assert real["area_fraction__necrosis"] == pytest.approx(
        masks["necrosis"].sum() / masks["tissue"].sum())
    assert real["ratio__tumor__to__stroma"] == pytest.approx(
        masks["tumor"].sum() / masks["stroma"].sum())


def test_ground_truth_json_states_effects_and_consistent_c_index(cohort_dir):
    from lifelines.utils import concordance_index

    truth = json.loads((cohort_dir / "ground_truth.json").read_text())
    effects = {e["feature"]: e for e in truth["planted_effects"]}
    assert effects["density_per_mm2__lymphocyte__in__tumor"]["hr_per_sd"] == 0.5
    assert effects["density_per_mm2__lymphocyte__in__tumor"]["direction"] == "protective"
    assert effects["area_fraction__necrosis"]["hr_per_sd"] == 2.0
    assert effects["ratio__tumor__to__stroma"]["or_per_sd"] == 4.0
    assert truth["seed"] == 3
    clinical = pd.read_csv(cohort_dir / "clinical.csv").set_index("patient_id")
    # recompute the linear predictor from the stated coefficients and realised values
    lp = []
    for p in truth["patients"]:
        v = 0.0
        for e in truth["survival"]["effects"]:
            v += e["coefficient_per_unit"] * (p["realised"][e["feature"]] - e["mean"])
        for cov in truth["survival"]["covariates"]:
            v += cov["coefficient_per_unit"] * (p[cov["covariate"]] - cov["centre"])
        lp.append(v)
        assert clinical.loc[p["patient_id"], "age"] == p["age"]
    np.testing.assert_allclose(lp, [p["linear_predictor"] for p in truth["patients"]],
                               rtol=1e-9, atol=1e-9)
    ci = concordance_index(clinical["time_months"], -np.asarray(lp), clinical["event"])
    assert ci == pytest.approx(truth["survival"]["c_index_true_lp"], abs=1e-9)


def test_deterministic_for_a_seed_and_independent_of_workers(cohort_dir, tmp_path):
    again = make_synthetic_cohort(tmp_path / "again", seed=3, **{**SMALL, "n_jobs": 2}).parent
    for name in ("slides.csv", "clinical.csv", "manifest.yaml", "ground_truth.json"):
        assert (again / name).read_bytes() == (cohort_dir / name).read_bytes(), name
    for f in ("slides/P001-S1.tiff", "ground_truth/masks/P002-S1/lymphocyte.instances.tif",
              "ground_truth/masks/P003-S1/tumor.png"):
        assert (again / f).read_bytes() == (cohort_dir / f).read_bytes(), f
    other = make_synthetic_cohort(tmp_path / "other", seed=4, **SMALL).parent
    assert (other / "clinical.csv").read_bytes() != (cohort_dir / "clinical.csv").read_bytes()
    a = tifffile.imread(other / "slides" / "P001-S1.tiff", level=0)
    b = tifffile.imread(cohort_dir / "slides" / "P001-S1.tiff", level=0)
    assert not np.array_equal(a, b)


def test_rerun_reuses_and_refuses_to_clobber(cohort_dir, tmp_path):
    stamp = (cohort_dir / "clinical.csv").stat().st_mtime_ns
    assert make_synthetic_cohort(cohort_dir, seed=3, **SMALL) == cohort_dir.resolve() / \
        "manifest.yaml"
    assert (cohort_dir / "clinical.csv").stat().st_mtime_ns == stamp  # nothing redone
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        make_synthetic_cohort(busy, seed=3, **SMALL)
    with pytest.raises(ValueError, match="n_patients"):
        make_synthetic_cohort(tmp_path / "x", n_patients=2)


def test_planted_effects_are_recovered_by_cox_and_logistic_models():
    """The outcome model on many patients: fitted effects match the planted ones."""
    import statsmodels.api as sm
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    n = 3000
    feats = pd.DataFrame({
        "density_per_mm2__lymphocyte__in__tumor": rng.uniform(50, 1000, n),
        "area_fraction__necrosis": rng.uniform(0, 0.3, n),
        "ratio__tumor__to__stroma": np.exp(rng.normal(-0.4, 0.5, n)),
    }, index=[f"P{i}" for i in range(n)])
    model = OutcomeModel()
    clinical, truth = simulate_outcomes(feats, np.random.default_rng(1), model)
    assert 1 - clinical["event"].mean() == pytest.approx(model.censoring_fraction, abs=0.04)
    df = feats.copy()
    for c in df:
        df[c] = (df[c] - df[c].mean()) / df[c].std()
    df = df.drop(columns="ratio__tumor__to__stroma")
    df[["age", "stage", "time_months", "event"]] = clinical[
        ["age", "stage", "time_months", "event"]].to_numpy()
    # tolerances ~4 standard errors on the log scale (SE ~ 1/sqrt(events) ~ 0.025 here)
    log_hr = np.log(CoxPHFitter().fit(df, "time_months", "event").hazard_ratios_)
    assert log_hr["density_per_mm2__lymphocyte__in__tumor"] == pytest.approx(np.log(0.5),
                                                                               abs=0.1)
    assert log_hr["area_fraction__necrosis"] == pytest.approx(np.log(2.0), abs=0.1)
    assert log_hr["stage"] == pytest.approx(np.log(model.hr_per_stage), abs=0.1)
    z = np.log(feats["ratio__tumor__to__stroma"])
    z = (z - z.mean()) / z.std()
    fit = sm.Logit(clinical["label"].to_numpy(float), sm.add_constant(z.to_numpy())).fit(disp=0)
    assert fit.params[1] == pytest.approx(np.log(4.0), abs=4 * fit.bse[1])
    assert truth["survival"]["c_index_true_lp"] > 0.65


def test_planted_directions_hold_in_a_small_rendered_cohort(tmp_path):
    """Tables written by the generator: Cox/logistic fits on the realised values show the
    planted directions (a 40-patient cohort is too small for exact sizes)."""
    import statsmodels.api as sm
    from lifelines import CoxPHFitter

    root = make_synthetic_cohort(tmp_path / "c40", n_patients=40, seed=1, slide_size=(512, 512),
                                 label_maps=False, n_jobs=1).parent
    truth = json.loads((root / "ground_truth.json").read_text())
    clinical = pd.read_csv(root / "clinical.csv").set_index("patient_id")
    real = pd.DataFrame({p["patient_id"]: p["realised"] for p in truth["patients"]}).T
    df = real[["density_per_mm2__lymphocyte__in__tumor", "area_fraction__necrosis"]].astype(float)
    df = (df - df.mean()) / df.std()
    df = df.join(clinical[["age", "stage", "time_months", "event"]])
    assert 0.1 < 1 - df["event"].mean() < 0.5  # censoring near the planted 30 %
    hr = CoxPHFitter().fit(df, "time_months", "event").hazard_ratios_
    assert hr["density_per_mm2__lymphocyte__in__tumor"] < 0.8
    assert hr["area_fraction__necrosis"] > 1.25
    z = np.log(real["ratio__tumor__to__stroma"].astype(float))
    fit = sm.Logit(clinical.loc[real.index, "label"].to_numpy(float),
                   sm.add_constant(((z - z.mean()) / z.std()).to_numpy())).fit(disp=0)
    assert fit.params[1] > 0.4


def test_cli_synthetic(tmp_path, capsys):
    from pathxai.cli import main

    out = tmp_path / "cli"
    assert main(["synthetic", "--out", str(out), "--patients", "8", "--slide-size", "384", "320",
                 "--jobs", "1", "--seed", "5"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == str(out.resolve() / "manifest.yaml")
    assert len(pd.read_csv(out / "clinical.csv")) == 8
    with tifffile.TiffFile(out / "slides" / "P001-S1.tiff") as tf:
        assert tf.pages[0].shape[:2] == (320, 384)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert main(["synthetic", "--out", str(tmp_path / "busy"), "--patients", "8"]) == 2
    assert "overwrite" in capsys.readouterr().err
