"""Score a segmentation predictor on an image-mask index (the ``shared/data/index.csv`` format).

For every row the prompt is the PathSegmentor template
``"{structure}-level {category} in {region} pathology"``, the target is ``mask > 0``, and
Dice, IoU (and AJI for instance masks, when the predictor returns instances) are computed
on the image's own grid. Rows are grouped into ``(dataset, category)`` records with the mean
Dice and a seeded percentile bootstrap CI that resamples **images**.

Images from one slide or patient are correlated, so an image-level CI is too narrow for
sets like ``camelyon_mini`` (probably one or a few slides), ``ocdc`` (one slide) or
``bcss_mini`` (two source ROIs). Each record therefore also gives ``n_clusters`` and a
cluster-bootstrap CI (``dice_ci_low_cluster``/``dice_ci_high_cluster``) that resamples whole
clusters (:data:`CLUSTER_RULES`); it is NaN when there is only one cluster, which is the
honest answer there: between-slide variability cannot be estimated from one slide.

Scale: images whose ``mpp`` is empty are given to the predictor with an assumed µm/px from
:data:`ASSUMED_MPP` (the table is copied into the JSON output).

**Absent-object check** (``absent``): prompts for objects known to be absent must give empty
masks. Used: every tissue-level index category on ``kather2016`` tiles of a different class
(the tile is one tissue class by construction) and all of them on its ``08_EMPTY`` glass
tiles, and every index category on the blank-glass tiles of ``tiles_unlabelled``. The rate of
empty masks is reported per category. Exception (:data:`MAY_CONTAIN`): Kather's tiles are
labelled by their predominant class, and tumour-epithelium, normal-mucosa and debris tiles
routinely hold some stroma (desmoplastic septa, lamina propria, stroma around necrotic
debris), so ``stroma`` is not counted as known-absent there; those prompts are still run and
reported as ``reason`` "... (may contain stroma)" rows with ``counted = False``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.datasets.index import load_image, load_pair, read_index
from pathxai.exceptions import UnknownPromptError, UnsupportedPromptError
from pathxai.segment.metrics import aji, bootstrap_mean_ci, dice, iou

__all__ = ["ASSUMED_MPP", "CLUSTER_RULES", "evaluate_index", "assumed_mpp", "iter_targets",
           "row_prompt", "summary_table"]

#: dataset -> (µm/px, reason), used when a row's ``mpp`` is empty. cpm15 uses magnification.
ASSUMED_MPP: dict[str, tuple[float, str]] = {
    "glas": (0.62, "documented (challenge rescaled to 0.620 µm/px)"),
    "kather2016": (0.495, "documented"),
    "cpm15@20x": (0.50, "TCGA Aperio 20x nominal"),
    "cpm15@40x": (0.25, "TCGA Aperio 40x nominal"),
    "ocdc": (0.50, "20x scan per the dataset paper; typical 20x pixel size"),
    "camelyon_mini": (1.0, "undocumented; estimated from lymphocyte nuclei (~7 µm) spanning ~7 px, "
                           "i.e. about level 2 of a 0.24 µm/px CAMELYON scan"),
    "bcss_mini": (0.22, "BCSS ROIs are ~0.25 µm/px, enlarged upstream by 1-1.33x"),
    "ebhi_seg": (0.60, "undocumented; estimated from nuclei and goblet-cell sizes on the 512 px "
                       "images (400x refers to the original capture, the images were resized)"),
    "biomedparse_demo": (0.0625, "PanNuke 40x (~0.25 µm/px) tiles upscaled 4x by BiomedParse"),
    "tiles_unlabelled": (0.50, "undocumented; level-1 histolab fixtures, guess"),
    "@20x": (0.50, "fallback: 20x objective"),
    "@40x": (0.25, "fallback: 40x objective"),
    "@default": (0.50, "fallback: no magnification known"),
}

#: dataset -> how images are grouped into clusters for the cluster bootstrap
CLUSTER_RULES: dict[str, str] = {
    "glas": "patient_id from glas/grade.csv",
    "ebhi_seg": "case = file name before the first '-' (case-insensitive)",
    "bcss_mini": "source ROI id = file name before '_x'",
    "ocdc": "one slide (1009009): a single cluster",
    "camelyon_mini": "unknown slides: treated as a single cluster",
    "kather2016": "source image = tile id between '_' and '.tif'",
    "cpm15": "one TCGA tile per image",
    "biomedparse_demo": "one PanNuke tile per image",
}


def assumed_mpp(row: pd.Series | dict) -> tuple[float, str]:
    """µm/px to use for a row: its own ``mpp`` or the :data:`ASSUMED_MPP` entry, with the reason."""
    mpp = row.get("mpp")
    if mpp is not None and mpp == mpp and str(mpp) != "":
        return float(mpp), "index"
    ds = str(row.get("dataset", ""))
    mag = str(row.get("magnification", "") or "").lower()
    for key in (f"{ds}@{mag}", ds, f"@{mag}", "@default"):
        if key in ASSUMED_MPP:
            return ASSUMED_MPP[key][0], f"assumed ({key})"
    raise AssertionError("unreachable: @default is always present")  # pragma: no cover


def iter_targets(rows: pd.DataFrame) -> Iterator[tuple[pd.Series, np.ndarray, np.ndarray, float]]:
    """Each row of an index table with its image and target, for per-image analyses.

    Parameters
    ----------
    rows : DataFrame
        Rows of :func:`pathxai.datasets.index.read_index` (absolute ``image``/``mask`` paths).

    Yields
    ------
    row : Series
    image : ndarray of uint8, shape (H, W, 3)
    target : ndarray of bool, shape (H, W)
        ``mask > 0``, as :func:`evaluate_index` scores it.
    mpp : float
        µm per pixel of the image (:func:`assumed_mpp`).
    """
    for _, r in rows.iterrows():
        image, mask, _ = load_pair(r)
        yield r, image, np.asarray(mask) > 0, assumed_mpp(r)[0]


def row_prompt(row: pd.Series | dict) -> str:
    """The PathSegmentor prompt of an index row."""
    return f"{row['structure']}-level {row['category']} in {row['region']} pathology"


def _cluster(row: pd.Series, glas_patients: dict[str, str]) -> str:
    ds, stem = row["dataset"], Path(row["image"]).stem
    if ds == "glas":
        return "glas:" + glas_patients.get(stem, stem)
    if ds == "ebhi_seg":
        return "ebhi:" + stem.split("-")[0].lower()
    if ds == "bcss_mini":
        return "bcss:" + stem.split("_x")[0]
    if ds in ("ocdc", "camelyon_mini"):
        return ds
    if ds == "kather2016":
        part = stem.split("_", 1)[-1]
        return "kather:" + part.split(".tif")[0]
    return f"{ds}:{stem}"


def _glas_patients(root: Path) -> dict[str, str]:
    f = root / "glas" / "grade.csv"
    if not f.is_file():
        return {}
    g = pd.read_csv(f, dtype=str, keep_default_na=False)
    if "image_id" not in g or "patient_id" not in g:
        return {}
    return dict(zip(g["image_id"], g["patient_id"]))


def _predict_one(predictor, prompt: str):
    try:
        return predictor.predict([prompt])[0], "ok"
    except UnsupportedPromptError:
        return None, "unsupported"


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


#: Kather 2016 tile class -> categories such a tile may hold although another class
#: predominates (not counted as known-absent; see the module docstring)
MAY_CONTAIN = {"01_TUMOR": {"stroma"}, "05_DEBRIS": {"stroma"}, "06_MUCOSA": {"stroma"}}


def _absent_cases(root: Path, categories: pd.DataFrame) -> list[dict]:
    """(image path, mpp, prompt, reason) of known-absent objects (see module docstring)."""
    cases: list[dict] = []
    tissue_cats = categories[categories["structure"] == "tissue"]
    labels = root / "kather2016" / "labels.csv"
    if labels.is_file():
        lab = pd.read_csv(labels, dtype=str, keep_default_na=False)
        kather_cats = set(categories.loc[categories["dataset"] == "kather2016", "category"])
        from pathxai.segment.ontology import load_ontology

        onto = load_ontology()
        for _, r in lab.iterrows():
            # the tile's class as a canonical label (labels.csv names differ: "lymphocytes", ...)
            own = onto.map_dataset_class("kather2016", r["class"])
            if r["class"] == "08_EMPTY":
                absent = sorted(set(tissue_cats["category"]) - {"background"})
                reason = "glass tile (08_EMPTY)"
            elif r["class"] == "03_COMPLEX":
                absent = sorted(kather_cats & {"adipose tissue", "normal mucosa", "debris"})
                reason = "complex stroma tile"
            else:
                absent = sorted(c for c in kather_cats
                                if c in onto.labels and not onto.is_a(own, c) and not onto.is_a(c, own))
                reason = f"{r['class']} tile"
            maybe = MAY_CONTAIN.get(r["class"], set())
            for cat in absent:
                counted = cat not in maybe
                cases.append({"image": str(root / "kather2016" / r["file"]), "mpp": float(r["mpp"]),
                              "prompt": f"tissue-level {cat} in colon pathology", "category": cat,
                              "source": "kather2016", "counted": counted,
                              "reason": reason + ("" if counted else f" (may contain {cat})")})
    glass = root / "tiles_unlabelled" / "no-tissue.png"
    if glass.is_file():
        for _, c in categories.drop_duplicates(["category", "structure"]).iterrows():
            cases.append({"image": str(glass), "mpp": ASSUMED_MPP["tiles_unlabelled"][0],
                          "prompt": f"{c['structure']}-level {c['category']} in unspecified pathology",
                          "category": c["category"], "source": "tiles_unlabelled",
                          "reason": "blank glass", "counted": True})
    return cases


def summary_table(rows: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (dataset, category) mean Dice with image- and cluster-bootstrap CIs, mean AJI."""
    recs = []
    scored = rows[rows["status"] == "ok"]
    for (ds, cat), g in rows.groupby(["dataset", "category"], sort=True):
        s = scored[(scored["dataset"] == ds) & (scored["category"] == cat)]
        d = s["dice"].to_numpy(float)
        lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
        clo, chi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed, groups=s["cluster"].tolist())
        a = s["aji"].to_numpy(float) if "aji" in s else np.array([])
        a = a[np.isfinite(a)]
        recs.append({
            "dataset": ds, "category": cat, "n": int(len(s)),
            "n_unsupported": int((g["status"] == "unsupported").sum()),
            "dice": float(d.mean()) if d.size else float("nan"),
            "dice_ci_low": lo, "dice_ci_high": hi,
            "iou": float(s["iou"].mean()) if len(s) else float("nan"),
            "dice_all_ones": float(g["dice_all_ones"].mean()),
            "aji": float(a.mean()) if a.size else float("nan"),
            "n_clusters": int(s["cluster"].nunique()),
            "dice_ci_low_cluster": clo, "dice_ci_high_cluster": chi,
        })
    return pd.DataFrame(recs)


def evaluate_index(
    index: str | Path | pd.DataFrame,
    predictor: Any,
    *,
    split: str | Iterable[str] | None = None,
    datasets: str | Iterable[str] | None = None,
    out: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    absent_check: bool = True,
    root: str | Path | None = None,
    max_rows: int | None = None,
) -> dict:
    """Score ``predictor`` on every row of an index.

    Parameters
    ----------
    index : path or DataFrame
        An index CSV, or the DataFrame of :func:`pathxai.datasets.index.read_index`
        (absolute paths); filtering by ``split``/``datasets`` applies to both.
    predictor : object
        Anything with ``set_image(image, *, mpp)`` and ``predict(prompts) -> list[PromptResult]``
        (:class:`~pathxai.segment.Segmentor`, :class:`~pathxai.segment.StainSegmentor`).
        A valid prompt it cannot answer must raise ``UnsupportedPromptError``: the row is
        recorded as ``"unsupported"`` and not scored.
    split, datasets : str or iterable of str, optional
        Row filters.
    out : path, optional
        Write the result as JSON there.
    n_boot, seed : int
        Bootstrap resamples and seed.
    absent_check : bool
        Run the absent-object check (needs the ``kather2016``/``tiles_unlabelled`` folders
        beside the index; skipped when absent).
    root : path, optional
        Folder of the data (default: the index file's folder); used for ``glas/grade.csv``
        and the absent-object images.
    max_rows : int, optional
        Score only the first rows (smoke tests).

    Returns
    -------
    dict
        ``summary`` (list of records ``dataset, category, n, dice, dice_ci_low, dice_ci_high,
        iou, aji, n_clusters, dice_ci_low_cluster, dice_ci_high_cluster, n_unsupported`` and
        ``dice_all_ones``, the Dice of a trivial whole-image prediction, as a floor),
        ``rows`` (per-row results), ``absent`` (``summary`` and ``rows``), ``assumed_mpp``,
        ``cluster_rules``, ``predictor``, ``seconds``.
    """
    t_start = time.perf_counter()
    if isinstance(index, pd.DataFrame):
        df = index.copy()
        if split is not None:
            df = df[df["split"].isin([split] if isinstance(split, str) else list(split))]
        if datasets is not None:
            df = df[df["dataset"].isin([datasets] if isinstance(datasets, str) else list(datasets))]
        if root is None and len(df):
            root = Path(df["image"].iloc[0]).parents[2]  # <root>/<dataset>/images/<file>
        root = None if root is None else Path(root)
        index_name = "<DataFrame>"
    else:
        df = read_index(index, split=split, datasets=datasets)
        root = Path(root) if root is not None else Path(index).resolve().parent
        index_name = str(Path(index).resolve())
    df = df.reset_index(drop=True)
    if max_rows is not None:
        df = df.iloc[:max_rows]
    glas_patients = _glas_patients(root) if root is not None else {}

    rows: list[dict] = []
    for _image_path, group in df.groupby("image", sort=False):
        first = group.iloc[0]
        image, _, _ = load_pair(first)
        mpp, mpp_source = assumed_mpp(first)
        t0 = time.perf_counter()
        predictor.set_image(image, mpp=mpp)
        t_enc = time.perf_counter() - t0
        for _, r in group.iterrows():
            _, mask, _ = load_pair(r)
            prompt = row_prompt(r)
            t1 = time.perf_counter()
            res, status = _predict_one(predictor, prompt)
            rec = {
                "dataset": r["dataset"], "image_id": r["image_id"], "category": r["category"],
                "structure": r["structure"], "region": r["region"], "split": r["split"],
                "prompt": prompt, "mpp": mpp, "mpp_source": mpp_source,
                "cluster": _cluster(r, glas_patients), "status": status,
                "target_fraction": float((mask > 0).mean()),
                # reference: Dice of predicting the whole image (needs no model at all)
                "dice_all_ones": dice(np.ones(mask.shape, bool), mask > 0),
                "seconds": t_enc + time.perf_counter() - t1,
            }
            if res is not None:
                pred = np.asarray(res.mask, bool)
                rec.update({
                    "dice": dice(pred, mask > 0), "iou": iou(pred, mask > 0),
                    "presence": float(res.presence), "pred_fraction": float(pred.mean()),
                    "n_pred_objects": res.n_objects,
                })
                if r["mask_kind"] == "instance" and res.instances is not None:
                    rec["aji"] = aji(res.instances, mask)
                    rec["n_target_objects"] = int(np.unique(mask[mask > 0]).size)
            rows.append(rec)
    rows_df = pd.DataFrame(rows)
    for col in ("dice", "iou", "aji"):
        if col not in rows_df:
            rows_df[col] = np.nan
    summary = summary_table(rows_df, n_boot=n_boot, seed=seed) if len(rows_df) else pd.DataFrame()

    absent: dict[str, Any] = {"summary": [], "rows": []}
    if absent_check and root is not None:
        full = df if not isinstance(index, (str, Path)) else read_index(index, check_files=False)
        cats = full[["dataset", "category", "structure"]].drop_duplicates()
        a_rows = []
        case_df = pd.DataFrame(_absent_cases(root, cats))
        groups = case_df.groupby("image", sort=False) if len(case_df) else []
        for img_path, cases in groups:
            image = load_image(img_path)
            predictor.set_image(image, mpp=float(cases["mpp"].iloc[0]))
            for _, c in cases.iterrows():
                try:
                    res, status = _predict_one(predictor, c["prompt"])
                except UnknownPromptError:
                    res, status = None, "unknown"
                a_rows.append({
                    "image": Path(img_path).name, "source": c["source"], "reason": c["reason"],
                    "category": c["category"], "prompt": c["prompt"], "status": status,
                    "counted": bool(c["counted"]),
                    "empty": None if res is None else bool(not np.asarray(res.mask).any()),
                    "pred_fraction": None if res is None else float(np.asarray(res.mask).mean()),
                    "presence": None if res is None else float(res.presence),
                })
        a_df = pd.DataFrame(a_rows)
        if len(a_df):
            ok = a_df[(a_df["status"] == "ok") & a_df["counted"]]
            maybe = a_df[(a_df["status"] == "ok") & ~a_df["counted"]]
            absent["n_may_contain"] = int(len(maybe))
            absent["may_contain_empty_rate"] = (float(maybe["empty"].mean()) if len(maybe)
                                                else None)
            absent["may_contain_rule"] = {k: sorted(v) for k, v in MAY_CONTAIN.items()}
            absent["summary"] = [
                {"category": cat, "n": int(len(g)), "empty_rate": float(g["empty"].mean()),
                 "mean_pred_fraction": float(g["pred_fraction"].mean())}
                for cat, g in ok.groupby("category")
            ]
            absent["overall_empty_rate"] = float(ok["empty"].mean()) if len(ok) else None
            absent["n_unsupported"] = int((a_df["status"] != "ok").sum())
            absent["rows"] = a_rows

    result = {
        "index": index_name,
        "split": split if split is None or isinstance(split, str) else list(split),
        "datasets": datasets if datasets is None or isinstance(datasets, str) else list(datasets),
        "predictor": _describe_predictor(predictor),
        "summary": [{k: _nan_to_none(v) for k, v in rec.items()} for rec in summary.to_dict("records")],
        "rows": [{k: _nan_to_none(v) for k, v in rec.items()} for rec in rows_df.to_dict("records")],
        "absent": absent,
        "assumed_mpp": {k: {"mpp": v[0], "reason": v[1]} for k, v in ASSUMED_MPP.items()},
        "cluster_rules": CLUSTER_RULES,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "ci": 0.95, "method": "percentile"},
        "metric_notes": "Dice/IoU = 1 when prediction and target are both empty; "
                        "AJI as Kumar et al. 2017 (see pathxai.segment.metrics).",
        "seconds": time.perf_counter() - t_start,
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=_json_default))
    return result


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return _nan_to_none(float(o))
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


def _describe_predictor(predictor: Any) -> dict:
    info = {"class": type(predictor).__name__, "mpp": getattr(predictor, "mpp", None)}
    for attr in ("name", "checkpoint", "config"):
        val = getattr(predictor, attr, None)
        if isinstance(val, (str, int, float)) or val is None:
            info[attr] = val
    info.update(model_provenance(predictor))
    return info


def model_provenance(predictor: Any) -> dict:
    """The predictor's weights hash and mask rules (``checkpoint_hash``, ``postprocess``:
    thresholds, TTA, scales), where it has them; recorded with every output."""
    out = {}
    for attr in ("checkpoint_hash", "postprocess"):
        val = getattr(predictor, attr, None)
        if val is not None:
            out[attr] = val
    return out
