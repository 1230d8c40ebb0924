"""Public entry points: features of one slide, of a folder of slides, and object tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import FeatureError, MaskInputError
from pathxai.features.masks_io import SlideMasks, check_mpp, read_mask_folder
from pathxai.features.registry import (
    FeatureParams,
    FeatureSpec,
    match_feature,
    normalise_extra,
    user_features,
)
from pathxai.features.slide_accumulator import accumulate_slide

__all__ = ["compute_features", "features_from_folder", "features_table", "object_table", "slide_dirs"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _as_slide(masks: Mapping[str, Any] | SlideMasks, *, mpp: float | None, instances, tissue, image,
              slide_id: str = "slide") -> SlideMasks:
    if isinstance(masks, SlideMasks):
        if mpp is None:
            return masks
        return replace(masks, mpp=check_mpp(mpp, where=f"slide {masks.slide_id!r}"))
    if masks is not None and not isinstance(masks, Mapping):
        raise MaskInputError(
            f"masks must be a mapping category name -> (H, W) array (or a SlideMasks); "
            f"got {type(masks).__name__}"
        )
    slide = SlideMasks(slide_id=slide_id, mpp=check_mpp(mpp, where=f"slide {slide_id!r}"))
    for name, arr in (masks or {}).items():
        key = str(name).strip().lower().replace("_", " ")
        slide.regions[key] = np.asarray(arr) != 0
        slide.sources[key] = f"masks[{name!r}]"
    for name, arr in (instances or {}).items():
        key = str(name).strip().lower().replace("_", " ")
        a = np.asarray(arr)
        if not np.issubdtype(a.dtype, np.integer):
            raise MaskInputError(f"instances[{name!r}]: labels must be integers; got dtype {a.dtype}")
        slide.instances[key] = a
        slide.sources[f"{key}.instances"] = f"instances[{name!r}]"
    if tissue is not None:
        slide.tissue = np.asarray(tissue) != 0
        slide.sources["tissue"] = "tissue"
    if image is not None:
        slide.image = np.asarray(image)
        slide.sources["image"] = "image"
    return slide


def _extra_values(specs: list[FeatureSpec], slide: SlideMasks, objects: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for spec in specs:
        try:
            value = spec.function(slide, objects)
        except Exception as exc:  # noqa: BLE001 - name the user's feature in the error
            raise FeatureError(f"extra feature {spec.name!r} failed on slide {slide.slide_id!r}: {exc}") from exc
        items = value.items() if isinstance(value, Mapping) else [(spec.name, value)]
        for name, v in items:
            if spec.match(name) is None:
                raise FeatureError(
                    f"extra feature {spec.name!r} returned {name!r}, which does not match its name pattern"
                )
            try:
                out[name] = float(v)
            except (TypeError, ValueError) as exc:
                raise FeatureError(f"extra feature {name!r} returned {v!r}, not a number") from exc
    return out


def _run(slide: SlideMasks, *, extra_features, categories, params, tile_size) -> tuple[pd.Series, pd.DataFrame]:
    slide.validate(categories)
    feats, objects = accumulate_slide(slide, params=params, tile_size=tile_size)
    specs = [*user_features(), *normalise_extra(extra_features)]
    if specs:
        extra = _extra_values(specs, slide, objects)
        feats = pd.concat([feats, pd.Series(extra, dtype="float64")])
    unknown = [n for n in feats.index if match_feature(n, normalise_extra(extra_features)) is None]
    if unknown:  # a programming error: every produced column must be declared
        raise FeatureError(f"features without a registry entry: {unknown[:5]}")
    return feats, objects


def compute_features(masks: Mapping[str, Any] | SlideMasks | None = None, *, mpp: float | None,
                     instances: Mapping[str, Any] | None = None, tissue: Any = None,
                     image: Any = None,
                     extra_features: Iterable[FeatureSpec | Mapping[str, Any]] | None = None,
                     categories: Iterable[str] | None = None, params: FeatureParams | None = None,
                     tile_size: int | None = None) -> pd.Series:
    """Morphometric features of one slide, in physical units.

    Parameters
    ----------
    masks : mapping of str -> ndarray, shape (H, W), or SlideMasks
        Binary region masks by category name (``"tumor"``, ``"adipose tissue"``, ...; non-zero
        = inside).
    mpp : float
        µm per pixel of the masks (required: :class:`~pathxai.exceptions.MissingMPPError`
        when None; for a SlideMasks its own mpp is used when None is given).
    instances : mapping of str -> ndarray of int, shape (H, W), optional
        Instance label images by object category (0 = background, k = object k).
    tissue : ndarray, shape (H, W), optional
        Tissue mask; default the union of all regions and objects.
    image : ndarray of uint8, shape (H, W, 3), optional
        RGB image at the masks' resolution; adds intensity/texture features.
    extra_features : iterable of FeatureSpec or mapping, optional
        User features (``name``, ``unit``, ``definition``, ``function(slide, objects)``).
    categories : iterable of str, optional
        Category names to accept besides the contract's and the ontology's.
    params : FeatureParams, optional
        Distances, radii and grid of the spatial features.
    tile_size : int, optional
        Process in tiles of this many pixels (bounded memory; same results).

    Returns
    -------
    Series
        Feature name -> value (float), names as in :func:`list_features`.
    """
    if isinstance(masks, SlideMasks) and mpp is None:
        mpp = masks.mpp
    slide = _as_slide(masks, mpp=mpp, instances=instances, tissue=tissue, image=image)
    feats, _ = _run(slide, extra_features=extra_features, categories=categories, params=params,
                    tile_size=tile_size)
    return feats


def object_table(masks: Mapping[str, Any] | SlideMasks | str | Path | None = None, *,
                 mpp: float | None = None, instances: Mapping[str, Any] | None = None,
                 tissue: Any = None, image: Any = None, categories: Iterable[str] | None = None,
                 params: FeatureParams | None = None, tile_size: int | None = None) -> pd.DataFrame:
    """Per-object table of one slide (a slide folder path, a SlideMasks or arrays).

    Returns
    -------
    DataFrame
        One row per object: ``object`` (category), ``label``, ``centroid_row``/``centroid_col``
        (px), ``x_um``/``y_um``, ``area_um2``, ``perimeter_um``, ``equivalent_diameter_um``,
        ``major_axis_um``, ``minor_axis_um``, ``eccentricity``, ``orientation_rad``, ``solidity``,
        ``circularity``, texture columns when an image is given, ``in__{region}`` and
        ``distance_um__{region}``.
    """
    if isinstance(masks, (str, Path)):
        slide = read_mask_folder(masks, mpp=mpp, image=image, categories=categories)
    else:
        if isinstance(masks, SlideMasks) and mpp is None:
            mpp = masks.mpp
        slide = _as_slide(masks, mpp=mpp, instances=instances, tissue=tissue, image=image)
    slide.validate(categories)
    _, objects = accumulate_slide(slide, params=params, tile_size=tile_size)
    objects.insert(0, "slide_id", slide.slide_id)
    return objects


def _find_image(image_dir: str | Path | None, slide_id: str) -> Path | None:
    if image_dir is None:
        return None
    for suf in _IMAGE_SUFFIXES:
        p = Path(image_dir) / f"{slide_id}{suf}"
        if p.is_file():
            return p
    return None


def features_from_folder(slide_dir: str | Path, *, mpp: float | None = None,
                         image: str | Path | np.ndarray | None = None,
                         extra_features: Iterable[FeatureSpec | Mapping[str, Any]] | None = None,
                         categories: Iterable[str] | None = None, params: FeatureParams | None = None,
                         tile_size: int | None = None, return_objects: bool = False):
    """Features of one slide folder of the plain layout (mpp from ``meta.json`` if not given).

    Returns
    -------
    Series, or (Series, DataFrame) when ``return_objects``
    """
    slide = read_mask_folder(slide_dir, mpp=mpp, image=image, categories=categories)
    feats, objects = _run(slide, extra_features=extra_features, categories=categories,
                          params=params, tile_size=tile_size)
    if return_objects:
        objects.insert(0, "slide_id", slide.slide_id)
        return feats, objects
    return feats


def slide_dirs(masks_root: str | Path) -> list[Path]:
    """Slide folders under a masks root (sub-folders holding at least one image file)."""
    root = Path(masks_root)
    if not root.is_dir():
        raise MaskInputError(f"{root}: masks folder not found")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and any(
        p.suffix.lower() in (".png", ".tif", ".tiff") for p in d.iterdir()))
    if not dirs:
        raise MaskInputError(
            f"{root}: no slide folders with masks (expected <masks>/<slide_id>/<category>.png)"
        )
    return dirs


def features_table(masks_root: str | Path, *, mpp: float | None = None,
                   image_dir: str | Path | None = None,
                   extra_features: Iterable[FeatureSpec | Mapping[str, Any]] | None = None,
                   categories: Iterable[str] | None = None, params: FeatureParams | None = None,
                   tile_size: int | None = None, objects_out: str | Path | None = None) -> pd.DataFrame:
    """One row per slide folder under ``masks_root``, one column per feature, plus ``slide_id``.

    Parameters
    ----------
    masks_root : path
        ``<masks>`` holding ``<slide_id>/`` folders of the plain layout.
    mpp : float, optional
        µm/px for every slide; default each folder's ``meta.json``.
    image_dir : path, optional
        Folder of ``<slide_id>.png|.jpg|.tif`` images at the masks' resolution.
    objects_out : path, optional
        Write the per-object table of all slides there (Parquet, or CSV by suffix).

    Returns
    -------
    DataFrame
        Features missing for a slide (e.g. a category absent there) are NaN, except counts
        and areas of categories absent from a slide, which are 0.
    """
    rows, objs = [], []
    for d in slide_dirs(masks_root):
        feats, obj = features_from_folder(
            d, mpp=mpp, image=_find_image(image_dir, d.name), extra_features=extra_features,
            categories=categories, params=params, tile_size=tile_size, return_objects=True)
        rows.append(feats.rename(d.name))
        if objects_out is not None:
            objs.append(obj)
    table = pd.DataFrame(rows)
    zero_cols = [c for c in table.columns if c.startswith(("count__", "area_mm2__", "n_components__",
                                                            "perimeter_mm__", "interface_length_mm__"))]
    table[zero_cols] = table[zero_cols].fillna(0.0)
    ids = pd.DataFrame({"slide_id": [str(i) for i in table.index]})
    table = pd.concat([ids, table.reset_index(drop=True)], axis=1)
    if objects_out is not None:
        write_table(pd.concat(objs, ignore_index=True) if objs else pd.DataFrame(), objects_out)
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as Parquet (``.parquet``/``.pq``) or CSV (``.csv``) by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".parquet", ".pq"):
        table.to_parquet(path, index=False)
    elif suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        raise FeatureError(f"{path}: output must end in .csv or .parquet")
    return path

