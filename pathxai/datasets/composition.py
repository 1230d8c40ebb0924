"""Realised composition of ground-truth label maps: the quantities outcomes are planted on.

The definitions match the feature names of the features stage (docs/contracts.md),
computed exactly from the synthetic ground truth:

``area_fraction__necrosis``
    necrosis area / tissue area (tissue = every label but background).
``density_per_mm2__lymphocyte__in__tumor``
    lymphocyte nuclei whose centroid (mean pixel position, rounded to the nearest
    pixel with ``numpy.rint``) lies in tumor, per mm² of tumor area.
``ratio__tumor__to__stroma``
    tumor area / stroma area.

Patient values pool the slides: sums of counts and areas, then the ratio.
"""

from __future__ import annotations

import numpy as np

from pathxai.datasets.render import NUCLEUS_TYPE_CODES, TISSUE_CODES

__all__ = ["slide_composition", "pool_patient", "PLANTED_FEATURES"]

#: Feature names (features-stage spelling) the synthetic outcomes depend on.
PLANTED_FEATURES = (
    "density_per_mm2__lymphocyte__in__tumor",
    "area_fraction__necrosis",
    "ratio__tumor__to__stroma",
)


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace("-", "_")


def slide_composition(
    tissue: np.ndarray, nuclei: np.ndarray, nucleus_types: dict[int, int], mpp: float
) -> dict[str, float]:
    """Areas, counts and the planted features of one ground-truth slide.

    Parameters
    ----------
    tissue : ndarray (h, w) uint8
        Tissue label codes.
    nuclei : ndarray (h, w) int32
        Instance ids ``1..n``.
    nucleus_types : dict of int to int
        Instance id -> type code.
    mpp : float
        µm per pixel.

    Returns
    -------
    dict
        ``area_mm2__<slug>`` for each tissue category and ``tissue``,
        ``count__<slug>`` per nucleus type, ``count__lymphocyte__in__tumor``,
        and the three :data:`PLANTED_FEATURES`.
    """
    px_mm2 = (mpp * 1e-3) ** 2
    counts = np.bincount(tissue.ravel(), minlength=len(TISSUE_CODES))
    out: dict[str, float] = {}
    for name, code in TISSUE_CODES.items():
        if code:
            out[f"area_mm2__{_slug(name)}"] = float(counts[code] * px_mm2)
    out["area_mm2__tissue"] = float((tissue.size - counts[0]) * px_mm2)
    n = int(nuclei.max()) if nuclei.size else 0
    type_of = np.zeros(n + 1, dtype=np.int16)
    for k, t in nucleus_types.items():
        type_of[k] = t
    for name, code in NUCLEUS_TYPE_CODES.items():
        out[f"count__{_slug(name)}"] = float(np.sum(type_of[1:] == code))
    # centroids of every instance at once (pixel-mean of row and column)
    flat = nuclei.ravel()
    fg = flat > 0
    ids = flat[fg]
    rows, cols = np.divmod(np.flatnonzero(fg), nuclei.shape[1])
    area = np.bincount(ids, minlength=n + 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cr = np.bincount(ids, weights=rows, minlength=n + 1) / area
        cc = np.bincount(ids, weights=cols, minlength=n + 1) / area
    lymph = np.flatnonzero((type_of == NUCLEUS_TYPE_CODES["lymphocyte"]) & (area > 0))
    ri = np.rint(cr[lymph]).astype(np.intp)
    ci = np.rint(cc[lymph]).astype(np.intp)
    in_tumor = int(np.sum(tissue[ri, ci] == TISSUE_CODES["tumor"]))
    out["count__lymphocyte__in__tumor"] = float(in_tumor)
    out.update(_planted(out))
    return out


def _planted(v: dict[str, float]) -> dict[str, float]:
    tumor, stroma = v["area_mm2__tumor"], v["area_mm2__stroma"]
    return {
        "density_per_mm2__lymphocyte__in__tumor": (
            v["count__lymphocyte__in__tumor"] / tumor if tumor > 0 else float("nan")
        ),
        "area_fraction__necrosis": (
            v["area_mm2__necrosis"] / v["area_mm2__tissue"] if v["area_mm2__tissue"] > 0
            else float("nan")
        ),
        "ratio__tumor__to__stroma": tumor / stroma if stroma > 0 else float("nan"),
    }


def pool_patient(slides: list[dict[str, float]]) -> dict[str, float]:
    """Pool slide compositions of one patient: sum areas and counts, then ratios.

    Parameters
    ----------
    slides : list of dict
        Outputs of :func:`slide_composition`.

    Returns
    -------
    dict
        Same keys, patient level.
    """
    keys = [k for k in slides[0] if k.startswith(("area_mm2__", "count__"))]
    total = {k: float(sum(s[k] for s in slides)) for k in keys}
    total.update(_planted(total))
    return total
