"""Spatial statistics of object centroids (µm): nearest neighbours, Ripley's L, Delaunay cell
graph, Morisita–Horn co-localisation, and distance-transform lookups against regions.

Points are ``(x_um, y_um)`` arrays of shape (n, 2). All functions are vectorised
(:class:`scipy.spatial.cKDTree`, :class:`scipy.spatial.Delaunay`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

_CROSS = ndi.generate_binary_structure(2, 1)

__all__ = [
    "delaunay_graph",
    "kdtree",
    "distance_lookups",
    "morisita_horn",
    "nearest_neighbour_distances",
    "point_grid_counts",
    "ripley_l",
]


def kdtree(points: np.ndarray) -> cKDTree:
    """A k-d tree of points (built without balancing: faster to build, same answers)."""
    return cKDTree(np.asarray(points, dtype=np.float64).reshape(-1, 2), balanced_tree=False,
                   compact_nodes=False)


def nearest_neighbour_distances(points: np.ndarray, others: np.ndarray | None = None, *,
                                tree: cKDTree | None = None) -> np.ndarray:
    """Distance (µm) from each point to its nearest neighbour.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
    others : ndarray, shape (m, 2), optional
        Target set; default ``points`` itself (the point is excluded).
    tree : cKDTree, optional
        A prebuilt :func:`kdtree` of the target set (``others``, or ``points``), to reuse.

    Returns
    -------
    ndarray, shape (n,)
        Empty when there is no possible neighbour.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if others is None:
        if pts.shape[0] < 2:
            return np.zeros(0)
        d, _ = (tree or kdtree(pts)).query(pts, k=2)
        return d[:, 1]
    oth = np.asarray(others, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] == 0 or oth.shape[0] == 0:
        return np.zeros(0)
    d, _ = (tree or kdtree(oth)).query(pts, k=1)
    return d


def ripley_l(points: np.ndarray, edge_distance_um: np.ndarray, area_um2: float,
             radii_um: tuple[float, ...], *, tree: cKDTree | None = None) -> np.ndarray:
    """Ripley's L(r) with border ("minus sampling") edge correction.

    ``K(r) = Σ_{i: e_i ≥ r} #{j ≠ i: d_ij ≤ r} / (n_r · λ)`` with ``λ = n / area`` and
    ``n_r`` the number of centres at least ``r`` from the window edge; ``L = sqrt(K/π)``.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
        Object centroids (µm).
    edge_distance_um : ndarray, shape (n,)
        Distance of each point to the window edge (µm).
    area_um2 : float
        Window area (µm²).
    radii_um : tuple of float
    tree : cKDTree, optional
        A prebuilt :func:`kdtree` of ``points``.

    Returns
    -------
    ndarray, shape (len(radii_um),)
        L(r) in µm; NaN where fewer than 2 points or no centre qualifies.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = pts.shape[0]
    out = np.full(len(radii_um), np.nan)
    if n < 2 or not area_um2 > 0:
        return out
    lam = n / area_um2
    tree = tree or kdtree(pts)
    edge = np.asarray(edge_distance_um, dtype=np.float64)
    for k, r in enumerate(radii_um):
        centres = pts[edge >= r]
        if centres.shape[0] == 0:
            continue
        pairs = kdtree(centres).count_neighbors(tree, r) - centres.shape[0]
        kr = pairs / (centres.shape[0] * lam)
        out[k] = math.sqrt(max(kr, 0.0) / math.pi)
    return out


def delaunay_graph(points: np.ndarray, max_edge_um: float) -> dict[str, float]:
    """Delaunay cell-graph statistics.

    Returns
    -------
    dict
        ``mean_degree`` (edges ≤ ``max_edge_um`` per point, all points), ``mean_edge_um``,
        ``sd_edge_um`` (ddof=0) of the kept edges; NaN with fewer than 3 points (or
        collinear points) and edge statistics NaN when no edge is kept.
    """
    from scipy.spatial import Delaunay, QhullError

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    nan = {"mean_degree": np.nan, "mean_edge_um": np.nan, "sd_edge_um": np.nan}
    if pts.shape[0] < 3:
        return nan
    try:
        tri = Delaunay(pts)
    except QhullError:
        return nan
    indptr, nbrs = tri.vertex_neighbor_vertices  # CSR adjacency: every edge twice
    src = np.repeat(np.arange(pts.shape[0]), np.diff(indptr))
    once = src < nbrs
    e = np.stack([src[once], nbrs[once]], axis=1)
    length = np.hypot(*(pts[e[:, 0]] - pts[e[:, 1]]).T)
    keep = length <= max_edge_um
    e, length = e[keep], length[keep]
    deg = np.bincount(e.ravel(), minlength=pts.shape[0])
    return {
        "mean_degree": float(deg.mean()),
        "mean_edge_um": float(length.mean()) if length.size else np.nan,
        "sd_edge_um": float(length.std()) if length.size else np.nan,
    }


def point_grid_counts(points: np.ndarray, grid_um: float, grid_shape: tuple[int, int]) -> np.ndarray:
    """Counts of points per square grid cell (cell ``(i, j)`` covers y in [i·g, (i+1)·g))."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    gi = np.minimum(np.floor(pts[:, 1] / grid_um).astype(np.int64), grid_shape[0] - 1)
    gj = np.minimum(np.floor(pts[:, 0] / grid_um).astype(np.int64), grid_shape[1] - 1)
    return np.bincount(gi * grid_shape[1] + gj, minlength=grid_shape[0] * grid_shape[1]).reshape(grid_shape)


def morisita_horn(a: np.ndarray, b: np.ndarray) -> float:
    """Morisita–Horn overlap index of two abundance maps on the same grid.

    ``MH = 2 Σ a_i b_i / ((Σ a_i²/A² + Σ b_i²/B²) · A · B)``; 1 = identical relative
    distributions, 0 = no overlap; NaN when either map is empty.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return float("nan")
    da = (a * a).sum() / sa**2
    db = (b * b).sum() / sb**2
    return float(2.0 * (a * b).sum() / ((da + db) * sa * sb))


def distance_lookups(mask_window: np.ndarray, rows: np.ndarray, cols: np.ndarray, mpp: float,
                     cap_um: float, *, to_outside: bool = False) -> np.ndarray:
    """Euclidean distance (µm) from given pixels to the nearest pixel of a mask.

    Parameters
    ----------
    mask_window : ndarray of bool, shape (h, w)
        The mask around the query pixels (a tile read with a halo).
    rows, cols : ndarray of int
        Query pixels (window coordinates).
    mpp : float
        µm per pixel.
    cap_um : float
        Distances beyond this are reported as ``inf`` (the halo guarantees exactness
        up to it).
    to_outside : bool
        If True, distance to the nearest pixel *outside* the mask instead (0 outside).

    Returns
    -------
    ndarray of float64
        0 for query pixels inside the mask (outside it when ``to_outside``).
    """
    target = ~mask_window if to_outside else mask_window
    if rows.size == 0:
        return np.zeros(0)
    if not target.any():
        return np.full(rows.size, np.inf)
    inside = target[rows, cols]
    out = np.zeros(rows.size)
    if inside.all():
        return out
    # the nearest target pixel of an outside pixel is a boundary pixel of the target (one with
    # a 4-neighbour outside it), so a k-d tree of boundary pixels gives the exact Euclidean
    # distance transform value at the query pixels, without transforming the whole window
    edge = target & ~ndi.binary_erosion(target, _CROSS, border_value=0)
    br, bc = np.nonzero(edge)
    tree = kdtree(np.column_stack([br, bc]).astype(np.float64))
    q = ~inside
    d, _ = tree.query(np.column_stack([rows[q], cols[q]]).astype(np.float64),
                      distance_upper_bound=cap_um / mpp + 1.0)
    d = d * mpp
    out[q] = np.where(d > cap_um, np.inf, d)
    return out
