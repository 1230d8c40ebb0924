"""Segmentation benchmark: tiles/s for 1 vs 8 prompts, peak memory, whole-slide time.

1. ``n_tiles`` tiles of 256 px at the model's 0.5 µm/px from the real
   ``cmu-1-small-region.svs`` (``../shared/data/slides``; random tiles otherwise) are
   segmented with 1 prompt and with 8 prompts through ``predict_batch`` (each tile batch is
   encoded once for all prompts). Target: 8 prompts cost at most 1.3× one prompt.
2. Peak memory: process max RSS (and ``torch.cuda.max_memory_allocated`` on CUDA).
3. Whole-slide segmentation of ``cmu-1-small-region.svs`` (2220 × 2967 px at 0.499 µm/px)
   for 3 prompts with :func:`pathxai.segment.slide.segment_slide`.
4. ``--large-slide-mm S``: a 40× slide (0.25 µm/px) of S × S mm, written tile by tile as a
   pyramidal JPEG TIFF whose tissue (a box inset by 5 % of the side) is a periodic mosaic of
   the real ``cmu-1-small-region.svs`` tissue resampled to 0.25 µm/px, is segmented for the
   same 3 prompts: seconds (writing excluded), tiles, tiles/s and tissue mm², i.e. the
   issue's "a 40× slide's tissue in under 30 s" check on a GPU (S = 15 gives about
   180 mm² of tissue; a few mm on a CPU).

The single prompt is ``tumor`` (tissue-level) and, separately, ``nuclei`` (nucleus-level;
``cost_ratio_8_vs_1_nuclei``). A checkpoint with ``tissue_mpp`` answers tissue-level prompts
on a coarser grid than cell/nucleus prompts, so each tile is encoded once per grid the prompts
need: one tissue prompt needs only the coarse grid, the 8 prompts need both.
The 8 prompts include two instance-level ones (nuclei, lymphocytes), whose watershed
post-processing is per prompt and per tile; ``cost_ratio_8_vs_1_regions`` repeats the
measurement with 8 region-level prompts to separate that cost from the decoder's.
``cost_ratio_8_vs_1_network`` times the network alone as the calling thread runs it
(encoder once per tile batch, the decoder once per prompt, maps at the decoder's stride 2;
on CUDA also their upsampling to tile size) and ``postprocess_share_8_prompts`` the share of
the 8-prompt time not spent in the network (upsampling, thresholds, closing, hole filling,
watershed that were not hidden behind it), which grows with the number of prompts by
construction.
Post-processing runs on ``Segmentor.postprocess_workers`` threads (default
``min(4, torch threads)``) while the calling thread encodes the next tile batch and then
works through what is still queued (from the back of the queue, the workers from the front);
``cost_ratio_8_vs_1_nuclei_inline`` and ``tiles_per_s_8_prompts_inline`` repeat the nucleus
comparison with post-processing in the calling thread (``postprocess_workers=0``);
``postprocess_ms_per_tile_8_prompts_inline`` is that run's time beyond the network, per tile.
The 1- and 8-prompt runs alternate ``--repeats`` times and each ratio is the median of the
per-pair ratios (a shared machine's speed drifts; tiles/s are the best run of each).
``--architecture small|base`` times an untrained network of that size (timing does not
depend on the weights) to show how the ratio falls as the encoder's share grows.

On CUDA the predictor runs under bf16 autocast, so the tiles/s printed are bf16 figures.
Model: the shipped ``default`` checkpoint, else ``--checkpoint``, else an untrained ``tiny``
network of the same architecture (same cost). Figures only, no assertions.
Run: ``python benchmarks/bench_segment.py [--n-tiles 32] [--threads 1] [--architecture A]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from pathxai.segment.predictor import Segmentor  # noqa: E402

PROMPTS_8 = ["tumor", "stroma", "nuclei", "lymphocytes", "adipose tissue", "necrosis",
             "gland", "tissue"]
#: 8 region-level prompts (no instance post-processing)
REGIONS_8 = ["tumor", "stroma", "adipose tissue", "necrosis", "gland", "tissue",
             "lymphocytic infiltrate", "normal mucosa"]


def _untrained(arch: str, labels) -> Segmentor:
    from pathxai.segment.build import build_segmentor

    model, cfg = build_segmentor(arch)
    cfg["trained_labels"] = sorted(labels)
    return Segmentor(model, cfg)


def _load(checkpoint: str | None) -> tuple[Segmentor, str]:
    for name in ([checkpoint] if checkpoint else []) + ["default"]:
        try:
            return Segmentor.from_pretrained(name), name
        except Exception as e:  # noqa: BLE001 - report and fall back
            print(f"# could not load {name!r}: {e}")
    from pathxai.segment.build import build_segmentor

    model, cfg = build_segmentor("tiny")
    cfg["trained_labels"] = sorted({"tumor", "stroma", "nucleus", "lymphocyte",
                                    "adipose tissue", "necrosis", "gland", "tissue"})
    return Segmentor(model, cfg), "untrained tiny"


def _tiles(seg: Segmentor, n: int) -> tuple[list[np.ndarray], str]:
    svs = SHARED / "slides" / "cmu-1-small-region.svs"
    rng = np.random.default_rng(0)
    if svs.is_file():
        from pathxai.slides import iter_tiles, open_slide

        with open_slide(svs) as r:
            tiles = list(iter_tiles(r, mpp=seg.mpp, tile_size=256, min_tissue=0.5))
            pick = rng.choice(len(tiles), min(n, len(tiles)), replace=False)
            return [tiles[i].read(r) for i in pick], str(svs.name)
    return [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n)], "random"


def _full_runner(seg: Segmentor, tiles, prompts):
    """Everything ``predict_batch`` does: network, thresholds, post-processing, instances."""
    def run() -> None:
        seg.predict_batch(tiles, prompts, mpp=seg.mpp)
        if seg.device.type == "cuda":
            torch.cuda.synchronize()
    return run


def _network_runner(seg: Segmentor, tiles, prompts):
    """Encoder + decoder only, as ``predict_batch`` runs them on the calling thread: maps at
    the decoder's stride 2 and presences (on a CPU the upsampling to tile size is left to
    the post-processing jobs, as in ``predict_batch``; on CUDA it is part of the network),
    no thresholding, closing, hole filling or watershed: the cost that "encode each tile
    once for all prompts" is about. Each tile batch is encoded once per working grid the
    prompts need (``mpp`` for cell/nucleus prompts, ``tissue_mpp`` for tissue-level ones)."""
    queries, _ = seg._queries(seg.ontology.parse_many(prompts))
    groups = {g: [queries[k] for k in ks] for g, ks in seg._split_by_grid(queries).items()}
    chunks = [tiles[i:i + seg.batch_size] for i in range(0, len(tiles), seg.batch_size)]

    def run() -> None:
        for g, qs in groups.items():
            for c in chunks:
                batch, crop = seg.grid_batch(c, mpp=seg.mpp, grid_mpp=g)
                seg._maps_for_state(seg._encode_batch(batch, seg._views_for(qs)), len(c), qs,
                                    lazy_crop=crop)
        if seg.device.type == "cuda":
            torch.cuda.synchronize()
    return run


def _mosaic_renderer(src: np.ndarray, box: tuple[float, float, float, float]):
    """Renderer for :func:`pathxai.slides.write_pyramidal_tiff`: the level-0 image ``src``
    repeated periodically inside ``box`` (level-0 px), white glass outside; reduced levels
    come from ``src`` resampled once per downsample."""
    from pathxai.segment.predictor import resample_rgb

    cache: dict[int, np.ndarray] = {}

    def render(x: int, y: int, w: int, h: int, downsample: float) -> np.ndarray:
        d = int(round(downsample))
        if d not in cache:
            cache[d] = src if d == 1 else resample_rgb(src, 1.0 / d)
        lv = cache[d]
        ys, xs = np.arange(y, y + h), np.arange(x, x + w)
        out = lv[np.ix_(ys % lv.shape[0], xs % lv.shape[1])]
        x0, y0, x1, y1 = (v / d for v in box)
        inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
        return np.where(inside[..., None], out, np.uint8(255)).astype(np.uint8)

    return render


def _large_slide(seg: Segmentor, side_mm: float, prompts) -> dict:
    """Write a synthetic 40× slide of ``side_mm`` mm and time its segmentation."""
    from pathxai.segment.predictor import resample_rgb
    from pathxai.segment.slide import segment_slide
    from pathxai.slides import open_slide, tissue_mask, write_pyramidal_tiff

    svs = SHARED / "slides" / "cmu-1-small-region.svs"
    with open_slide(svs) as r:
        src = r.read_region((0, 0), r.dimensions)[..., :3]
        src = resample_rgb(np.ascontiguousarray(src), float(r.mpp) / 0.25)
    side = int(round(side_mm * 1000 / 0.25))
    inset = 0.05 * side
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "large_40x.tif"
        t0 = time.perf_counter()
        write_pyramidal_tiff(path, _mosaic_renderer(src, (inset, inset, side - inset,
                                                          side - inset)),
                             width=side, height=side, mpp=0.25, tile=512, compression="jpeg")
        t_write = time.perf_counter() - t0
        with open_slide(path) as r:
            tissue_mm2 = tissue_mask(r).area_mm2
        t0 = time.perf_counter()
        meta = segment_slide(seg, path, prompts, out_dir=Path(d) / "out", resume=False)
        secs = time.perf_counter() - t0
    return {"large_slide_mm": side_mm, "large_slide_px": side, "large_slide_mpp": 0.25,
            "large_slide_write_seconds": round(t_write, 1),
            "large_slide_tissue_mm2": round(tissue_mm2, 1),
            "large_slide_seconds": round(secs, 2), "large_slide_tiles": meta["n_tiles"],
            "large_slide_tiles_per_s": meta["tiles_per_s"],
            "large_slide_nuclei": meta["results"]["nucleus"].get("n_objects")}


def _paired(one, many, repeats: int) -> tuple[float, float, float]:
    """Time ``one`` and ``many`` alternately ``repeats`` times (after a warm-up of each).

    Returns (best time of ``one``, best time of ``many``, median of the per-pair ratios
    many/one): pairing cancels the slow drifts of a shared machine's speed.
    """
    one(), many()
    t1s, t8s = [], []
    for _ in range(repeats):
        for f, acc in ((one, t1s), (many, t8s)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    ratios = np.asarray(t8s) / np.asarray(t1s)
    return min(t1s), min(t8s), float(np.median(ratios))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-tiles", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--architecture", default=None,
                    help="time an untrained network of this registry size instead")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--no-slide", action="store_true", help="skip the whole-slide timing")
    ap.add_argument("--large-slide-mm", type=float, default=None,
                    help="also segment a synthetic 40x slide of this side (mm); see item 4")
    ap.add_argument("--repeats", type=int, default=7,
                    help="alternating 1-prompt / 8-prompt timings; ratios are their median")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    seg, which = _load(a.checkpoint)
    if a.architecture:
        seg = _untrained(a.architecture, seg.config["trained_labels"])
        which = f"untrained {a.architecture}"
    tiles, src = _tiles(seg, a.n_tiles)
    r = a.repeats
    t1, t8, ratio = _paired(_full_runner(seg, tiles, PROMPTS_8[:1]),
                            _full_runner(seg, tiles, PROMPTS_8), r)
    t1n, _, ratio_nuc = _paired(_full_runner(seg, tiles, ["nuclei"]),
                                _full_runner(seg, tiles, PROMPTS_8), r)
    workers, seg.postprocess_workers = seg.postprocess_workers, 0
    _, t8_inline, ratio_nuc_inline = _paired(_full_runner(seg, tiles, ["nuclei"]),
                                             _full_runner(seg, tiles, PROMPTS_8), r)
    seg.postprocess_workers = workers
    _, _, ratio_r = _paired(_full_runner(seg, tiles, PROMPTS_8[:1]),
                            _full_runner(seg, tiles, REGIONS_8), r)
    _, n8, ratio_n = _paired(_network_runner(seg, tiles, PROMPTS_8[:1]),
                             _network_runner(seg, tiles, PROMPTS_8), r)
    res = {
        "model": which, "device": seg.device.type,
        "precision": "bf16 autocast" if seg.device.type == "cuda" else "fp32",
        "threads": a.threads, "postprocess_workers": workers, "tiles": len(tiles), "tile_px": 256, "tile_source": src,
        "tiles_per_s_1_prompt": round(len(tiles) / t1, 2),
        "tiles_per_s_1_prompt_nuclei": round(len(tiles) / t1n, 2),
        "tiles_per_s_8_prompts": round(len(tiles) / t8, 2),
        "grids_mpp": {"tissue-level": seg.tissue_mpp, "cell/nucleus": seg.mpp},
        "repeats": r,
        "cost_ratio_8_vs_1": round(ratio, 3),
        "cost_ratio_8_vs_1_nuclei": round(ratio_nuc, 3),
        "cost_ratio_8_vs_1_nuclei_inline": round(ratio_nuc_inline, 3),
        "tiles_per_s_8_prompts_inline": round(len(tiles) / t8_inline, 2),
        "cost_ratio_8_vs_1_regions": round(ratio_r, 3),
        "cost_ratio_8_vs_1_network": round(ratio_n, 3),
        "postprocess_share_8_prompts": round(max(0.0, t8 - n8) / t8, 3),
        "postprocess_ms_per_tile_8_prompts_inline": round(
            1000 * max(0.0, t8_inline - n8) / len(tiles), 2),
        "parameters": sum(p.numel() for p in seg.model.parameters()),
    }
    svs = SHARED / "slides" / "cmu-1-small-region.svs"
    if svs.is_file() and not a.no_slide:
        from pathxai.segment.slide import segment_slide

        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            meta = segment_slide(seg, svs, ["tissue", "tumor", "nuclei"], out_dir=d,
                                 resume=False)
            res["slide"] = svs.name
            res["slide_seconds"] = round(time.perf_counter() - t0, 2)
            res["slide_tiles"] = meta["n_tiles"]
            res["slide_tiles_per_s"] = meta["tiles_per_s"]
            res["slide_nuclei"] = meta["results"]["nucleus"].get("n_objects")
    if a.large_slide_mm:
        res.update(_large_slide(seg, a.large_slide_mm, ["tissue", "tumor", "nuclei"]))
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if seg.device.type == "cuda":
        res["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
