"""Instances from the model's mask and distance maps (marker-controlled watershed)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = ["CLOSE_COARSE_PX", "close_gaps", "instances_from_maps", "remove_small_holes"]


#: :func:`close_gaps` works on a grid ``floor(radius / CLOSE_COARSE_PX)`` times coarser once
#: that factor reaches 2 (radius >= 2 * CLOSE_COARSE_PX pixels)
CLOSE_COARSE_PX = 6.0


def instances_from_maps(mask: np.ndarray, distance: np.ndarray, *, mpp: float,
                        core_threshold: float = 0.45, min_area_um2: float = 6.0,
                        min_core_um2: float = 1.0) -> np.ndarray:
    """Split a binary mask into objects with the predicted distance-to-boundary map.

    The instance head predicts, per pixel, the distance to the object's boundary divided by
    the object's maximum (1 at each object's centre, falling to 0 at boundaries, also between
    touching objects). Cores ``distance > core_threshold`` inside the mask are the markers;
    a watershed on ``-distance`` grows them to fill the mask. Mask components that hold no
    core become objects of their own; objects smaller than ``min_area_um2`` are dropped.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        Foreground.
    distance : ndarray of float, shape (H, W)
        Normalised distance in [0, 1].
    mpp : float
        µm per pixel of the arrays (turns the µm² thresholds into pixels).
    core_threshold : float
        Marker threshold on the normalised distance.
    min_area_um2, min_core_um2 : float
        Smallest object and smallest marker, in µm².

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 = background, 1..N = objects.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = np.asarray(distance)
    px = 1.0 / (mpp * mpp)
    comp, n_comp = ndimage.label(mask)
    cores, n = ndimage.label(mask & (distance > core_threshold))
    if n:
        flat = cores.ravel()
        at = np.flatnonzero(flat)
        ids = flat[at]
        kept = np.bincount(ids, minlength=n + 1) >= max(1.0, min_core_um2 * px)
        kept[0] = False
        # A mask component with at most one core is one object whatever the watershed does,
        # so only components holding two or more cores are flooded (same result, far less
        # work). A core lies inside one mask component: read it at any of the core's pixels.
        first = np.empty(n + 1, np.int64)
        first[ids[::-1]] = at[::-1]
        per_comp = np.bincount(comp.ravel()[first[1:]][kept[1:]], minlength=n_comp + 1)
        multi = per_comp >= 2
        if multi.any():
            sel = multi[comp]
            rows = np.flatnonzero(sel.any(1))
            cols = np.flatnonzero(sel.any(0))
            box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            sub = sel[box]
            markers = np.where(kept, np.arange(n + 1), 0).astype(cores.dtype)[cores[box]]
            ws = watershed(-distance[box], np.where(sub, markers, 0), mask=sub)
            left, n_left = ndimage.label(sub & (ws == 0))   # unreached pixels: own objects
            ws = np.where(left > 0, left + ws.max(), ws)
            region = comp[box]
            region[sub] = ws[sub] + n_comp
    # objects below the minimum area go; the rest are renumbered 1..N in label order
    sizes = np.bincount(comp.ravel())
    keep = (sizes > 0) & (sizes >= min_area_um2 * px)
    keep[0] = False
    lut = np.zeros(sizes.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[comp]


def remove_small_holes(mask: np.ndarray, *, max_size: int) -> np.ndarray:
    """Fill the holes of ``mask`` of at most ``max_size`` pixels.

    A hole is a connected (4-connectivity) background component that does not touch the
    array border. Returns a new bool array of the same shape.
    """
    mask = np.asarray(mask, bool)
    if max_size <= 0 or mask.all():
        return mask.copy()
    holes, n = ndimage.label(~mask)
    if not n:
        return mask.copy()
    sizes = np.bincount(holes.ravel())
    fill = sizes <= max_size
    fill[0] = False
    border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    fill[border] = False
    if not fill.any():
        return mask.copy()
    return mask | fill[holes]


def close_gaps(mask: np.ndarray, *, radius: float, coarse_px: float = CLOSE_COARSE_PX
               ) -> np.ndarray:
    """Morphological closing of ``mask`` with a disk of ``radius`` pixels (Euclidean).

    Dilation and erosion are thresholds of exact distance transforms, so the cost does not
    grow with the radius. Outside the array counts as unknown: the erosion does not eat in
    from the border, so tiles can be closed independently. Returns a new bool array that
    contains ``mask``.

    When ``radius`` is at least ``2 * coarse_px`` pixels, the closing is computed on a grid
    ``f = floor(radius / coarse_px)`` times coarser (``f * f`` blocks that lie wholly inside
    the mask, closed with radius ``radius / f``), brought back by nearest-neighbour
    upsampling and joined to ``mask``: about ``f**2`` times less work, and conservative,
    because the closing is increasing and the block mask lies inside ``mask``, so the result
    adds only pixels that the exact closing adds too (up to pixel discretisation), never
    boundary growth. Gaps narrower than about ``2 * radius - 2 * f`` pixels are still bridged.
    ``coarse_px=inf`` forces the exact computation.
    """
    mask = np.asarray(mask, bool)
    if radius <= 0 or not mask.any() or mask.all():
        return mask.copy()
    f = int(radius // coarse_px) if np.isfinite(coarse_px) and coarse_px > 0 else 1
    if f < 2:
        return _close_exact(mask, radius)
    h, w = mask.shape
    ph, pw = (-h) % f, (-w) % f
    padded = np.pad(mask, ((0, ph), (0, pw)), mode="edge")
    blocks = padded[0::f, 0::f].copy()
    for dy in range(f):
        for dx in range(f):
            if dy or dx:
                blocks &= padded[dy::f, dx::f]
    if not blocks.any():
        return mask.copy()
    closed = _close_exact(blocks, radius / f)
    up = np.repeat(np.repeat(closed, f, axis=0), f, axis=1)[:h, :w]
    return up | mask


def _close_exact(mask: np.ndarray, radius: float) -> np.ndarray:
    if mask.all():
        return mask.copy()
    dilated = ndimage.distance_transform_edt(~mask) <= radius
    if dilated.all():
        return dilated
    return (ndimage.distance_transform_edt(dilated) > radius) | mask
