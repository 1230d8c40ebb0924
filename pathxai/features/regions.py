"""Region-level measurements that add up exactly over tiles.

Every quantity here is a sum of per-pixel (or per-pixel-pair) terms over a tile's core, read
with a small halo, so a slide processed tile by tile gives the same numbers as processed
whole: pixel counts, the Benkrid–Crookes perimeter, interface pixel-edge counts and grid
counts. Connected components are counted per tile and joined across tile seams
(8-connectivity) by :class:`ComponentCounter`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pathxai.features.objects import _PERIMETER_WEIGHTS

__all__ = ["ComponentCounter", "grid_counts", "interface_pairs", "perimeter_contrib"]

_STREL4 = ndi.generate_binary_structure(2, 1)
_KERNEL = np.array([[10, 2, 10], [2, 1, 2], [10, 2, 10]])
_EIGHT = np.ones((3, 3), dtype=bool)


def perimeter_contrib(mask: np.ndarray) -> np.ndarray:
    """Per-pixel Benkrid–Crookes perimeter contribution (pixel units).

    ``perimeter_contrib(m).sum() == skimage.measure.perimeter(m, 4)``; the value of a pixel
    depends only on its 5×5 neighbourhood, so sums over tile cores read with a halo of 2 px
    add up to the whole-slide perimeter.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    img = mask.astype(np.uint8)
    border = img - ndi.binary_erosion(img, _STREL4, border_value=0).astype(np.uint8)
    conv = ndi.convolve(border, _KERNEL.astype(np.uint8), mode="constant", cval=0)
    return _PERIMETER_WEIGHTS[conv]


def interface_pairs(a: np.ndarray, b: np.ndarray, core: tuple[slice, slice]) -> int:
    """4-adjacent pixel pairs with one pixel only in ``a`` and the other only in ``b``.

    Pairs are counted once, by their top (vertical pairs) or left (horizontal pairs) pixel,
    when that pixel lies in ``core``; the arrays must extend at least 1 px beyond the core
    (bottom and right) where the slide continues.
    """
    a_only = a & ~b
    b_only = b & ~a
    r, c = core
    r_stop = min(r.stop + 1, a.shape[0])
    c_stop = min(c.stop + 1, a.shape[1])
    ao = a_only[r.start:r_stop, c.start:c_stop]
    bo = b_only[r.start:r_stop, c.start:c_stop]
    h, w = r.stop - r.start, c.stop - c.start
    horiz = (ao[:h, :-1] & bo[:h, 1:]) | (bo[:h, :-1] & ao[:h, 1:])
    vert = (ao[:-1, :w] & bo[1:, :w]) | (bo[:-1, :w] & ao[1:, :w])
    return int(horiz[:, :w].sum() + vert[:h, :].sum())


def grid_counts(weights_mask: np.ndarray, row0: int, col0: int, mpp: float, grid_um: float,
                grid_shape: tuple[int, int]) -> np.ndarray:
    """Pixel counts of a mask per square grid cell of ``grid_um`` µm (slide-anchored grid)."""
    rr, cc = np.nonzero(weights_mask)
    gr = np.floor((rr + row0) * mpp / grid_um).astype(np.int64)
    gc = np.floor((cc + col0) * mpp / grid_um).astype(np.int64)
    gr = np.minimum(gr, grid_shape[0] - 1)
    gc = np.minimum(gc, grid_shape[1] - 1)
    return np.bincount(gr * grid_shape[1] + gc, minlength=grid_shape[0] * grid_shape[1]).reshape(grid_shape)


class ComponentCounter:
    """Count 8-connected components of a mask processed tile by tile.

    Call :meth:`add_tile` for every tile core (any order), then :meth:`count`.
    """

    def __init__(self) -> None:
        self._n = 0
        self._borders: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def add_tile(self, index: tuple[int, int], core_mask: np.ndarray) -> None:
        """Label one tile core; ``index`` is its (tile row, tile col) in a regular grid."""
        lab, n = ndi.label(core_mask, structure=_EIGHT)
        lab = np.where(lab > 0, lab + self._n, 0).astype(np.int64)
        self._n += n
        self._borders[index] = (lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(), lab[:, -1].copy())

    def count(self) -> int:
        """Number of components of the whole mask."""
        if self._n == 0:
            return 0
        src, dst = [], []

        def link(a: np.ndarray, b: np.ndarray) -> None:
            for shift in (-1, 0, 1):
                if shift < 0:
                    aa, bb = a[1:], b[:-1]
                elif shift > 0:
                    aa, bb = a[:-1], b[1:]
                else:
                    aa, bb = a, b
                ok = (aa > 0) & (bb > 0)
                src.append(aa[ok])
                dst.append(bb[ok])

        for (i, j), (_top, bottom, _left, right) in self._borders.items():
            if (i, j + 1) in self._borders:
                link(right, self._borders[(i, j + 1)][2])
            if (i + 1, j) in self._borders:
                link(bottom, self._borders[(i + 1, j)][0])
            if (i + 1, j + 1) in self._borders:
                link(bottom[-1:], self._borders[(i + 1, j + 1)][0][:1])
            if (i + 1, j - 1) in self._borders:
                link(bottom[:1], self._borders[(i + 1, j - 1)][0][-1:])
        s = np.concatenate(src) - 1 if src else np.zeros(0, dtype=np.int64)
        d = np.concatenate(dst) - 1 if dst else np.zeros(0, dtype=np.int64)
        if s.size == 0:
            return self._n
        g = coo_matrix((np.ones(s.size, dtype=np.int8), (s, d)), shape=(self._n, self._n))
        n_comp, _ = connected_components(g, directed=False)
        return int(n_comp)
