"""Benchmarks of pathxai.features.

1. Per-object morphometry (area, centroid, perimeter, eccentricity, solidity, axes,
   orientation, bbox) with :func:`pathxai.features.morphometry_px` against
   :func:`skimage.measure.regionprops_table` on the same label image, in the same run:
   throughput of both and the largest absolute difference per property.
2. Spatial statistics for 10⁶ cell centroids (3 types): nearest neighbours within and
   between types, Ripley's L at 3 radii, Delaunay cell graphs, Morisita–Horn on a grid.
3. Distance-transform lookups (``fraction_within_d``) per 4096² tile.

Run: ``python benchmarks/bench_features.py [--nuclei 10000] [--cells 1000000]``. Single core
is enforced with OMP/BLAS thread variables set before numpy is imported. Both wall-clock and
process CPU time are printed: on a shared machine the CPU time is the one-core figure.
"""

from __future__ import annotations

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402


def nuclei_label_image(n: int, seed: int = 0) -> np.ndarray:
    """A label image of ``n`` elliptic, partly ragged nuclei (radius 3-9 px) on a grid."""
    from skimage.draw import ellipse

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    pitch = 24
    lab = np.zeros((side * pitch, side * pitch), np.int32)
    k = 0
    for i in range(side):
        for j in range(side):
            if k >= n:
                break
            k += 1
            r, c = i * pitch + 12 + rng.integers(-3, 4), j * pitch + 12 + rng.integers(-3, 4)
            a, b = rng.uniform(3, 9), rng.uniform(3, 9)
            rr, cc = ellipse(r, c, a, b, shape=lab.shape, rotation=rng.uniform(-np.pi, np.pi))
            lab[rr, cc] = k
    lab[rng.random(lab.shape) < 0.03] = 0  # ragged borders, non-convex objects
    return lab


def bench_morphometry(n: int) -> None:
    from skimage.measure import regionprops_table

    from pathxai.features import morphometry_px

    lab = nuclei_label_image(n)
    props = ["label", "area", "centroid", "perimeter", "eccentricity", "solidity",
             "axis_major_length", "axis_minor_length", "orientation"]
    t0, c0 = time.perf_counter(), time.process_time()
    ref = regionprops_table(lab, properties=props)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ours = morphometry_px(lab)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    n_obj = len(ours)
    print(f"morphometry: {n_obj} nuclei in a {lab.shape[1]}x{lab.shape[0]} label image")
    print(f"  skimage regionprops_table: {t_ref:7.3f} s wall {n_obj / t_ref:9.0f} nuclei/s | "
          f"{c_ref:7.3f} s CPU {n_obj / c_ref:9.0f} nuclei/s")
    print(f"  pathxai morphometry_px:    {t_ours:7.3f} s wall {n_obj / t_ours:9.0f} nuclei/s | "
          f"{c_ours:7.3f} s CPU {n_obj / c_ours:9.0f} nuclei/s")
    print(f"  speed-up: {t_ref / t_ours:.1f}x wall, {c_ref / c_ours:.1f}x CPU")
    pairs = [("area", "area_px"), ("centroid-0", "centroid_row"), ("centroid-1", "centroid_col"),
             ("perimeter", "perimeter_px"), ("eccentricity", "eccentricity"), ("solidity", "solidity"),
             ("axis_major_length", "major_axis_px"), ("axis_minor_length", "minor_axis_px"),
             ("orientation", "orientation_rad")]
    worst = 0.0
    for a, b in pairs:
        diff = np.asarray(ref[a], float) - ours[b].to_numpy()
        if a == "orientation":  # an axis direction: ±π/2 are the same axis
            diff = (diff + np.pi / 2) % np.pi - np.pi / 2
        d = float(np.max(np.abs(diff)))
        worst = max(worst, d)
        print(f"    max |diff| {a:18s} {d:.3e}")
    print(f"  max abs difference over all properties: {worst:.3e}")


def bench_spatial(n: int, seed: int = 0) -> None:
    from pathxai.features.spatial import (
        delaunay_graph,
        kdtree,
        morisita_horn,
        nearest_neighbour_distances,
        point_grid_counts,
        ripley_l,
    )

    rng = np.random.default_rng(seed)
    side = float(np.sqrt(n / 1e4)) * 1000.0  # 10,000 cells per mm² -> side in µm
    pts = rng.uniform(0, side, (n, 2))
    types = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    edge = np.minimum.reduce([pts[:, 0], pts[:, 1], side - pts[:, 0], side - pts[:, 1]])
    grid = (int(np.ceil(side / 100)), int(np.ceil(side / 100)))
    timings = {}
    cpu = {}
    t_all, c_all = time.perf_counter(), time.process_time()

    def tick(name, t0, c0):
        timings[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    sets = [pts[types == t] for t in range(3)]
    trees = [kdtree(p) for p in sets]
    for t in range(3):
        nearest_neighbour_distances(sets[t], tree=trees[t]).mean()
        for u in range(3):
            if u != t:
                nearest_neighbour_distances(sets[t], sets[u], tree=trees[u]).mean()
    tick("nearest neighbours (3 within + 6 between)", t0, c0)
    t0, c0 = time.perf_counter(), time.process_time()
    lv = [ripley_l(sets[t], edge[types == t], side * side, (20.0, 50.0, 100.0), tree=trees[t])
          for t in range(3)]
    tick("Ripley's L at 20/50/100 µm (3 types)", t0, c0)
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(3):
        delaunay_graph(sets[t], 100.0)
    tick("Delaunay graphs (3 types)", t0, c0)
    t0, c0 = time.perf_counter(), time.process_time()
    counts = [point_grid_counts(sets[t], 100.0, grid) for t in range(3)]
    for t in range(3):
        for u in range(t + 1, 3):
            morisita_horn(counts[t], counts[u])
    tick("Morisita-Horn (3 pairs, 100 µm grid)", t0, c0)
    total, total_cpu = time.perf_counter() - t_all, time.process_time() - c_all
    print(f"spatial: {n} cells (3 types) in {side / 1000:.1f} x {side / 1000:.1f} mm, one core")
    for k, v in timings.items():
        print(f"  {k:45s} {v:7.2f} s wall  {cpu[k]:7.2f} s CPU")
    print(f"  total {total:.2f} s wall, {total_cpu:.2f} s CPU "
          f"(CSR check: L(50 µm) of type 0 = {lv[0][1]:.2f} µm)")


def bench_distance_lookups(size: int = 4096, mpp: float = 0.5) -> None:
    from scipy import ndimage as ndi

    from pathxai.features.spatial import distance_lookups

    rng = np.random.default_rng(0)
    mask = ndi.gaussian_filter(rng.normal(size=(size // 8, size // 8)), 6) > 0
    mask = np.kron(mask, np.ones((8, 8), bool))
    rows, cols = rng.integers(0, size, (2, 40_000))
    t0, c0 = time.perf_counter(), time.process_time()
    distance_lookups(mask, rows, cols, mpp, cap_um=100.0)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(f"distance lookups: one region on a {size}x{size} tile + 40,000 centroids: "
          f"{dt:.2f} s wall, {dc:.2f} s CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuclei", type=int, default=10_000)
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--skip-spatial", action="store_true")
    args = ap.parse_args()
    bench_morphometry(args.nuclei)
    if not args.skip_spatial:
        bench_spatial(args.cells)
        bench_distance_lookups()


if __name__ == "__main__":
    main()
