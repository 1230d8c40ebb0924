"""The work of a cohort run, stage by stage.

Per slide (one task each, run by :mod:`pathxai.pipeline.executors`):
:func:`process_slide` opens the slide, segments every prompt (each tile encoded
once for all prompts), computes the slide's features and writes, under
``out_dir/slides/<slide_id>/``::

    masks/<slug>.png|.tif, masks/meta.json   the plain mask layout (features input)
    masks/SEGMENTED.json                     segmentation completion record (its cache key)
    features.csv                             one row: slide_id + every feature
    areas.json                               area (mm²) of every prompt's mask + tissue
    qc/thumbnail.jpg, qc/<slug>.jpg          thumbnail and mask overlays for the report
    DONE.json                                completion record, written last

Per cohort: :func:`collect_slide_tables` stacks the per-slide rows,
:func:`qc_area_table` flags slides whose areas are outliers (robust z),
and :func:`run_statistics` calls :func:`pathxai.stats.analyze`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import PipelineError
from pathxai.pipeline.completion import mark_complete, safe_slide_dir
from pathxai.pipeline.io import (
    atomic_write_csv,
    atomic_write_jpeg,
    atomic_write_json,
    read_json,
    safe_join,
)

__all__ = [
    "SlideJob",
    "get_predictor",
    "model_fingerprint",
    "process_slide",
    "slide_dir_for",
    "collect_slide_tables",
    "qc_area_table",
    "robust_z",
    "run_statistics",
    "OVERLAY_COLORS",
    "overlay",
]

log = logging.getLogger("pathxai.pipeline")

#: RGB overlay colour per prompt position in the QC images (colour-blind friendly, Okabe-Ito)
OVERLAY_COLORS: tuple[tuple[int, int, int], ...] = (
    (213, 94, 0),
    (0, 114, 178),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (240, 228, 66),
    (0, 0, 0),
)

SEGMENTED_NAME = "SEGMENTED.json"


# --------------------------------------------------------------------------- records
def slide_dir_for(out_dir: str | os.PathLike, slide_id: str) -> Path:
    """``out_dir/slides/<slide_id>``, refusing ids that would leave ``out_dir``.

    Raises
    ------
    PipelineError
        For ids that are empty, start with ``.``, or contain ``/``, ``\\``, ``..``,
        NUL or control characters (see :func:`pathxai.pipeline.completion.safe_slide_dir`).
    """
    path = Path(safe_slide_dir(out_dir, slide_id))
    safe_join(out_dir, "slides", path.name)  # belt and braces: never outside out_dir
    return path


# --------------------------------------------------------------------------- models
_PREDICTORS: dict[str, Any] = {}


def _default_device() -> str:
    from pathxai.pipeline.executors import default_device

    return str(default_device())


def get_predictor(model: str) -> Any:
    """The segmentation predictor for ``model``, loaded once per process.

    Parameters
    ----------
    model : str
        ``"stain"`` for the classical colour-deconvolution baseline
        (:class:`pathxai.segment.StainSegmentor`); anything else is a checkpoint name
        or folder for :meth:`pathxai.segment.Segmentor.from_pretrained` (``"default"``
        = the shipped checkpoint).

    Raises
    ------
    CheckpointError
        If the checkpoint cannot be found or loaded.
    """
    if model in _PREDICTORS:
        return _PREDICTORS[model]
    from pathxai import segment

    if model == "stain":
        predictor = segment.StainSegmentor()
    else:
        device = _default_device()
        try:
            predictor = segment.Segmentor.from_pretrained(model, device=device)
        except TypeError:  # from_pretrained without a device argument
            predictor = segment.Segmentor.from_pretrained(model)
    _PREDICTORS[model] = predictor
    return predictor


def model_fingerprint(model: str) -> dict[str, Any]:
    """Name, class and content hash of the model ``model`` resolves to.

    The hash is the checkpoint's SHA-256 when the predictor exposes one (or its
    checkpoint files), else a hash of its configuration (for the stain baseline).
    It enters the segmentation cache key, so a new checkpoint re-segments.
    """
    from pathxai.pipeline.cache import hash_file, hash_params

    predictor = get_predictor(model)
    info: dict[str, Any] = {"name": model, "class": type(predictor).__name__}
    sha = None
    for attr in ("checkpoint_sha256", "checkpoint_hash", "sha256"):
        value = getattr(predictor, attr, None)
        if isinstance(value, str) and value:
            sha = value
            break
    if sha is None:
        for attr in ("checkpoint_path", "weights_path"):
            value = getattr(predictor, attr, None)
            if value and Path(value).is_file():
                sha = hash_file(value)
                info["checkpoint"] = str(value)
                break
    if sha is None:
        config = None
        for attr in ("config", "params", "get_params"):
            value = getattr(predictor, attr, None)
            if value is not None:
                config = value() if callable(value) else value
                break
        config = config if config is not None else vars(predictor)
        sha = hash_params({"class": type(predictor).__name__, "config": _plain(config)})
    info["sha256"] = sha
    for attr in ("mpp", "tile_size"):
        value = getattr(predictor, attr, None)
        if isinstance(value, (int, float)):
            info[attr] = value
    post = getattr(predictor, "postprocess", None)
    if isinstance(post, dict):   # thresholds and mask cleaning: a change re-segments
        info["postprocess"] = _plain(post)
    return info


def _plain(obj: Any) -> Any:
    """Configuration as JSON-like values (arrays and modules by repr)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


# --------------------------------------------------------------------------- per slide
@dataclass(frozen=True)
class SlideJob:
    """Everything one slide's task needs (small and picklable).

    Attributes
    ----------
    slide_id, patient_id : str
        Ids from the cohort's slides table.
    path : str
        Absolute slide file path.
    mpp : float or None
        µm/px override at level 0 (None = from the file's metadata).
    out_dir : str
        The run's output folder; the slide writes only inside
        ``out_dir/slides/<slide_id>``.
    prompts : tuple of str
        Text prompts to segment.
    model : str
        Predictor name for :func:`get_predictor`.
    segment_key, key : str
        Cache keys of the segmentation and of the whole slide task (segmentation +
        features + QC).
    qc_size : int
        Longest side, in pixels, of the QC thumbnail.
    segment_options : dict
        Extra keyword arguments for ``segment_slide`` (tile size, batch size, ...).
    """

    slide_id: str
    patient_id: str
    path: str
    mpp: float | None
    out_dir: str
    prompts: tuple[str, ...]
    model: str
    segment_key: str
    key: str
    qc_size: int = 256
    segment_options: dict = field(default_factory=dict)


def _read_mask(path: Path) -> np.ndarray:
    """A mask image as a 2-D array (PNG via Pillow, TIFF via tifffile)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


def _mask_files(masks_dir: Path) -> dict[str, Path]:
    """Region-mask files of a slide folder by slug (instances and tissue excluded)."""
    out: dict[str, Path] = {}
    for p in sorted(masks_dir.iterdir()):
        if p.suffix.lower() not in (".png", ".tif", ".tiff") or p.name.startswith("."):
            continue
        stem = p.name[: -len(p.suffix)]
        if stem.endswith(".instances"):
            continue
        out[stem] = p
    return out


def _resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask resized to ``shape`` (rows, cols) by area-majority (PIL box filter)."""
    from PIL import Image

    im = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    small = im.resize((shape[1], shape[0]), Image.Resampling.BOX)
    return np.asarray(small) >= 128


def overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], *, alpha: float = 0.45) -> np.ndarray:
    """Tint ``mask`` pixels of an RGB image and draw the mask's outline.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    mask : ndarray (H, W) bool
    color : (r, g, b)
    alpha : float
        Opacity of the fill in [0, 1].

    Returns
    -------
    ndarray (H, W, 3) uint8
    """
    from scipy import ndimage

    out = image.astype(np.float32).copy()
    c = np.asarray(color, np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * c
    edge = mask & ~ndimage.binary_erosion(mask, iterations=1)
    out[edge] = c
    return np.clip(out, 0, 255).astype(np.uint8)


def _segment(predictor: Any, reader: Any, prompts: list[str], masks_dir: Path, options: dict) -> None:
    """Run the predictor's whole-slide segmentation into ``masks_dir``."""
    try:
        from pathxai.segment.slide import segment_slide
    except ImportError:
        segment_slide = None
    if segment_slide is not None:
        segment_slide(predictor, reader, prompts, out_dir=masks_dir, **options)
    else:
        predictor.segment_slide(reader, prompts, out_dir=masks_dir, **options)


def _find_masks_dir(masks_root: Path, slide_id: str) -> Path:
    """The folder holding the slide's mask files (``masks/`` or ``masks/<slide_id>/``)."""
    if (masks_root / "meta.json").is_file() or any(
        p.suffix.lower() in (".png", ".tif", ".tiff") for p in masks_root.iterdir() if p.is_file()
    ):
        return masks_root
    nested = masks_root / slide_id
    if nested.is_dir():
        return nested
    subdirs = [p for p in masks_root.iterdir() if p.is_dir()]
    if len(subdirs) == 1:
        return subdirs[0]
    raise PipelineError(f"segmentation wrote no masks under {str(masks_root)!r}")


def process_slide(job: SlideJob) -> dict[str, Any]:
    """Segment one slide, compute its features and QC images; the per-slide task.

    Skips the segmentation when ``masks/SEGMENTED.json`` carries ``job.segment_key``
    (e.g. only the feature code changed). Writes the completion record last.

    Returns
    -------
    dict
        ``slide_id``, ``segmented`` (bool: segmentation computed now), ``seconds``
        (per step) and ``n_features``: small, so it can travel back from a worker.
    """
    from pathxai.features import features_from_folder
    from pathxai.slides import open_slide

    t0 = time.perf_counter()
    slide_dir = slide_dir_for(job.out_dir, job.slide_id)
    slide_dir.mkdir(parents=True, exist_ok=True)
    masks_root = slide_dir / "masks"
    timings: dict[str, float] = {}

    record = read_json(masks_root / SEGMENTED_NAME)
    segmented_now = not (isinstance(record, dict) and record.get("key") == job.segment_key)
    with open_slide(job.path, mpp=job.mpp) as reader:
        if segmented_now:
            if masks_root.exists():
                import shutil

                shutil.rmtree(masks_root)
            masks_root.mkdir(parents=True)
            predictor = get_predictor(job.model)
            _segment(predictor, reader, list(job.prompts), masks_root, dict(job.segment_options))
            atomic_write_json(masks_root / SEGMENTED_NAME, {"key": job.segment_key})
        timings["segment_s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        masks_dir = _find_masks_dir(masks_root, job.slide_id)
        meta = read_json(masks_dir / "meta.json", {}) or {}
        mask_mpp = meta.get("mpp")
        feats = features_from_folder(masks_dir)
        row = pd.DataFrame([feats.to_dict()])
        row.insert(0, "slide_id", job.slide_id)
        atomic_write_csv(slide_dir / "features.csv", row)
        timings["features_s"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        thumb = reader.thumbnail(job.qc_size)
    areas = _write_qc(slide_dir, masks_dir, thumb, list(job.prompts), mask_mpp, meta.get("n_tiles"))
    if meta.get("n_tiles") == 0:
        log.warning("slide %s: no tissue tile was segmented; its masks are empty", job.slide_id)
    timings["qc_s"] = time.perf_counter() - t2

    payload = {
        "slide_id": job.slide_id,
        "patient_id": job.patient_id,
        "segment_key": job.segment_key,
        "segmented": segmented_now,
        "mask_mpp": mask_mpp,
        "n_features": int(row.shape[1] - 1),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    mark_complete(slide_dir, job.key, payload)
    return {**payload, "areas": areas}


def _prompt_slug(prompt: str) -> str:
    """The file slug the segmentor uses for ``prompt`` (via ``parse_prompt``)."""
    try:
        from pathxai.segment import parse_prompt

        return str(parse_prompt(prompt).slug)
    except Exception:  # unknown prompt text is the segmentor's error to raise, not QC's
        return prompt.lower().replace(" ", "_").replace("-", "_")


def _write_qc(
    slide_dir: Path, masks_dir: Path, thumb: np.ndarray, prompts: list[str], mask_mpp: float | None,
    n_tiles: int | None = None,
) -> dict[str, float]:
    """QC thumbnail + one overlay per prompt; mask areas (mm²) to ``areas.json``."""
    qc_dir = slide_dir / "qc"
    atomic_write_jpeg(qc_dir / "thumbnail.jpg", thumb)
    files = _mask_files(masks_dir)
    areas: dict[str, float] = {}
    overlays: list[dict[str, str]] = []
    for i, prompt in enumerate(prompts):
        slug = _prompt_slug(prompt)
        path = files.get(slug)
        if path is None:
            log.warning("slide %s: no mask file for prompt %r (slug %r)", slide_dir.name, prompt, slug)
            continue
        mask = _read_mask(path) > 0
        if mask_mpp:
            areas[slug] = float(mask.sum()) * float(mask_mpp) ** 2 / 1e6
        small = _resize_nearest(mask, thumb.shape[:2])
        over = overlay(thumb, small, OVERLAY_COLORS[i % len(OVERLAY_COLORS)])
        atomic_write_jpeg(qc_dir / f"{slug}.jpg", over)
        overlays.append({"prompt": prompt, "slug": slug, "file": f"qc/{slug}.jpg"})
    if "tissue" in files and "tissue" not in areas and mask_mpp:
        tissue = _read_mask(files["tissue"]) > 0
        areas["tissue"] = float(tissue.sum()) * float(mask_mpp) ** 2 / 1e6
    atomic_write_json(
        slide_dir / "areas.json",
        {"mpp": mask_mpp, "area_mm2": areas, "overlays": overlays, "n_tiles": n_tiles},
    )
    return areas


# --------------------------------------------------------------------------- cohort
def collect_slide_tables(out_dir: str | os.PathLike, slide_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stack the per-slide feature rows and area records of finished slides.

    Returns
    -------
    features : DataFrame
        One row per slide (``slide_id`` + features), in ``slide_ids`` order.
    areas : DataFrame
        One row per slide: ``slide_id`` and ``area_mm2__<slug>`` per prompt.
    """
    feats, areas = [], []
    for sid in slide_ids:
        sdir = slide_dir_for(out_dir, sid)
        feats.append(pd.read_csv(sdir / "features.csv", dtype={"slide_id": str}))
        rec = read_json(sdir / "areas.json", {}) or {}
        areas.append({
            "slide_id": sid,
            **{f"area_mm2__{k}": v for k, v in rec.get("area_mm2", {}).items()},
            "n_tiles": rec.get("n_tiles"),
        })
    ftab = pd.concat(feats, ignore_index=True) if feats else pd.DataFrame({"slide_id": []})
    atab = pd.DataFrame(areas) if areas else pd.DataFrame({"slide_id": []})
    return ftab, atab


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores ``(x - median) / (1.4826 · MAD)``; 0 where MAD is 0.

    The factor 1.4826 makes the MAD a consistent estimate of the SD for normal data
    (Iglewicz & Hoaglin 1993, who flag ``|z| > 3.5``).
    """
    x = np.asarray(values, dtype=float)
    med = np.nanmedian(x) if np.isfinite(x).any() else np.nan
    mad = 1.4826 * np.nanmedian(np.abs(x - med)) if np.isfinite(x).any() else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - med) / mad
    z[~np.isfinite(z)] = 0.0
    return z


def qc_area_table(areas: pd.DataFrame, *, threshold: float = 3.5) -> pd.DataFrame:
    """Add robust z-scores per area column and a ``flagged`` column (any ``|z| > threshold``).

    Parameters
    ----------
    areas : DataFrame
        From :func:`collect_slide_tables` (``slide_id`` + ``area_mm2__*`` columns).
    threshold : float
        Robust-z cut-off for an outlier (3.5 after Iglewicz & Hoaglin).

    Returns
    -------
    DataFrame
        ``areas`` plus ``z__<slug>`` per area column, ``max_abs_z``, ``flagged`` (bool)
        and ``flag_reason`` (which areas are unusual, in words). A slide with
        ``n_tiles == 0`` (no tissue tile segmented) is flagged whatever its z.
    """
    out = areas.copy()
    cols = [c for c in areas.columns if c.startswith("area_mm2__")]
    zcols = []
    for c in cols:
        zc = "z__" + c[len("area_mm2__"):]
        out[zc] = robust_z(out[c].to_numpy(dtype=float))
        zcols.append(zc)
    no_tiles = (
        pd.to_numeric(out["n_tiles"], errors="coerce").eq(0).to_numpy()
        if "n_tiles" in out else np.zeros(len(out), bool)
    )
    out["max_abs_z"] = out[zcols].abs().max(axis=1) if zcols else 0.0
    reasons = []
    for i, (_, r) in enumerate(out.iterrows()):
        bad = ["no tissue tile was segmented (empty masks)"] if no_tiles[i] else []
        bad += [
            f"{c[3:].replace('_', ' ')} area {'high' if r[c] > 0 else 'low'} (z={r[c]:+.1f})"
            for c in zcols
            if abs(r[c]) > threshold
        ]
        reasons.append("; ".join(bad))
    out["flagged"] = [bool(x) for x in reasons]
    out["flag_reason"] = reasons
    return out


def run_statistics(
    patient_features: pd.DataFrame,
    cohort: Any,
    params: dict[str, Any],
    stats_dir: Path,
) -> Any:
    """Run :func:`pathxai.stats.analyze` on patient features and save its outputs.

    Parameters
    ----------
    patient_features : DataFrame
        One row per patient, the cohort's patient id column + features.
    cohort : pathxai.cohort.Cohort
        Supplies the clinical table and column roles.
    params : dict
        ``seed``, ``n_bootstrap`` and any further keyword arguments of ``analyze``.
    stats_dir : Path
        Where ``analysis.save`` writes (tables, figures).

    Returns
    -------
    BiomarkerAnalysis
    """
    from pathxai.stats import analyze

    kwargs = dict(params)
    time_unit = getattr(cohort, "time_unit", None)
    if time_unit and "time_unit" not in kwargs:
        kwargs["time_unit"] = str(time_unit)
    analysis = analyze(
        patient_features,
        cohort.clinical,
        id_col=cohort.patient_col,
        time_col=cohort.time_col,
        event_col=cohort.event_col,
        label_col=cohort.label_col,
        covariates=list(cohort.covariates or []) or None,
        **kwargs,
    )
    stats_dir.mkdir(parents=True, exist_ok=True)
    analysis.save(stats_dir)
    # the report embeds every figure; save any that ``save`` did not write as PNG
    from pathxai.pipeline.io import atomic_save_figure

    fig_dir = stats_dir / "figures"
    for name, fig in (getattr(analysis, "figures", None) or {}).items():
        target = fig_dir / f"{name}.png"
        if not (stats_dir / f"{name}.png").exists() and not target.exists():
            atomic_save_figure(target, fig)
    _close_figures(analysis)
    return analysis


def _close_figures(analysis: Any) -> None:
    """Release matplotlib figures held by an analysis (memory on long runs)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    for fig in (getattr(analysis, "figures", None) or {}).values():
        plt.close(fig)

