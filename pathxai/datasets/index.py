"""Reader and validator for image-mask-label indexes (the ``shared/data/index.csv`` format).

One row per (image, mask) pair; columns ``dataset, image, mask, category, structure, region,
mask_kind, mpp, magnification, split, source, license`` (``source`` and ``license`` optional
here). ``image`` and ``mask`` are paths relative to the index file's folder. ``mask_kind`` is
``instance`` (uint16, 0 = background, 1..N object ids) or ``binary`` (uint8 0/1). ``mpp`` is
µm per pixel where documented, otherwise empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import IndexFormatError

__all__ = ["INDEX_COLUMNS", "read_index", "load_pair", "load_image"]

#: columns every index must have
INDEX_COLUMNS: tuple[str, ...] = (
    "dataset", "image", "mask", "category", "structure", "region", "mask_kind", "mpp",
    "magnification", "split",
)
_STRUCTURES = {"tissue", "cell", "nuclei"}
_MASK_KINDS = {"instance", "binary"}


def read_index(
    path: str | Path,
    *,
    split: str | Iterable[str] | None = None,
    datasets: str | Iterable[str] | None = None,
    check_files: bool = True,
) -> pd.DataFrame:
    """Read and validate an index CSV.

    Parameters
    ----------
    path : str or Path
        The CSV file. Relative ``image``/``mask`` paths resolve against its folder.
    split : str or iterable of str, optional
        Keep only these splits (``"train"``, ``"test"``).
    datasets : str or iterable of str, optional
        Keep only these datasets.
    check_files : bool
        Report rows whose image or mask file does not exist.

    Returns
    -------
    DataFrame
        The rows kept, index reset, with ``image`` and ``mask`` as absolute path strings,
        ``mpp`` as float (NaN where empty) and an ``image_id`` column (image file stem).

    Raises
    ------
    IndexFormatError
        Listing every problem (missing columns, bad structure / mask kind / mpp, missing
        files, unknown split or dataset filter values).
    """
    path = Path(path)
    if not path.is_file():
        raise IndexFormatError(f"index file {str(path)!r} does not exist")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in df.columns]
    if missing:
        raise IndexFormatError(
            f"index {str(path)!r} lacks column(s) {missing}; expected at least {list(INDEX_COLUMNS)}"
        )
    problems: list[str] = []
    for col, allowed in (("structure", _STRUCTURES), ("mask_kind", _MASK_KINDS)):
        bad = df.index[~df[col].isin(allowed)]
        for i in bad[:5]:
            problems.append(f"row {i + 2}: {col} {df.at[i, col]!r} not in {sorted(allowed)}")
    mpp = pd.to_numeric(df["mpp"].replace("", np.nan), errors="coerce")
    bad_mpp = df.index[(df["mpp"] != "") & (mpp.isna() | (mpp <= 0))]
    for i in bad_mpp[:5]:
        problems.append(f"row {i + 2}: mpp {df.at[i, 'mpp']!r} is not a positive number (µm/px)")

    def _keep(col: str, values: str | Iterable[str] | None) -> None:
        nonlocal df, mpp
        if values is None:
            return
        wanted = [values] if isinstance(values, str) else list(values)
        unknown = sorted(set(wanted) - set(df[col]))
        if unknown:
            problems.append(f"{col} filter {unknown} matches no row; known: {sorted(set(df[col]))}")
        sel = df[col].isin(wanted)
        df, mpp = df[sel], mpp[sel]

    _keep("split", split)
    _keep("dataset", datasets)
    root = path.resolve().parent
    df = df.copy()
    df["image"] = [str((root / p).resolve()) for p in df["image"]]
    df["mask"] = [str((root / p).resolve()) for p in df["mask"]]
    df["mpp"] = mpp.astype(float)
    df["image_id"] = [Path(p).stem for p in df["image"]]
    if check_files:
        for i, r in df.iterrows():
            for col in ("image", "mask"):
                if not Path(r[col]).is_file():
                    problems.append(f"row {i + 2}: {col} file {r[col]!r} does not exist")
    if problems:
        raise IndexFormatError(
            f"index {str(path)!r} has {len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems[:20])
        )
    return df.reset_index(drop=True)


def load_image(path: str | Path) -> np.ndarray:
    """Read an RGB image file as uint8 ``(H, W, 3)`` (alpha dropped, grey expanded)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("RGB",) else im)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)


def load_pair(row: pd.Series | dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Load one index row's image and mask.

    Parameters
    ----------
    row : Series or dict
        A row of :func:`read_index` (absolute ``image``/``mask`` paths).

    Returns
    -------
    image : ndarray of uint8, shape (H, W, 3)
    mask : ndarray, shape (H, W)
        int32 instance ids (0 = background) for ``mask_kind == "instance"``, else bool.
    mpp : float or None
        µm per pixel when the index gives it.

    Raises
    ------
    IndexFormatError
        When image and mask sizes differ.
    """
    from PIL import Image

    image = load_image(row["image"])
    with Image.open(row["mask"]) as im:
        mask = np.asarray(im)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise IndexFormatError(
            f"mask {row['mask']!r} is {mask.shape} but image {row['image']!r} is {image.shape[:2]}"
        )
    mask = mask.astype(np.int32) if row["mask_kind"] == "instance" else mask > 0
    mpp = row.get("mpp") if hasattr(row, "get") else None
    try:
        mpp_f = float(mpp) if mpp not in (None, "") else None
    except (TypeError, ValueError):
        mpp_f = None
    if mpp_f is not None and not np.isfinite(mpp_f):
        mpp_f = None
    return image, mask, mpp_f
