"""Whole-slide segmentation: stream tissue tiles, batch them, blend, write the plain mask layout.

Works with any predictor that has ``mpp`` and ``predict_batch(images, prompts, *, mpp)``
(the model :class:`~pathxai.segment.predictor.Segmentor` and the classical
:class:`~pathxai.segment.stain.StainSegmentor`). Each tile is encoded once for all prompts.

Output (``docs/contracts.md``, plain mask layout, at the predictor's µm/px)::

    <out_dir>/<slug>.png              binary mask, 0/255 (``.tif``, tiled + zlib, when large)
    <out_dir>/<slug>.instances.tif    instance labels (uint32, tiled + zlib) for cell/nuclei
    <out_dir>/tissue.png              tissue within the segmented tiles (0/255): the slide's
                                      tissue detector (:func:`pathxai.slides.tissue_mask`, holes
                                      filled) resampled to the output grid; masks of region and
                                      cell prompts are kept only inside it, so no class is
                                      reported on glass (falls back to the segmented tiles
                                      when the detector finds no tissue there)
    <out_dir>/thumbnails/<slug>.png   overlays of each mask on the slide thumbnail
    <out_dir>/meta.json               mpp, prompts, canonical labels, checkpoint hash, tile
                                      parameters, counts, timings (``timings_s``: ``total``;
                                      ``read``, the reader thread's time, which overlaps
                                      prediction; ``read_wait``, the time the loop waited for
                                      tiles; ``predict``, inside ``predict_batch``)

Streaming: one tissue detection chooses the tiles and restricts the masks; a background
thread reads the next tiles while the predictor works (slide readers release the GIL while
decoding), and tiles go to ``predict_batch`` in groups of up to four encoder batches (at most
32 tiles by default), so the predictor post-processes one batch while it encodes the next.

Blending: tiles overlap by ``overlap`` px; each tile's binary mask is weighted by a linear
ramp over the overlap and the weighted vote is thresholded at 0.5. Instances: an object is
kept only by the tile whose *core* (the grid cell of side ``tile_size - overlap`` centred in
the overlap) holds its centroid, so objects cut by tile borders are counted once.

Resumable: when ``meta.json`` records the same parameters and every output exists, nothing
is recomputed.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pathxai.exceptions import MissingMPPError

from .pools import cancelling_pool

__all__ = ["segment_slide", "PNG_MAX_PIXELS"]

#: masks with more pixels than this are written as tiled, compressed TIFF instead of PNG
PNG_MAX_PIXELS = 8192 * 8192


def _ramp(n: int, overlap: int) -> np.ndarray:
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = r
        w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def _tissue_on_grid(tm, shape: tuple[int, int], tiles_done: np.ndarray
                    ) -> tuple[np.ndarray, str]:
    """Tissue of the slide on the output grid ``shape`` (rows, cols), within ``tiles_done``.

    ``tm`` is the slide's :class:`~pathxai.slides.TissueMask` (the one that chose the tiles).
    Returns the mask and its source: ``"detector"`` (the low-resolution tissue detector,
    holes filled) or ``"tiles"`` (the segmented tiles, when the detector finds no tissue
    there).
    """
    low = np.asarray(tm.mask, bool)
    if not low.any():
        return tiles_done, "tiles"
    rows = np.minimum((np.arange(shape[0]) + 0.5) * low.shape[0] / shape[0], low.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * low.shape[1] / shape[1], low.shape[1] - 1)
    grid = low[rows.astype(int)[:, None], cols.astype(int)[None, :]] & tiles_done
    if not grid.any():
        return tiles_done, "tiles"
    return grid, "detector"


def _read_timed(tile, reader) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    img = tile.read(reader)
    return img, time.perf_counter() - t0


def _own_objects(lab: np.ndarray, target: np.ndarray, core: tuple[float, float, float, float],
                 next_id: int, rows: np.ndarray, cols: np.ndarray) -> int:
    """Copy into ``target`` (the slide's instance map under this tile) the objects of the
    tile's labels ``lab`` whose centroid lies in the tile's ``core`` ``(y0, y1, x0, x1)``
    (tile px, half-open), on pixels no earlier tile claimed; objects get the next free slide
    ids in label order (an object left with no free pixel gets none). ``rows``/``cols`` are
    the pixel coordinates of ``lab``. Returns the next free id."""
    n = int(lab.max()) + 1 if lab.size else 1
    if n == 1:
        return next_id
    flat = lab.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(flat, weights=rows.ravel(), minlength=n) / count
        cx = np.bincount(flat, weights=cols.ravel(), minlength=n) / count
    y0, y1, x0, x1 = core
    own = (count > 0) & (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)
    own[0] = False
    sel = own[lab] & (target == 0)
    if not sel.any():
        return next_id
    lab_sel = lab[sel]
    placed = np.flatnonzero(np.bincount(lab_sel, minlength=n))
    new = np.zeros(n, np.uint32)
    new[placed] = np.arange(next_id, next_id + placed.size, dtype=np.uint32)
    target[sel] = new[lab_sel]
    return next_id + int(placed.size)


def _write_mask(path_stem: Path, arr: np.ndarray, *, instances: bool = False) -> Path:
    import tifffile

    if instances:
        p = path_stem.with_name(path_stem.name + ".instances.tif")
        tifffile.imwrite(p, arr.astype(np.uint32), tile=(256, 256), compression="zlib")
        return p
    if arr.size > PNG_MAX_PIXELS:
        p = path_stem.with_suffix(".tif")
        tifffile.imwrite(p, arr.astype(np.uint8) * 255, tile=(256, 256), compression="zlib")
        return p
    p = path_stem.with_suffix(".png")
    Image.fromarray(arr.astype(np.uint8) * 255).save(p, optimize=False)
    return p


def _thumbnail(thumb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Overlay ``mask`` (any size) in green on ``thumb`` (h, w, 3)."""
    h, w = thumb.shape[:2]
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
    out = thumb.astype(np.float32).copy()
    out[m] = 0.5 * out[m] + 0.5 * np.array([0, 200, 0], np.float32)
    return out.clip(0, 255).astype(np.uint8)


def segment_slide(predictor: Any, slide: Any, prompts: str | Sequence[Any], *, out_dir,
                  tile_size: int | None = None, overlap: int | None = None,
                  batch_size: int | None = None, min_tissue: float = 0.05,
                  resume: bool = True, thumbnail_size: int = 1024,
                  slide_mpp: float | None = None) -> dict:
    """Segment every tissue tile of a slide for several prompts; write the plain mask layout.

    Parameters
    ----------
    predictor : Segmentor or StainSegmentor
        Anything with ``mpp`` (µm/px it works at) and ``predict_batch``.
    slide : str, Path, SlideReader or ndarray
        Opened with :func:`pathxai.slides.open_slide` when not already a reader.
    prompts : str or sequence of str / ParsedPrompt
    out_dir : path
        Output folder (created).
    tile_size : int, optional
        Tile side in px at the predictor's µm/px (default: ``predictor.tile_size`` or 512).
    overlap : int, optional
        Overlap between neighbouring tiles in px (default ``tile_size // 8``).
    batch_size : int, optional
        Tiles per ``predict_batch`` call. Default: up to four of the predictor's encoder
        batches and at most 32 tiles (``max(b, min(4 * b, 32))`` for ``b =
        predictor.batch_size``, 8 when it has none), so that the predictor post-processes one
        encoder batch while it encodes the next; the results of one call are held in memory
        (about 9 bytes per pixel per prompt).
    min_tissue : float
        Minimum tissue fraction of a tile to be segmented.
    resume : bool
        Skip everything when ``out_dir`` already holds the outputs of the same call.
    slide_mpp : float, optional
        µm/px of the slide when its metadata lacks it.

    Returns
    -------
    dict
        The ``meta.json`` content (plus ``"resumed": True`` when nothing was recomputed).
    """
    from pathxai.slides import SlideReader, iter_tiles, open_slide, tissue_mask

    from .ontology import load_ontology

    t_start = time.perf_counter()
    reader = slide if isinstance(slide, SlideReader) else open_slide(slide, mpp=slide_mpp)
    if reader.mpp is None:
        raise MissingMPPError(
            f"slide {reader.path or '<array>'} has no µm/px in its metadata; pass slide_mpp=..."
        )
    mpp = float(predictor.mpp)
    tile = int(tile_size or getattr(predictor, "tile_size", 512))
    ov = int(tile // 8 if overlap is None else overlap)
    if not 0 <= ov < tile // 2:
        raise ValueError(f"overlap must be in [0, tile_size/2 = {tile // 2}), got {ov}")
    per_batch = int(getattr(predictor, "batch_size", 8))
    bs = int(batch_size or max(per_batch, min(4 * per_batch, 32)))
    onto = getattr(predictor, "ontology", None) or load_ontology()
    parsed = onto.parse_many(prompts)
    seen: dict[str, Any] = {}
    for p in parsed:
        seen.setdefault(p.slug, p)
    parsed = list(seen.values())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w0, h0 = reader.dimensions
    scale = reader.mpp / mpp
    W, H = max(1, math.ceil(w0 * scale)), max(1, math.ceil(h0 * scale))
    ckpt = getattr(predictor, "checkpoint_hash", None)
    params = {
        "slide": {"path": str(reader.path) if reader.path else None,
                  "dimensions": [int(w0), int(h0)], "mpp": float(reader.mpp)},
        "backend": getattr(predictor, "name", type(predictor).__name__),
        "checkpoint_hash": ckpt,
        "postprocess": getattr(predictor, "postprocess", None),
        "mpp": mpp, "tile_size": tile, "overlap": ov, "min_tissue": float(min_tissue),
        "tissue_restriction": "slide tissue detector (holes filled) within segmented tiles",
        "prompts": [{"text": p.text, "label": p.label, "canonical": p.canonical,
                     "slug": p.slug, "instances": bool(p.is_instance_level)} for p in parsed],
    }
    meta_path = out / "meta.json"
    if resume and meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("params") == params and all((out / f).is_file()
                                               for f in old.get("files", {}).values()):
            old["resumed"] = True
            return old

    # accumulators on disk-backed memory maps so big slides stay within RAM
    work = out / ".work"
    work.mkdir(exist_ok=True)
    P = len(parsed)
    votes = np.lib.format.open_memmap(work / "votes.npy", mode="w+", dtype=np.float16,
                                      shape=(P, H, W))
    weights = np.lib.format.open_memmap(work / "weights.npy", mode="w+", dtype=np.float32,
                                        shape=(H, W))
    inst_idx = [i for i, p in enumerate(parsed) if p.is_instance_level]
    inst_maps = {i: np.lib.format.open_memmap(work / f"inst{i}.npy", mode="w+",
                                              dtype=np.uint32, shape=(H, W)) for i in inst_idx}
    next_id = dict.fromkeys(inst_idx, 1)
    stride = tile - ov
    ramp2d = np.outer(_ramp(tile, ov), _ramp(tile, ov))
    rows_px, cols_px = np.indices((tile, tile), dtype=np.float64)
    t_read = t_wait = t_pred = 0.0
    n_tiles = 0
    presences: dict[str, list[float]] = {p.slug: [] for p in parsed}

    def flush(batch_tiles, images) -> None:
        nonlocal t_pred
        t1 = time.perf_counter()
        results = predictor.predict_batch(images, parsed, mpp=mpp)
        t_pred += time.perf_counter() - t1
        for t, res in zip(batch_tiles, results):
            oy, ox = t.row * stride, t.col * stride
            hh, ww = min(tile, H - oy), min(tile, W - ox)
            if hh <= 0 or ww <= 0:
                continue
            wt = ramp2d[:hh, :ww]
            weights[oy:oy + hh, ox:ox + ww] += wt
            # core of this tile (output px): ownership of object centroids
            cy0 = 0 if t.row == 0 else ov / 2
            cx0 = 0 if t.col == 0 else ov / 2
            cy1, cx1 = cy0 + stride + (ov / 2 if t.row == 0 else 0), \
                cx0 + stride + (ov / 2 if t.col == 0 else 0)
            for i, r in enumerate(res):
                presences[parsed[i].slug].append(float(r.presence))
                m = r.mask[:hh, :ww].astype(np.float32)
                votes[i, oy:oy + hh, ox:ox + ww] += (m * wt).astype(np.float16)
                if i in inst_maps and r.instances is not None:
                    next_id[i] = _own_objects(
                        r.instances[:hh, :ww], inst_maps[i][oy:oy + hh, ox:ox + ww],
                        (cy0, cy1, cx0, cx1), next_id[i], rows_px[:hh, :ww], cols_px[:hh, :ww])

    # one detection chooses the tiles and, later, restricts the masks to tissue
    tm = tissue_mask(reader, mpp=max(8.0, float(reader.mpp or 8.0)))
    batch_tiles: list = []
    images: list[np.ndarray] = []
    ahead: deque = deque()   # tiles being read, at most one predict_batch call ahead

    def take() -> None:
        nonlocal t_read, t_wait
        t, fut = ahead.popleft()
        t1 = time.perf_counter()
        img, dt = fut.result()
        t_wait += time.perf_counter() - t1
        t_read += dt
        batch_tiles.append(t)
        images.append(img)
        if len(images) >= bs:
            flush(batch_tiles, images)
            batch_tiles.clear()
            images.clear()

    # on an error queued reads are dropped and the running one is waited for, so the caller
    # may close the slide as soon as the error reaches it
    with cancelling_pool(1, name="pathxai-read") as reader_pool:
        for t in iter_tiles(reader, mpp=mpp, tile_size=tile, overlap=ov,
                            min_tissue=min_tissue, tissue=tm):
            ahead.append((t, reader_pool.submit(_read_timed, t, reader)))
            n_tiles += 1
            if len(ahead) > bs:
                take()
        while ahead:
            take()
        if images:
            flush(batch_tiles, images)

    files: dict[str, str] = {}
    counts: dict[str, dict] = {}
    tiles_done = weights > 0
    tissue, tissue_source = _tissue_on_grid(tm, (H, W), tiles_done)
    files["tissue"] = _write_mask(out / "tissue", tissue).name
    thumb = reader.thumbnail(thumbnail_size)
    (out / "thumbnails").mkdir(exist_ok=True)
    Image.fromarray(thumb).save(out / "thumbnails" / "slide.png")
    for i, p in enumerate(parsed):
        v = np.asarray(votes[i], np.float32)
        mask = np.zeros((H, W), bool)
        np.divide(v, weights, out=v, where=tiles_done)
        inside = tiles_done if p.label == "background" else tissue
        mask[inside] = v[inside] > 0.5
        files[p.slug] = _write_mask(out / p.slug, mask).name
        rec = {"label": p.label, "canonical": p.canonical,
               "area_fraction_of_tissue": float(mask.sum() / max(1, tissue.sum())),
               "area_mm2": float(mask.sum() * (mpp * 1e-3) ** 2),
               "max_tile_presence": max(presences[p.slug], default=0.0)}
        if i in inst_maps:
            lab = np.asarray(inst_maps[i])
            lab = np.where(mask | (lab > 0), lab, 0)
            files[p.slug + ".instances"] = _write_mask(out / p.slug, lab, instances=True).name
            rec["n_objects"] = int(np.unique(lab[lab > 0]).size)
        counts[p.slug] = rec
        Image.fromarray(_thumbnail(thumb, mask)).save(out / "thumbnails" / f"{p.slug}.png")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    meta = {
        "mpp": mpp,
        "shape": [H, W],
        "params": params,
        "files": files,
        "results": counts,
        "n_tiles": n_tiles,
        "tissue_source": tissue_source,
        "tissue_fraction_of_tiles": round(float(tissue.sum() / max(1, tiles_done.sum())), 4),
        "timings_s": {"total": round(time.perf_counter() - t_start, 3),
                      "read": round(t_read, 3), "read_wait": round(t_wait, 3),
                      "predict": round(t_pred, 3)},
        "tiles_per_s": round(n_tiles / max(t_pred, 1e-9), 3),
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return meta
