"""Nucleus placement and vectorised rasterisation for the procedural H&E renderer.

Nuclei are ellipses with a smooth random boundary perturbation (2nd and 3rd
harmonics), rasterised as fixed-size stamps for all nuclei of a kind at once.
Positions are in full-resolution pixels ``(row, col)`` as floats; sizes in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["NucleusBatch", "sample_points", "thin_overlaps", "rasterise"]


@dataclass
class NucleusBatch:
    """Geometry and appearance of a set of nuclei of one kind.

    Attributes
    ----------
    rows, cols : ndarray (n,) float
        Centres in full-resolution pixels.
    a, b : ndarray (n,) float
        Semi-axes in pixels (``a`` along ``angle``).
    angle : ndarray (n,) float
        Orientation of the ``a`` axis, radians from the column axis.
    type_code : int
        Nucleus type code (1 neoplastic, 2 lymphocyte, 3 connective, 4 epithelial),
        or 0 for drawn-only debris (ghosts), which gets no instance id.
    darkness : ndarray (n,) float
        Haematoxylin concentration (optical-density units) at the nucleus' darkest.
    vesicular : float
        0 = uniform chromatin, 1 = pale centre with a dark rim and a nucleolus.
    """

    rows: np.ndarray
    cols: np.ndarray
    a: np.ndarray
    b: np.ndarray
    angle: np.ndarray
    type_code: int
    darkness: np.ndarray
    vesicular: float = 0.0
    irregularity: float = 0.08

    def __len__(self) -> int:
        return int(self.rows.size)

    def subset(self, keep: np.ndarray) -> NucleusBatch:
        """The nuclei selected by boolean or integer index ``keep``."""
        return NucleusBatch(
            self.rows[keep], self.cols[keep], self.a[keep], self.b[keep],
            self.angle[keep], self.type_code, self.darkness[keep], self.vesicular,
            self.irregularity,
        )


def sample_points(
    rng: np.random.Generator, mask: np.ndarray, density_per_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson points inside a boolean mask.

    Parameters
    ----------
    rng : numpy.random.Generator
    mask : ndarray (h, w) bool
        Where points may fall.
    density_per_px : float
        Expected points per pixel of ``mask``.

    Returns
    -------
    rows, cols : ndarray (n,) float
        Sub-pixel positions, each inside a pixel of ``mask``.
    """
    idx = np.flatnonzero(mask)
    n = rng.poisson(max(density_per_px, 0.0) * idx.size) if idx.size else 0
    if n == 0:
        return np.empty(0), np.empty(0)
    pick = idx[rng.integers(0, idx.size, size=n)]
    r, c = np.divmod(pick, mask.shape[1])
    return r + rng.uniform(-0.45, 0.45, n), c + rng.uniform(-0.45, 0.45, n)


def thin_overlaps(batches: list[NucleusBatch], gap: float = 0.9) -> list[NucleusBatch]:
    """Remove nuclei that would overlap an earlier one (earlier batches win).

    Two nuclei clash when their centres are closer than ``gap`` times the sum of
    their mean radii. Greedy in batch order, then in index order.

    Parameters
    ----------
    batches : list of NucleusBatch
        In priority order.
    gap : float
        Allowed overlap factor (1 = touching circles of the mean radius).

    Returns
    -------
    list of NucleusBatch
        Same order, clashing nuclei removed.
    """
    sizes = [len(b) for b in batches]
    if sum(sizes) < 2:
        return batches
    pts = np.column_stack([
        np.concatenate([b.rows for b in batches]), np.concatenate([b.cols for b in batches])
    ])
    rad = np.concatenate([np.sqrt(b.a * b.b) for b in batches])
    tree = cKDTree(pts)
    pairs = tree.query_pairs(r=float(2 * rad.max() * gap), output_type="ndarray")
    if pairs.size:
        d = np.linalg.norm(pts[pairs[:, 0]] - pts[pairs[:, 1]], axis=1)
        pairs = pairs[d < gap * (rad[pairs[:, 0]] + rad[pairs[:, 1]])]
    alive = np.ones(len(pts), dtype=bool)
    if pairs.size:
        pairs = np.sort(pairs, axis=1)
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        for i, j in pairs.tolist():  # greedy: a loop over clashing pairs only
            if alive[i] and alive[j]:
                alive[j] = False
    out, start = [], 0
    for b, n in zip(batches, sizes):
        out.append(b.subset(alive[start:start + n]))
        start += n
    return out


def rasterise(
    batch: NucleusBatch,
    rng: np.random.Generator,
    labels: np.ndarray,
    haem: np.ndarray,
    first_id: int,
    chromatin: np.ndarray,
    *,
    mpp: float,
) -> int:
    """Draw a batch of nuclei into an instance map and a haematoxylin map, in place.

    Parameters
    ----------
    batch : NucleusBatch
    rng : numpy.random.Generator
        For boundary harmonics and nucleoli.
    labels : ndarray (h, w) int32
        Instance map; pixels of nucleus ``i`` get ``first_id + i`` (not written
        for ``type_code == 0``).
    haem : ndarray (h, w) float32
        Haematoxylin optical density; nucleus pixels are raised to the nucleus'
        value (``max``).
    first_id : int
        Id of the first nucleus of the batch.
    chromatin : ndarray (h, w) float32
        Fine texture (mean ~0, SD ~1) modulating the chromatin.
    mpp : float
        µm per pixel (nucleolus size is 1 µm).

    Returns
    -------
    int
        The next free id.
    """
    n = len(batch)
    if n == 0:
        return first_id
    h, w = labels.shape
    eps = batch.irregularity
    half = int(np.ceil(float(np.max(np.maximum(batch.a, batch.b))) * (1 + 2 * eps) + 1))
    off = np.arange(-half, half + 1)
    cy = np.round(batch.rows).astype(np.intp)
    cx = np.round(batch.cols).astype(np.intp)
    yy = cy[:, None, None] + off[None, :, None]
    xx = cx[:, None, None] + off[None, None, :]
    dy = (yy - batch.rows[:, None, None]).astype(np.float32)
    dx = (xx - batch.cols[:, None, None]).astype(np.float32)
    ca = np.cos(batch.angle).astype(np.float32)[:, None, None]
    sa = np.sin(batch.angle).astype(np.float32)[:, None, None]
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    a = batch.a.astype(np.float32)[:, None, None]
    b = batch.b.astype(np.float32)[:, None, None]
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    theta = np.arctan2(v / b, u / a)
    amp = rng.uniform(0, eps, size=(n, 2)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 2)).astype(np.float32)
    edge = (
        1.0
        + amp[:, 0, None, None] * np.cos(2 * theta + phase[:, 0, None, None])
        + amp[:, 1, None, None] * np.cos(3 * theta + phase[:, 1, None, None])
    )
    rr = r / edge
    inside = (rr < 1.0) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    # chromatin: uniform, or vesicular (pale centre, dark rim) with a nucleolus
    prof = 1.0 - batch.vesicular * 0.55 * (1.0 - rr**3)
    if batch.vesicular > 0:
        nuc_r = 1.0 / mpp
        ny = rng.uniform(-0.3, 0.3, n).astype(np.float32)[:, None, None] * b
        nx = rng.uniform(-0.3, 0.3, n).astype(np.float32)[:, None, None] * a
        dn = (u - nx) ** 2 + (v - ny) ** 2
        prof = prof + batch.vesicular * 0.9 * np.exp(-dn / (nuc_r**2))
    iy = np.broadcast_to(yy, inside.shape)[inside]
    ix = np.broadcast_to(xx, inside.shape)[inside]
    tex = chromatin[iy, ix]
    k = np.broadcast_to(np.arange(n)[:, None, None], inside.shape)[inside]
    val = batch.darkness.astype(np.float32)[k] * prof[inside] * (1.0 + 0.18 * tex)
    _max_into(haem, iy, ix, val)
    if batch.type_code > 0:
        labels[iy, ix] = first_id + k
        return first_id + n
    return first_id


def _max_into(target: np.ndarray, iy: np.ndarray, ix: np.ndarray, val: np.ndarray) -> None:
    """``target[iy, ix] = max(target, val)`` for unique-ish pixel lists (fast path)."""
    cur = target[iy, ix]
    target[iy, ix] = np.maximum(cur, val)
