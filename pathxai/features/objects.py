"""Per-object morphometry for every object of a label image at once (vectorised).

All properties are computed from run-length encodings of the label image and a few
whole-array comparisons, with no Python loop over objects. The numbers reproduce
:func:`skimage.measure.regionprops_table` on the same label image:

* ``area``, ``centroid``, ``bbox``: pixel counts and means of pixel indices;
* ``inertia`` (``axis_major_length``, ``axis_minor_length``, ``eccentricity``,
  ``orientation``): second central moments, exactly as regionprops defines them;
* ``perimeter``: the Benkrid–Crookes boundary estimate of
  :func:`skimage.measure.perimeter` (4-neighbourhood), per object;
* ``solidity``: area / number of pixel centres inside the convex hull of the object's
  pixel-edge midpoints (the definition of ``regionprops``' ``area_convex``), with the
  hull found by a vectorised convex-chain reduction over all objects together.

Coordinates are ``(row, col)`` pixel indices of the array given, plus ``offset``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["MORPHOMETRY_PX_COLUMNS", "morphometry_px", "runs", "to_physical"]

#: columns returned by :func:`morphometry_px` (pixel units)
MORPHOMETRY_PX_COLUMNS = (
    "label", "area_px", "centroid_row", "centroid_col", "bbox_min_row", "bbox_min_col",
    "bbox_max_row", "bbox_max_col", "perimeter_px", "major_axis_px", "minor_axis_px",
    "eccentricity", "orientation_rad", "convex_area_px", "solidity",
)

_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + math.sqrt(2.0)) / 2.0


def runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of equal non-zero labels.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Label image, 0 = background.

    Returns
    -------
    label, row, start_col, end_col : ndarray, shape (n_runs,)
        One entry per maximal horizontal run (``end_col`` inclusive), in row-major order.
    """
    lab = np.asarray(labels)
    nz = lab != 0
    start = nz.copy()
    start[:, 1:] &= lab[:, 1:] != lab[:, :-1]
    end = nz
    end[:, :-1] &= lab[:, :-1] != lab[:, 1:]
    sr, sc = np.nonzero(start)
    _, ec = np.nonzero(end)
    return lab[sr, sc], sr, sc, ec


def _perimeter_by_pixel(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Benkrid–Crookes perimeter contribution of each border pixel of each object.

    Returns the labels of the border pixels and their contributions (pixel units).
    Equivalent, object by object, to :func:`skimage.measure.perimeter` with
    ``neighborhood=4`` on that object's own binary mask: a border pixel (in the object,
    with a 4-neighbour outside it) scores ``1 + 2·(border 4-neighbours of the same object)
    + 10·(border diagonal neighbours of the same object)``, mapped through the
    Benkrid–Crookes weights.
    """
    p = np.pad(lab, 1)
    c = p[1:-1, 1:-1]
    border = (c != 0) & (
        (p[:-2, 1:-1] != c) | (p[2:, 1:-1] != c) | (p[1:-1, :-2] != c) | (p[1:-1, 2:] != c)
    )
    bp = np.zeros(p.shape, dtype=bool)
    bp[1:-1, 1:-1] = border
    w2 = p.shape[1]
    pf, bf = p.ravel(), bp.ravel()
    idx = np.flatnonzero(bf)
    labs = pf[idx]
    code = np.ones(idx.size, dtype=np.int64)
    for off, weight in ((-w2, 2), (w2, 2), (-1, 2), (1, 2),
                        (-w2 - 1, 10), (-w2 + 1, 10), (w2 - 1, 10), (w2 + 1, 10)):
        j = idx + off
        code += weight * (bf[j] & (pf[j] == labs))
    return labs, _PERIMETER_WEIGHTS[code]


def _convex_chain(key: np.ndarray, y: np.ndarray, x: np.ndarray, left: bool) -> np.ndarray:
    """Reduce per-object y-monotone chains to their convex hull chains.

    ``key`` (object index) and ``y`` are sorted; repeatedly drops every point that is not
    a strict convex vertex with respect to its current neighbours (all objects at once).
    Returns the boolean mask of kept points.
    """
    idx = np.arange(key.size)
    while idx.size >= 3:
        k, yy, xx = key[idx], y[idx], x[idx]
        inner = (k[1:-1] == k[:-2]) & (k[1:-1] == k[2:])
        cross = (xx[1:-1] - xx[:-2]) * (yy[2:] - yy[:-2]) - (xx[2:] - xx[:-2]) * (yy[1:-1] - yy[:-2])
        drop = inner & ((cross >= 0) if left else (cross <= 0))
        if not drop.any():
            break
        keep = np.ones(idx.size, dtype=bool)
        keep[1:-1] = ~drop
        idx = idx[keep]
    out = np.zeros(key.size, dtype=bool)
    out[idx] = True
    return out


def _interp_chain(ck: np.ndarray, cy: np.ndarray, cx: np.ndarray, qk: np.ndarray,
                  qy: np.ndarray, span: float) -> np.ndarray:
    """Piecewise-linear x of each object's chain at query heights (all objects at once)."""
    ckey = ck * span + cy
    qkey = qk * span + qy
    j = np.searchsorted(ckey, qkey, side="left")
    j = np.clip(j, 1, ckey.size - 1)
    exact = ckey[j] == qkey
    y0, y1, x0, x1 = cy[j - 1], cy[j], cx[j - 1], cx[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = x0 + (x1 - x0) * (qy - y0) / (y1 - y0)
    return np.where(exact, cx[j], xi)


def _convex_area(obj: np.ndarray, row: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 n_obj: int) -> np.ndarray:
    """Pixel centres inside the convex hull of each object's pixel-edge midpoints.

    Parameters
    ----------
    obj, row, lo, hi : ndarray, shape (n,)
        Per (object, row) the leftmost and rightmost column, sorted by (obj, row).
    n_obj : int
        Number of objects (``obj`` takes values ``0..n_obj-1``).
    """
    # hull candidates: for each (object, row) the edge midpoints of the extreme pixels at
    # heights row-0.5, row, row+0.5 (left chain uses lo, right chain uses hi)
    y2 = np.stack([2 * row, 2 * row + 1, 2 * row + 2], axis=1).ravel()  # 2*y + 1
    kk = np.repeat(obj, 3)
    xl = np.stack([lo, lo - 0.5, lo], axis=1).ravel().astype(np.float64)
    xr = np.stack([hi, hi + 0.5, hi], axis=1).ravel().astype(np.float64)
    span = float(2 * (row.max() if row.size else 0) + 8)
    ckey = kk * span + y2
    order = np.argsort(ckey, kind="stable")
    ckey, kk, y2, xl, xr = ckey[order], kk[order], y2[order], xl[order], xr[order]
    first = np.r_[True, ckey[1:] != ckey[:-1]]
    starts = np.flatnonzero(first)
    xl = np.minimum.reduceat(xl, starts)
    xr = np.maximum.reduceat(xr, starts)
    kk, y = kk[starts], (y2[starts] - 1) / 2.0
    keep_l = _convex_chain(kk, y, xl, left=True)
    keep_r = _convex_chain(kk, y, xr, left=False)
    # query every integer row of every object's bounding box
    rmin = np.full(n_obj, np.iinfo(np.int64).max)
    rmax = np.full(n_obj, -1)
    first_row = np.r_[True, obj[1:] != obj[:-1]]
    last_row = np.r_[obj[1:] != obj[:-1], True]
    rmin[obj[first_row]] = row[first_row]
    rmax[obj[last_row]] = row[last_row]
    heights = rmax - rmin + 1
    qk = np.repeat(np.arange(n_obj), heights)
    qy = (np.arange(qk.size) - np.repeat(np.cumsum(heights) - heights, heights)
          + np.repeat(rmin, heights)).astype(np.float64)
    x_lo = _interp_chain(kk[keep_l], y[keep_l], xl[keep_l], qk, qy, span)
    x_hi = _interp_chain(kk[keep_r], y[keep_r], xr[keep_r], qk, qy, span)
    eps = 1e-9
    count = np.floor(x_hi + eps) - np.ceil(x_lo - eps) + 1
    return np.bincount(qk, weights=np.maximum(count, 0), minlength=n_obj)


def morphometry_px(labels: np.ndarray, *, offset: tuple[int, int] = (0, 0)) -> pd.DataFrame:
    """Shape measurements of every object of a label image, in pixel units.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 = background, k = object k (an object may have several parts).
    offset : (int, int)
        ``(row, col)`` of ``labels[0, 0]`` in the slide; added to centroids and boxes.

    Returns
    -------
    DataFrame
        One row per label present, sorted by label, columns :data:`MORPHOMETRY_PX_COLUMNS`:
        ``area_px`` (pixels), ``centroid_row/col`` (px, mean pixel index), inclusive
        ``bbox_*`` (px), ``perimeter_px`` (Benkrid–Crookes, 4-neighbourhood),
        ``major_axis_px``/``minor_axis_px`` (4·sqrt of the inertia-tensor eigenvalues),
        ``eccentricity`` (sqrt(1 - λ2/λ1)), ``orientation_rad`` (regionprops convention,
        angle between the row axis and the major axis, in [-π/2, π/2]; for an axis along
        the columns ±π/2 may differ from regionprops by rounding, the same axis),
        ``convex_area_px`` and ``solidity`` (area / convex area).
    """
    lab = np.ascontiguousarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be 2-D (rows, cols); got shape {lab.shape}")
    rl, rr, rs, re = runs(lab)
    if rl.size == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in MORPHOMETRY_PX_COLUMNS}).astype(
            {"label": "int64"})
    uniq, obj = np.unique(rl, return_inverse=True)
    n_obj = uniq.size
    # moments about a per-object reference pixel (its first run) for numerical accuracy
    first_run = np.zeros(n_obj, dtype=np.int64)
    first_run[obj[::-1]] = np.arange(obj.size - 1, -1, -1)
    ref_r = rr[first_run].astype(np.float64)
    ref_c = rs[first_run].astype(np.float64)
    rr_f = rr - ref_r[obj]
    s_f, e_f = rs - ref_c[obj], re - ref_c[obj]
    n = e_f - s_f + 1.0
    sum_c = n * (s_f + e_f) / 2.0
    sum_cc = (e_f * (e_f + 1) * (2 * e_f + 1) - (s_f - 1) * s_f * (2 * s_f - 1)) / 6.0
    area = np.bincount(obj, weights=n, minlength=n_obj)
    m_r = np.bincount(obj, weights=n * rr_f, minlength=n_obj)
    m_c = np.bincount(obj, weights=sum_c, minlength=n_obj)
    m_rr = np.bincount(obj, weights=n * rr_f * rr_f, minlength=n_obj)
    m_cc = np.bincount(obj, weights=sum_cc, minlength=n_obj)
    m_rc = np.bincount(obj, weights=rr_f * sum_c, minlength=n_obj)
    cr, cc = m_r / area, m_c / area
    var_r = np.maximum(m_rr / area - cr * cr, 0.0)
    var_c = np.maximum(m_cc / area - cc * cc, 0.0)
    cov = m_rc / area - cr * cc
    # snap rounding noise so exact symmetries (a == c, b == 0) behave as in regionprops
    tiny = 1e-12 * (var_r + var_c + 1e-300)
    cov = np.where(np.abs(cov) <= tiny, 0.0, cov)
    var_c = np.where(np.abs(var_c - var_r) <= tiny, var_r, var_c)
    cr, cc = cr + ref_r, cc + ref_c
    # inertia tensor [[a, b], [b, c]] = [[var_c, -cov], [-cov, var_r]] (skimage convention)
    a, b, c = var_c, -cov, var_r  # b == -0.0 for cov == 0, as in skimage
    half_tr = (a + c) / 2.0
    root = np.sqrt(((a - c) / 2.0) ** 2 + b * b)
    root = np.where(root <= 1e-10 * half_tr, 0.0, root)
    l1 = np.maximum(half_tr + root, 0.0)
    l2 = np.maximum(half_tr - root, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = np.where(l1 > 0, np.sqrt(np.maximum(1.0 - l2 / l1, 0.0)), 0.0)
    orient = np.where(a - c == 0, np.where(b < 0, math.pi / 4, -math.pi / 4),
                      0.5 * np.arctan2(-2.0 * b, c - a))
    # per (object, row) extents, sorted by (object, row)
    key = obj.astype(np.int64) * (lab.shape[0] + 1) + rr
    order = np.argsort(key, kind="stable")
    key_s = key[order]
    starts = np.flatnonzero(np.r_[True, key_s[1:] != key_s[:-1]])
    lo = np.minimum.reduceat(rs[order], starts)
    hi = np.maximum.reduceat(re[order], starts)
    orow = rr[order][starts]
    oobj = obj[order][starts]
    convex = _convex_area(oobj, orow.astype(np.int64), lo, hi, n_obj)
    min_r = np.full(n_obj, lab.shape[0]); max_r = np.full(n_obj, -1)  # noqa: E702
    first = np.r_[True, oobj[1:] != oobj[:-1]]
    last = np.r_[oobj[1:] != oobj[:-1], True]
    min_r[oobj[first]] = orow[first]
    max_r[oobj[last]] = orow[last]
    min_c = np.full(n_obj, lab.shape[1]); max_c = np.full(n_obj, -1)  # noqa: E702
    np.minimum.at(min_c, oobj, lo)
    np.maximum.at(max_c, oobj, hi)
    bl, bw = _perimeter_by_pixel(lab)
    perim = np.bincount(np.searchsorted(uniq, bl), weights=bw, minlength=n_obj)
    r0, c0 = offset
    return pd.DataFrame({
        "label": uniq.astype(np.int64),
        "area_px": area,
        "centroid_row": cr + r0,
        "centroid_col": cc + c0,
        "bbox_min_row": min_r + r0,
        "bbox_min_col": min_c + c0,
        "bbox_max_row": max_r + r0,
        "bbox_max_col": max_c + c0,
        "perimeter_px": perim,
        "major_axis_px": 4.0 * np.sqrt(l1),
        "minor_axis_px": 4.0 * np.sqrt(l2),
        "eccentricity": ecc,
        "orientation_rad": orient,
        "convex_area_px": convex,
        "solidity": area / convex,
    })


def to_physical(px: pd.DataFrame, mpp: float) -> pd.DataFrame:
    """Convert :func:`morphometry_px` output to physical units.

    Parameters
    ----------
    px : DataFrame
        Output of :func:`morphometry_px`.
    mpp : float
        Microns per pixel.

    Returns
    -------
    DataFrame
        ``label``, ``centroid_row``, ``centroid_col`` (px, kept for lookups),
        ``x_um``, ``y_um`` (centroid in µm), ``area_um2``, ``perimeter_um``,
        ``equivalent_diameter_um`` (diameter of the disk of equal area),
        ``major_axis_um``, ``minor_axis_um``, ``eccentricity``, ``orientation_rad``,
        ``solidity``, ``circularity`` (4π·area/perimeter², 1 for a disk, NaN for a zero
        perimeter).
    """
    area_um2 = px["area_px"].to_numpy() * mpp * mpp
    perim_um = px["perimeter_px"].to_numpy() * mpp
    with np.errstate(invalid="ignore", divide="ignore"):
        circ = np.where(perim_um > 0, 4.0 * math.pi * area_um2 / perim_um**2, np.nan)
    return pd.DataFrame({
        "label": px["label"].to_numpy(),
        "centroid_row": px["centroid_row"].to_numpy(),
        "centroid_col": px["centroid_col"].to_numpy(),
        "x_um": px["centroid_col"].to_numpy() * mpp,
        "y_um": px["centroid_row"].to_numpy() * mpp,
        "area_um2": area_um2,
        "perimeter_um": perim_um,
        "equivalent_diameter_um": np.sqrt(4.0 * area_um2 / math.pi),
        "major_axis_um": px["major_axis_px"].to_numpy() * mpp,
        "minor_axis_um": px["minor_axis_px"].to_numpy() * mpp,
        "eccentricity": px["eccentricity"].to_numpy(),
        "orientation_rad": px["orientation_rad"].to_numpy(),
        "solidity": px["solidity"].to_numpy(),
        "circularity": circ,
    })
