"""Whole-slide feature computation, tile by tile, with bounded pixel memory.

Pass 1 reads each tile core with a 2 px halo and accumulates region sums (pixels, perimeter,
interfaces, grid counts, optical densities) and component labels joined across seams.
Objects entirely inside a core are measured there; objects touching an inner tile edge
(cut by a border), or whose label appears in several tiles, are measured once, afterwards,
on a window covering their whole bounding box. So every object is counted once and gets
the same numbers whatever the tiling.

Pass 2 reads each tile with a halo of ``max_reach_um`` and looks up, for the objects whose
rounded centroid pixel lies in the core, region membership and distances (distance
transforms). Spatial statistics then run on all centroids at once.

Centroid rounding rule: an object is *in* a region when the pixel
``(numpy.rint(mean row), numpy.rint(mean col))`` (round half to even) is in the region.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from pathxai.exceptions import FeatureError
from pathxai.features.masks_io import CONTRACT_OBJECTS, CONTRACT_REGIONS, SlideMasks, check_mpp
from pathxai.features.naming import format_um, slugify
from pathxai.features.objects import morphometry_px, to_physical
from pathxai.features.regions import (
    ComponentCounter,
    grid_counts,
    interface_pairs,
    perimeter_contrib,
)
from pathxai.features.registry import OBJECT_MEASURES, TEXTURE_MEASURES, FeatureParams
from pathxai.features.spatial import (
    delaunay_graph,
    distance_lookups,
    kdtree,
    morisita_horn,
    nearest_neighbour_distances,
    point_grid_counts,
    ripley_l,
)
from pathxai.features.texture import object_texture, od_channels

__all__ = ["accumulate_slide", "canonical_order", "object_summary_features"]

_ORDER = {name: i for i, name in enumerate((*CONTRACT_REGIONS, *CONTRACT_OBJECTS))}


def canonical_order(names) -> list[str]:
    """Contract categories first (in code order), then the others alphabetically."""
    return sorted(names, key=lambda n: (_ORDER.get(n, len(_ORDER)), n))


def _tiles(h: int, w: int, tile: int) -> Iterator[tuple[tuple[int, int], slice, slice]]:
    for i, r0 in enumerate(range(0, h, tile)):
        for j, c0 in enumerate(range(0, w, tile)):
            yield (i, j), slice(r0, min(r0 + tile, h)), slice(c0, min(c0 + tile, w))


def _window(arr, rs: slice, cs: slice, halo: int, shape: tuple[int, int], fill=0) -> np.ndarray:
    """``arr[rs, cs]`` grown by ``halo`` px, padded with ``fill`` beyond the slide."""
    h, w = shape
    r0, r1 = rs.start - halo, rs.stop + halo
    c0, c1 = cs.start - halo, cs.stop + halo
    src = np.asarray(arr[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)])
    if r0 >= 0 and c0 >= 0 and r1 <= h and c1 <= w:
        return src
    out = np.full((r1 - r0, c1 - c0, *src.shape[2:]), fill, dtype=src.dtype)
    out[max(r0, 0) - r0:max(r0, 0) - r0 + src.shape[0], max(c0, 0) - c0:max(c0, 0) - c0 + src.shape[1]] = src
    return out


def _measure_objects(labels: np.ndarray, od: tuple[np.ndarray, np.ndarray] | None,
                     offset: tuple[int, int], params: FeatureParams) -> pd.DataFrame:
    """Morphometry (and texture, given H/E optical densities) of every object in a window."""
    px = morphometry_px(labels, offset=offset)
    if od is not None and len(px):
        tex = object_texture(labels, od[0], od[1], levels=params.glcm_levels, h_od_max=params.h_od_max)
        px = px.merge(tex, on="label", how="left")
    return px


class _Regions:
    """Per-slide region accumulators."""

    def __init__(self, names: list[str], grid_shape: tuple[int, int], with_od: bool):
        self.names = names
        self.pixels = dict.fromkeys(names, 0)
        self.perimeter_px = dict.fromkeys(names, 0.0)
        self.components = {n: ComponentCounter() for n in names}
        self.grid = {n: np.zeros(grid_shape, dtype=np.int64) for n in names}
        self.od = {n: [0.0, 0.0] for n in names} if with_od else None
        self.pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if "tissue" not in (a, b)]
        self.interface = dict.fromkeys(self.pairs, 0)


def accumulate_slide(slide: SlideMasks, *, params: FeatureParams | None = None,
                     tile_size: int | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Compute the built-in slide features and the per-object table of one slide.

    Parameters
    ----------
    slide : SlideMasks
        Validated masks (see :mod:`pathxai.features.masks_io`).
    params : FeatureParams, optional
        Distances, radii, grid and GLCM settings.
    tile_size : int, optional
        Tile side in pixels (default: the whole slide as one tile). Results do not depend
        on it (up to float rounding).

    Returns
    -------
    features : Series
        Built-in features by name (see :func:`pathxai.features.list_features`).
    objects : DataFrame
        One row per object: ``object`` (category), ``label``, centroid (px and µm), shape
        measures in µm, texture measures when an image is given, ``in__{region}`` flags
        and ``distance_um__{region}`` (inf beyond ``params.max_reach_um``).
    """
    params = params or FeatureParams()
    mpp = check_mpp(slide.mpp, where=f"slide {slide.slide_id!r}")
    h, w = slide.shape
    tile = int(tile_size) if tile_size else max(h, w)
    if tile < 16:
        raise FeatureError(f"tile_size must be at least 16 px; got {tile_size}")
    # a category with instances is measured as objects (its binary mask is their union)
    region_names = canonical_order(n for n in slide.regions if n not in slide.instances)
    object_names = canonical_order(slide.instances)
    for n in [*region_names, *object_names]:
        slugify(n)
    with_image = slide.image is not None
    grid_shape = (max(1, math.ceil(h * mpp / params.grid_um)), max(1, math.ceil(w * mpp / params.grid_um)))
    reg = _Regions([*region_names, "tissue"], grid_shape, with_image)

    def tissue_window(rs, cs, halo):
        if slide.tissue is not None:
            return _window(slide.tissue, rs, cs, halo, (h, w)) != 0
        acc = None
        for arr in (*slide.regions.values(), *slide.instances.values()):
            m = _window(arr, rs, cs, halo, (h, w)) != 0
            acc = m if acc is None else (acc | m)
        return acc

    done: dict[str, list[pd.DataFrame]] = {n: [] for n in object_names}
    cut: dict[str, list[pd.DataFrame]] = {n: [] for n in object_names}
    # ---------------------------------------------------------------- pass 1
    halo = 2
    for index, rs, cs in _tiles(h, w, tile):
        core = (slice(halo, halo + rs.stop - rs.start), slice(halo, halo + cs.stop - cs.start))
        wins = {n: _window(slide.regions[n], rs, cs, halo, (h, w)) != 0 for n in region_names}
        wins["tissue"] = tissue_window(rs, cs, halo)
        if with_image:
            img_core = np.asarray(slide.image[rs, cs])[..., :3]
            h_od, e_od = od_channels(img_core)
        for n, win in wins.items():
            cm = win[core]
            reg.pixels[n] += int(cm.sum())
            reg.perimeter_px[n] += float(perimeter_contrib(win)[core].sum())
            reg.components[n].add_tile(index, cm)
            reg.grid[n] += grid_counts(cm, rs.start, cs.start, mpp, params.grid_um, grid_shape)
            if reg.od is not None:
                reg.od[n][0] += float(h_od[cm].sum())
                reg.od[n][1] += float(e_od[cm].sum())
        for a, b in reg.pairs:
            reg.interface[(a, b)] += interface_pairs(wins[a], wins[b], core)
        inner = (rs.start > 0, rs.stop < h, cs.start > 0, cs.stop < w)
        for n in object_names:
            lab = np.asarray(slide.instances[n][rs, cs])
            if not lab.any():
                continue
            m = _measure_objects(lab, (h_od, e_od) if with_image else None, (rs.start, cs.start), params)
            edge = []
            for is_inner, line in zip(inner, (lab[0], lab[-1], lab[:, 0], lab[:, -1])):
                if is_inner:
                    edge.append(line[line != 0])
            touching = np.isin(m["label"].to_numpy(), np.concatenate(edge)) if edge else np.zeros(len(m), bool)
            done[n].append(m[~touching])
            cut[n].append(m[touching])
    # ---------------------------------------------------------------- objects cut by tiles
    tables = []
    for n in object_names:
        fin = pd.concat(done[n], ignore_index=True) if done[n] else None
        parts = pd.concat(cut[n], ignore_index=True) if cut[n] else None
        if fin is None and parts is None:
            continue
        frames = [f for f in (fin, parts) if f is not None and len(f)]
        allrows = pd.concat(frames, ignore_index=True) if frames else fin
        dup = allrows["label"].duplicated(keep=False)
        redo_labels = set(allrows.loc[dup, "label"]) | (set(parts["label"]) if parts is not None else set())
        keep = fin[~fin["label"].isin(redo_labels)] if fin is not None else None
        redone = _remeasure(slide, n, allrows[allrows["label"].isin(redo_labels)], params, (h, w))
        obj = pd.concat([f for f in (keep, redone) if f is not None and len(f)], ignore_index=True)
        obj = obj.sort_values("label", ignore_index=True)
        phys = to_physical(obj, mpp)
        for col in TEXTURE_MEASURES:
            if col in obj:
                phys[col] = obj[col].to_numpy()
        phys.insert(0, "object", n)
        tables.append(phys)
    objects = pd.concat(tables, ignore_index=True) if tables else _empty_objects()
    # ---------------------------------------------------------------- pass 2: lookups
    reach = params.max_reach_um
    halo2 = int(math.ceil(reach / mpp)) + 1
    cap = halo2 * mpp - 1e-9
    rr = np.rint(objects["centroid_row"].to_numpy()).astype(np.int64)
    cc = np.rint(objects["centroid_col"].to_numpy()).astype(np.int64)
    inside = {n: np.zeros(len(objects), dtype=bool) for n in region_names}
    dist = {n: np.full(len(objects), np.inf) for n in region_names}
    edge_d = np.full(len(objects), np.inf)
    if len(objects):
        for _, rs, cs in _tiles(h, w, tile):
            sel = np.flatnonzero((rr >= rs.start) & (rr < rs.stop) & (cc >= cs.start) & (cc < cs.stop))
            if sel.size == 0:
                continue
            # shrink the window to the points' bounding box (exact: each point keeps its halo)
            rs = slice(int(rr[sel].min()), int(rr[sel].max()) + 1)
            cs = slice(int(cc[sel].min()), int(cc[sel].max()) + 1)
            qr, qc = rr[sel] - rs.start + halo2, cc[sel] - cs.start + halo2
            for n in region_names:
                win = _window(slide.regions[n], rs, cs, halo2, (h, w)) != 0
                inside[n][sel] = win[qr, qc]
                dist[n][sel] = distance_lookups(win, qr, qc, mpp, cap)
            tw = tissue_window(rs, cs, halo2)
            edge_d[sel] = distance_lookups(tw, qr, qc, mpp, cap, to_outside=True)
        for n in region_names:
            s = slugify(n)
            objects[f"in__{s}"] = inside[n]
            objects[f"distance_um__{s}"] = dist[n]
    feats = _slide_features(reg, objects, object_names, region_names, mpp, params, edge_d, grid_shape)
    return feats, objects


def _remeasure(slide: SlideMasks, name: str, rows: pd.DataFrame, params: FeatureParams,
               shape: tuple[int, int]) -> pd.DataFrame | None:
    """Measure objects on windows covering their full bounding boxes (cut objects)."""
    if rows is None or not len(rows):
        return None
    bb = rows.groupby("label").agg(r0=("bbox_min_row", "min"), c0=("bbox_min_col", "min"),
                                   r1=("bbox_max_row", "max"), c1=("bbox_max_col", "max"))
    bb = bb.sort_values(["r0", "c0"])
    out = []
    limit = 4096
    group: list[int] = []
    box = None

    def flush():
        if not group:
            return
        r0, c0, r1, c1 = (int(v) for v in box)
        rs, cs = slice(r0, r1 + 1), slice(c0, c1 + 1)
        lab = np.asarray(slide.instances[name][rs, cs])
        od = od_channels(np.asarray(slide.image[rs, cs])[..., :3]) if slide.image is not None else None
        m = _measure_objects(lab, od, (r0, c0), params)
        out.append(m[m["label"].isin(group)])

    for label, b in bb.iterrows():
        nb = (b.r0, b.c0, b.r1, b.c1) if box is None else (
            min(box[0], b.r0), min(box[1], b.c0), max(box[2], b.r1), max(box[3], b.c1))
        if box is not None and (nb[2] - nb[0] > limit or nb[3] - nb[1] > limit):
            flush()
            group, box = [], (b.r0, b.c0, b.r1, b.c1)
        else:
            box = nb
        group.append(int(label))
    flush()
    return pd.concat(out, ignore_index=True)


def _empty_objects() -> pd.DataFrame:
    cols = ["object", "label", "centroid_row", "centroid_col", "x_um", "y_um", *OBJECT_MEASURES,
            "orientation_rad"]
    return pd.DataFrame({c: pd.Series(dtype="object" if c == "object" else "float64") for c in cols})


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"mean": np.nan, "sd": np.nan, "median": np.nan, "iqr": np.nan}
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    return {"mean": float(v.mean()), "sd": float(v.std()), "median": float(q50), "iqr": float(q75 - q25)}


def object_summary_features(objects: pd.DataFrame, name: str, *, texture: bool = False) -> dict[str, float]:
    """Distribution statistics (mean, SD, median, IQR) of each object measure of one type.

    Parameters
    ----------
    objects : DataFrame
        Per-object table (``object`` column and measure columns).
    name : str
        Object category.
    texture : bool
        Also summarise the intensity/texture measures (NaN when the table lacks them).
    """
    s = slugify(name)
    sub = objects[objects["object"] == name]
    out: dict[str, float] = {}
    for m in (*OBJECT_MEASURES, *(TEXTURE_MEASURES if texture else ())):
        vals = sub[m].to_numpy(dtype=np.float64) if m in sub.columns else np.zeros(0)
        for stat, v in _stats(vals).items():
            out[f"{stat}_{m}__{s}"] = v
    return out


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b > 0 else float("nan")


def _slide_features(reg: _Regions, objects: pd.DataFrame, object_names: list[str],
                    region_names: list[str], mpp: float, params: FeatureParams,
                    edge_d: np.ndarray, grid_shape: tuple[int, int]) -> pd.Series:
    f: dict[str, float] = {}
    px_mm2 = mpp * mpp / 1e6
    tissue_mm2 = reg.pixels["tissue"] * px_mm2
    for n in [*region_names, "tissue"]:
        s = slugify(n)
        area = reg.pixels[n] * px_mm2
        perim_mm = reg.perimeter_px[n] * mpp / 1000.0
        ncomp = reg.components[n].count()
        f[f"area_mm2__{s}"] = area
        if n != "tissue":
            f[f"area_fraction__{s}"] = _div(area, tissue_mm2)
        f[f"n_components__{s}"] = float(ncomp)
        f[f"perimeter_mm__{s}"] = perim_mm
        f[f"compactness__{s}"] = _div(4 * math.pi * area, perim_mm**2) if area > 0 else float("nan")
        f[f"fragmentation_per_mm2__{s}"] = _div(ncomp, area)
        if reg.od is not None:
            f[f"pixel_mean_h_od__{s}"] = _div(reg.od[n][0], reg.pixels[n])
            f[f"pixel_mean_e_od__{s}"] = _div(reg.od[n][1], reg.pixels[n])
    for i, a in enumerate(region_names):
        for b in region_names[i + 1:]:
            f[f"ratio__{slugify(a)}__to__{slugify(b)}"] = _div(reg.pixels[a], reg.pixels[b])
    for (a, b), k in reg.interface.items():
        f[f"interface_length_mm__{slugify(a)}__to__{slugify(b)}"] = k * mpp / 1000.0
    if not object_names:
        return pd.Series(f, dtype="float64")
    n_all = len(objects)
    f["count__all_objects"] = float(n_all)
    pts_all = objects[["x_um", "y_um"]].to_numpy(dtype=np.float64)
    types = objects["object"].to_numpy()
    trees = {o: kdtree(pts_all[types == o]) for o in object_names if (types == o).any()}
    for o in object_names:
        s = slugify(o)
        sel = types == o
        cnt = int(sel.sum())
        pts = pts_all[sel]
        f[f"count__{s}"] = float(cnt)
        f[f"proportion__{s}"] = _div(cnt, n_all)
        f[f"density_per_mm2__{s}"] = _div(cnt, tissue_mm2)
        for r in region_names:
            if r == o:  # a category given both as a region mask and as instances
                continue
            rs_ = slugify(r)
            k_in = int(objects.loc[sel, f"in__{rs_}"].sum()) if cnt else 0
            area_r = reg.pixels[r] * px_mm2
            f[f"count__{s}__in__{rs_}"] = float(k_in)
            f[f"density_per_mm2__{s}__in__{rs_}"] = _div(k_in, area_r)
            f[f"fraction__{s}__in__{rs_}"] = _div(k_in, cnt)
            d = objects.loc[sel, f"distance_um__{rs_}"].to_numpy() if cnt else np.zeros(0)
            for dd in params.distances_um:
                tag = format_um(dd)
                f[f"fraction_within_{tag}__{s}__of__{rs_}"] = _div(int((d <= dd).sum()), cnt)
                f[f"fraction_margin_{tag}__{s}__of__{rs_}"] = _div(int(((d > 0) & (d <= dd)).sum()), cnt)
        f.update(object_summary_features(objects, o, texture=reg.od is not None))
        nn = nearest_neighbour_distances(pts, tree=trees.get(o))
        f[f"mean_nn_distance_um__{s}"] = float(nn.mean()) if nn.size else np.nan
        f[f"median_nn_distance_um__{s}"] = float(np.median(nn)) if nn.size else np.nan
        for o2 in object_names:
            if o2 == o:
                continue
            nn2 = nearest_neighbour_distances(pts, pts_all[types == o2], tree=trees.get(o2))
            f[f"mean_nn_distance_um__{s}__to__{slugify(o2)}"] = float(nn2.mean()) if nn2.size else np.nan
        lvals = ripley_l(pts, edge_d[sel], tissue_mm2 * 1e6, tuple(params.ripley_radii_um),
                         tree=trees.get(o))
        for rad, lv in zip(params.ripley_radii_um, lvals):
            f[f"ripley_l_{format_um(rad)}__{s}"] = float(lv)
        g = delaunay_graph(pts, params.delaunay_max_edge_um)
        f[f"delaunay_mean_degree__{s}"] = g["mean_degree"]
        f[f"delaunay_mean_edge_um__{s}"] = g["mean_edge_um"]
        f[f"delaunay_sd_edge_um__{s}"] = g["sd_edge_um"]
        counts_o = point_grid_counts(pts, params.grid_um, grid_shape)
        for o2 in object_names:
            if canonical_order([o, o2])[0] == o and o2 != o:
                counts_2 = point_grid_counts(pts_all[types == o2], params.grid_um, grid_shape)
                f[f"morisita_horn__{s}__to__{slugify(o2)}"] = morisita_horn(counts_o, counts_2)
        for r in region_names:
            if r == o:
                continue
            f[f"morisita_horn__{s}__to__{slugify(r)}"] = morisita_horn(counts_o, reg.grid[r])
    return pd.Series(f, dtype="float64")
