"""The built-in synthetic demo cohort: slides, exact ground truth, planted outcomes.

:func:`make_synthetic_cohort` writes, under ``out_dir``::

    manifest.yaml                    cohort manifest (schema: data_manifests/README.md)
    slides.csv                       slide_id, patient_id, path (relative), mpp
    clinical.csv                     patient_id, age, stage, time_months, event, label
    ground_truth.json                planted effects, generative model, realised values
    slides/<slide_id>.tiff           pyramidal tiled JPEG TIFF, µm/px in resolution tags
    ground_truth/masks/<slide_id>/   plain mask layout (docs/contracts.md), level 0
    ground_truth/labels/<slide_id>/  tissue_codes.png, nuclei.tif, nucleus_types.json

Each patient has latent composition parameters (tumor, stroma, necrosis, fat,
lymphoid aggregate and gland shares; tumor-infiltrating lymphocyte density; ...);
about a quarter of patients have two slides drawn from the same parameters with
different layouts and stains. Outcomes are then generated from the *realised*
ground-truth composition of each patient (pooled over slides), see
:mod:`pathxai.datasets.outcomes` and :mod:`pathxai.datasets.composition`.

Everything derives from ``seed`` through :class:`numpy.random.SeedSequence`
(``spawn_key = (patient, slide)``), so the output is byte-identical for a seed and
independent of ``n_jobs``; patient ``k`` is the same whatever ``n_patients``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from pathxai import __version__
from pathxai.datasets import outcomes as _outcomes_module
from pathxai.datasets.composition import pool_patient, slide_composition
from pathxai.datasets.outcomes import OutcomeModel, simulate_outcomes
from pathxai.datasets.render import (
    NUCLEUS_TYPE_CODES,
    TISSUE_CODES,
    Composition,
    StainStyle,
    SyntheticPatch,
    render_patch,
)

__all__ = ["make_synthetic_cohort", "write_pyramidal_tiff", "write_ground_truth",
           "DEFAULT_PROMPTS"]

#: Prompts the demo manifest asks the segmentor for (canonical category names).
DEFAULT_PROMPTS = [
    "tumor", "stroma", "necrosis", "adipose tissue", "lymphocytic infiltrate", "gland",
    "neoplastic cell", "lymphocyte", "connective tissue cell",
]

_OUTCOME_KEY = 1_000_000  # spawn key of the outcome stream (never a patient index)


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace("-", "_")


def _latent(rng: np.random.Generator) -> tuple[Composition, int]:
    """Per-patient composition and number of slides."""
    necrotic = rng.random() < 0.7
    comp = Composition(
        background=0.03,
        tumor=float(rng.uniform(0.15, 0.55)),
        stroma=float(rng.uniform(0.15, 0.45)),
        necrosis=float(rng.uniform(0.03, 0.28) if necrotic else rng.uniform(0.0, 0.02)),
        adipose_tissue=float(rng.uniform(0.0, 0.15)),
        lymphocytic_infiltrate=float(rng.uniform(0.0, 0.12)),
        gland=float(rng.uniform(0.0, 0.12)),
        tumor_cells_per_mm2=float(rng.uniform(4500, 7000)),
        lymphocytes_in_tumor_per_mm2=float(rng.uniform(100, 1800)),
        lymphocytes_in_stroma_per_mm2=float(rng.uniform(200, 900)),
        lymphocytes_in_aggregates_per_mm2=float(rng.uniform(9000, 13000)),
        fibroblasts_per_mm2=float(rng.uniform(1200, 2400)),
        region_scale_um=float(rng.uniform(80, 140)),
        nest_scale_um=float(rng.uniform(22, 36)),
        nest_fraction=float(rng.uniform(0.75, 0.92)),
        section=True,
    )
    n_slides = 2 if rng.random() < 0.25 else 1
    return comp, n_slides


def write_pyramidal_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    mpp: float,
    *,
    tile: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
) -> None:
    """Write an RGB image as a tiled pyramidal TIFF readable by tifffile and OpenSlide.

    Levels halve in size (2×2 mean) until a level fits in one tile; each
    level is one IFD (reduced-resolution levels have ``NewSubfileType = 1``), with
    ``XResolution``/``YResolution`` in pixels per centimetre so that OpenSlide's
    generic-tiff backend reports ``openslide.mpp-x = mpp``.

    Parameters
    ----------
    path : path-like
        Output ``.tiff``.
    image : ndarray (h, w, 3) uint8
        Level-0 pixels.
    mpp : float
        µm per pixel at level 0.
    tile : int
        Tile edge, pixels (multiple of 16).
    compression : {"jpeg", "zlib"}
        Tile codec.
    quality : int
        JPEG quality.
    """
    import tifffile

    levels = [image]
    while max(levels[-1].shape[:2]) > tile and min(levels[-1].shape[:2]) >= 2:
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        levels.append(np.rint(a).astype(np.uint8))
    kwargs = {"compressionargs": {"level": quality}} if compression == "jpeg" else {}
    with tifffile.TiffWriter(path) as tif:
        for i, a in enumerate(levels):
            res = 1e4 / (mpp * 2**i)  # pixels per cm
            tif.write(
                a, tile=(tile, tile), compression=compression, photometric="rgb",
                resolution=(res, res), resolutionunit="CENTIMETER",
                subfiletype=1 if i else 0, software="pathxai", metadata=None,
                description=f"pathxai synthetic slide; mpp={mpp}" if i == 0 else None,
                **kwargs,
            )


def write_ground_truth(patch: SyntheticPatch, mask_dir: Path, label_dir: Path | None,
                       slide_id: str) -> None:
    """Write one slide's ground truth in the plain mask layout (and label maps).

    Parameters
    ----------
    patch : SyntheticPatch
        The rendered slide.
    mask_dir : Path
        ``<masks>/<slide_id>``: ``<slug>.png`` (0/255) per tissue category and
        ``tissue.png``; ``<slug>.instances.tif`` (uint16/uint32, deflate) per
        nucleus type; ``meta.json``.
    label_dir : Path or None
        If given: ``tissue_codes.png`` (uint8 codes), ``nuclei.tif`` (all nuclei,
        int32 ids) and ``nucleus_types.json`` ({id: type code}).
    slide_id : str
    """
    import tifffile
    from PIL import Image

    mask_dir.mkdir(parents=True, exist_ok=True)
    for name, code in TISSUE_CODES.items():
        if code:
            Image.fromarray(((patch.tissue == code) * 255).astype(np.uint8)).save(
                mask_dir / f"{_slug(name)}.png", compress_level=1)
    Image.fromarray(((patch.tissue > 0) * 255).astype(np.uint8)).save(
        mask_dir / "tissue.png", compress_level=1)
    counts = {}
    for name, code in NUCLEUS_TYPE_CODES.items():
        inst = patch.instances_of(code)
        n = int(inst.max())
        counts[_slug(name)] = n
        dtype = np.uint16 if n < 2**16 else np.uint32
        tifffile.imwrite(mask_dir / f"{_slug(name)}.instances.tif", inst.astype(dtype),
                         compression="zlib", metadata=None)
    meta = {
        "slide_id": slide_id, "mpp": patch.mpp, "source": "pathxai synthetic ground truth",
        "shape": list(patch.tissue.shape),
        "regions": [_slug(n) for n, c in TISSUE_CODES.items() if c],
        "instances": counts,
    }
    (mask_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if label_dir is not None:
        label_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(patch.tissue).save(label_dir / "tissue_codes.png", compress_level=1)
        tifffile.imwrite(label_dir / "nuclei.tif", patch.nuclei, compression="zlib",
                         metadata=None)
        types = {str(k): int(v) for k, v in sorted(patch.nucleus_types.items())}
        (label_dir / "nucleus_types.json").write_text(json.dumps(types) + "\n")


def _make_slide(task: dict) -> dict:
    """Render, write and measure one slide (runs in a worker process)."""
    ss = np.random.SeedSequence(task["seed"], spawn_key=(task["patient_index"],
                                                         task["slide_index"]))
    rng = np.random.default_rng(ss)
    comp = Composition(**task["composition"])
    stain = StainStyle.random(rng)
    h, w = task["shape"]
    patch = render_patch(rng, (h, w), mpp=task["mpp"], composition=comp, stain=stain)
    root = Path(task["root"])
    sid = task["slide_id"]
    write_pyramidal_tiff(root / "slides" / f"{sid}.tiff", patch.image, task["mpp"])
    write_ground_truth(
        patch, root / "ground_truth" / "masks" / sid,
        root / "ground_truth" / "labels" / sid if task["label_maps"] else None, sid)
    comp_vals = slide_composition(patch.tissue, patch.nuclei, patch.nucleus_types,
                                  task["mpp"])
    return {"slide_id": sid, "composition": comp_vals, "stain": asdict(stain)}


def _oracle_fits(table: pd.DataFrame) -> dict:
    """Cox and logistic fits on the exact realised values (what a perfect pipeline sees)."""
    import warnings

    out: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _oracle_fits_into(table, out)
    if caught:
        out["warnings"] = sorted({str(w.message).splitlines()[0] for w in caught})
    return out


def _oracle_fits_into(table: pd.DataFrame, out: dict) -> None:
    try:
        from lifelines import CoxPHFitter

        cols = ["density_per_mm2__lymphocyte__in__tumor", "area_fraction__necrosis"]
        df = table[cols + ["age", "stage", "time_months", "event"]].copy()
        for c in cols:
            df[c] = (df[c] - df[c].mean()) / df[c].std(ddof=1)
        cph = CoxPHFitter().fit(df, "time_months", "event")
        s = cph.summary
        out["cox_per_sd"] = {
            c: {"hr": float(s.loc[c, "exp(coef)"]),
                "ci_low": float(s.loc[c, "exp(coef) lower 95%"]),
                "ci_high": float(s.loc[c, "exp(coef) upper 95%"]),
                "p": float(s.loc[c, "p"])}
            for c in cols + ["age", "stage"]
        }
        out["cox_c_index"] = float(cph.concordance_index_)
    except Exception as exc:  # noqa: BLE001 - an oracle fit failing must not stop generation
        out["cox_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import statsmodels.api as sm

        z = np.log(table["ratio__tumor__to__stroma"].to_numpy(float))
        z = (z - z.mean()) / z.std(ddof=1)
        res = sm.Logit(table["label"].to_numpy(float), sm.add_constant(z)).fit(disp=0)
        lo, hi = np.exp(res.conf_int()[1])
        out["logistic_per_sd_log_ratio__tumor__to__stroma"] = {
            "or": float(np.exp(res.params[1])), "ci_low": float(lo), "ci_high": float(hi),
            "p": float(res.pvalues[1])}
    except Exception as exc:  # noqa: BLE001
        out["logistic_error"] = f"{type(exc).__name__}: {exc}"


def _manifest_text(label_maps: bool) -> str:
    prompts = "\n".join(f"  - {p}" for p in DEFAULT_PROMPTS)
    return (
        "# pathxai cohort manifest: the synthetic demo cohort (schema: data_manifests/README.md)\n"
        "name: pathxai-synthetic-demo\n"
        "description: Procedurally rendered H&E slides with exact ground truth and planted "
        "effects (see ground_truth.json).\n"
        "slides: slides.csv\n"
        "clinical: clinical.csv\n"
        "patient_id_column: patient_id\n"
        "slide_id_column: slide_id\n"
        "slide_path_column: path\n"
        "mpp_column: mpp\n"
        "survival:\n"
        "  time_column: time_months\n"
        "  event_column: event\n"
        "  time_unit: months\n"
        "label_column: label\n"
        "covariates:\n"
        "  - age\n"
        "  - stage\n"
        f"prompts:\n{prompts}\n"
    )


def make_synthetic_cohort(
    out_dir: str | os.PathLike,
    n_patients: int = 60,
    seed: int = 0,
    *,
    slide_size: tuple[int, int] = (1536, 1536),
    mpp: float = 0.5,
    outcome_model: OutcomeModel | None = None,
    label_maps: bool = True,
    n_jobs: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate the synthetic demo cohort and return the path of its manifest.

    Parameters
    ----------
    out_dir : path-like
        Folder to write (created). If it already holds a cohort generated with the
        same parameters, nothing is redone and its manifest is returned.
    n_patients : int
        Number of patients (≥ 8 so that outcome models can be fitted).
    seed : int
        Master seed; the output is byte-identical for a seed.
    slide_size : (width, height)
        Level-0 slide size in pixels (default 1536 × 1536 = 0.77 × 0.77 mm at 0.5 µm/px).
    mpp : float
        µm per pixel at level 0.
    outcome_model : OutcomeModel, optional
        Planted effect sizes, censoring and baseline; default :class:`OutcomeModel`.
    label_maps : bool
        Also write ``ground_truth/labels/<slide_id>/`` (code maps for training).
    n_jobs : int, optional
        Worker processes (default: ``min(4, os.cpu_count())``); 1 = in process.
    overwrite : bool
        Replace a different cohort already in ``out_dir``.
    progress : bool
        Print one line per finished slide.

    Returns
    -------
    Path
        ``out_dir / "manifest.yaml"``.

    Raises
    ------
    ValueError
        Bad sizes or counts.
    FileExistsError
        ``out_dir`` holds something else and ``overwrite`` is False.
    """
    if int(n_patients) != n_patients or n_patients < 8:
        raise ValueError(f"n_patients must be an integer >= 8, got {n_patients!r}")
    w, h = (int(slide_size[0]), int(slide_size[1]))
    if min(w, h) < 256:
        raise ValueError(f"slide_size must be at least 256 x 256 pixels, got {slide_size!r}")
    if not np.isfinite(mpp) or mpp <= 0:
        raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
    model = outcome_model or OutcomeModel()
    root = Path(out_dir).expanduser().resolve()
    params = {"n_patients": int(n_patients), "seed": int(seed), "slide_size": [w, h],
              "mpp": float(mpp), "outcome_model": asdict(model), "label_maps": bool(label_maps),
              "generator_version": __version__, "generator_hash": _generator_hash()}
    manifest = root / "manifest.yaml"
    truth_path = root / "ground_truth.json"
    if truth_path.is_file() and manifest.is_file():
        try:
            old = json.loads(truth_path.read_text())
        except ValueError:
            old = {}
        if old.get("parameters") == params and all(
            (root / s["path"]).is_file() for s in old.get("slides", [])
        ):
            return manifest
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} is not empty and holds no synthetic cohort with these parameters; "
                "pass overwrite=True (--overwrite) or choose an empty folder")
        for sub in ("slides", "ground_truth"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for f in ("manifest.yaml", "slides.csv", "clinical.csv", "ground_truth.json"):
            (root / f).unlink(missing_ok=True)
    (root / "slides").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    patients, tasks = [], []
    width = max(3, len(str(n_patients)))
    for i in range(n_patients):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, 0)))
        comp, n_slides = _latent(rng)
        pid = f"P{i + 1:0{width}d}"
        sids = [f"{pid}-S{j + 1}" for j in range(n_slides)]
        patients.append({"patient_id": pid, "slides": sids, "latent": asdict(comp)})
        for j, sid in enumerate(sids):
            tasks.append({"seed": int(seed), "patient_index": i, "slide_index": j + 1,
                          "slide_id": sid, "composition": asdict(comp), "shape": (h, w),
                          "mpp": float(mpp), "root": str(root), "label_maps": label_maps})

    jobs = n_jobs if n_jobs is not None else min(4, os.cpu_count() or 1)
    results: dict[str, dict] = {}
    if jobs <= 1:
        for t in tasks:
            results[t["slide_id"]] = _make_slide(t)
            if progress:
                print(f"  slide {len(results)}/{len(tasks)} {t['slide_id']}", flush=True)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for t, res in zip(tasks, pool.map(_make_slide, tasks)):
                results[t["slide_id"]] = res
                if progress:
                    print(f"  slide {len(results)}/{len(tasks)} {t['slide_id']}", flush=True)

    # realised patient composition -> planted outcomes
    pooled = {p["patient_id"]: pool_patient([results[s]["composition"] for s in p["slides"]])
              for p in patients}
    feats = pd.DataFrame.from_dict(pooled, orient="index")
    out_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_OUTCOME_KEY,)))
    clinical, truth = simulate_outcomes(feats, out_rng, model)

    slides = pd.DataFrame({
        "slide_id": [t["slide_id"] for t in tasks],
        "patient_id": [t["slide_id"].rsplit("-", 1)[0] for t in tasks],
        "path": [f"slides/{t['slide_id']}.tiff" for t in tasks],
        "mpp": [float(mpp)] * len(tasks),
    })
    slides.to_csv(root / "slides.csv", index=False, lineterminator="\n")
    clinical.to_csv(root / "clinical.csv", index=False, lineterminator="\n",
                    float_format="%.2f")
    manifest.write_text(_manifest_text(label_maps))

    table = feats.join(clinical.set_index("patient_id"))
    for p in patients:
        row = clinical.set_index("patient_id").loc[p["patient_id"]]
        p["realised"] = {k: float(v) for k, v in pooled[p["patient_id"]].items()}
        p["age"] = int(row["age"])
        p["stage"] = int(row["stage"])
        p["linear_predictor"] = truth["linear_predictor"][p["patient_id"]]
    planted = [dict(e, outcome="survival", model="cox") for e in truth["survival"]["effects"]]
    planted += [dict(e, outcome="label", model="logistic") for e in truth["diagnostic"]["effects"]]
    doc = {
        "generator": "pathxai.datasets.make_synthetic_cohort",
        "parameters": params,
        "seed": int(seed),
        "n_patients": int(n_patients),
        "n_slides": len(tasks),
        "mpp": float(mpp),
        "planted_effects": planted,
        "feature_definitions": {
            "density_per_mm2__lymphocyte__in__tumor":
                "lymphocyte nuclei whose centroid (pixel mean, rounded with numpy.rint) lies "
                "in tumor, per mm² of tumor area; pooled over a patient's slides",
            "area_fraction__necrosis":
                "necrosis area / tissue area (tissue = all labels but background); pooled",
            "ratio__tumor__to__stroma": "tumor area / stroma area; pooled",
        },
        "generative_model": _outcomes_module.__doc__.strip(),
        "survival": {k: v for k, v in truth["survival"].items()},
        "diagnostic": truth["diagnostic"],
        "oracle_fit_on_realised_values": _oracle_fits(table),
        "tissue_codes": TISSUE_CODES,
        "nucleus_type_codes": NUCLEUS_TYPE_CODES,
        "patients": patients,
        "slides": [
            {"slide_id": t["slide_id"], "patient_id": t["slide_id"].rsplit("-", 1)[0],
             "path": f"slides/{t['slide_id']}.tiff",
             "masks": f"ground_truth/masks/{t['slide_id']}",
             "realised": results[t["slide_id"]]["composition"],
             "stain": results[t["slide_id"]]["stain"]}
            for t in tasks
        ],
    }
    truth_path.write_text(json.dumps(_jsonable(doc), indent=1, sort_keys=False) + "\n")
    if progress:
        print(f"synthetic cohort: {n_patients} patients, {len(tasks)} slides in "
              f"{time.perf_counter() - t0:.1f} s -> {manifest}", flush=True)
    return manifest


def _generator_hash() -> str:
    """SHA-256 (first 16 hex) of the generator's source files: a code change invalidates
    a cached cohort."""
    import hashlib

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("fields.py", "nuclei.py", "render.py", "composition.py", "outcomes.py",
                 "synthetic.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def _jsonable(obj):
    """Plain-JSON copy (tuples -> lists, numpy scalars -> Python, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None
    return obj

