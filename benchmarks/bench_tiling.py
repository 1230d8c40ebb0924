"""Tiling benchmark: throughput on a real SVS and bounded memory on large synthetic slides.

1. Tiles/s read at 0.5 µm/px (256 px tiles) from the real ``cmu-1-small-region.svs``
   (``../shared/data/slides``; skipped when absent), through OpenSlide and through the
   tifffile backend.
2. Peak memory while tiling synthetic pyramidal JPEG TIFFs of two sizes (default
   10 000 and 40 000 px square at 0.25 µm/px), each written tile by tile (bounded
   memory) and tiled in a fresh process: tissue mask at 8 µm/px (its size, hence its
   memory, grows with the slide area: 1 250 x 1 250 px for 40 000 px), then reading every
   kept tile at 0.5 µm/px. The heap peak while tiling (tracemalloc, reset after the
   mask) and peak RSS are printed; the tiling peak should not grow with the slide size.

Figures only, no assertions on timing. Run: ``python benchmarks/bench_tiling.py``
(``--sizes 5000 20000`` for a quicker run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

from pathxai.slides import iter_tiles, open_slide, tissue_mask, write_pyramidal_tiff  # noqa: E402
from pathxai.slides.synthetic_tiff import checker_renderer  # noqa: E402

TILE_MPP, TILE_SIZE = 0.5, 256


def bench_real_svs() -> None:
    path = SHARED / "slides" / "cmu-1-small-region.svs"
    if not path.is_file():
        print(f"[real svs] skipped: {path} not found (set PATHXAI_SHARED_DATA)")
        return
    for backend in ("openslide", "tifffile"):
        with open_slide(path, backend=backend) as r:
            tiles = list(iter_tiles(r, mpp=TILE_MPP, tile_size=TILE_SIZE, min_tissue=0.0,
                                    tissue=False))
            tiles[0].read(r)  # warm-up (library load, first decode)
            t0 = time.perf_counter()
            for t in tiles:
                t.read(r)
            dt = time.perf_counter() - t0
        print(f"[real svs] {path.name} {r.dimensions[0]}x{r.dimensions[1]} at {r.mpp} µm/px, "
              f"backend={backend}: {len(tiles)} tiles of {TILE_SIZE} px at {TILE_MPP} µm/px "
              f"in {dt:.2f} s = {len(tiles) / dt:.1f} tiles/s")


def child(path: str) -> None:
    """Tile one slide and print a JSON line with the measurements (fresh process)."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    t0 = time.perf_counter()
    with open_slide(path) as r:
        tm = tissue_mask(r, mpp=8.0)
        mask_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        t1 = time.perf_counter()
        n = 0
        for tile in iter_tiles(r, mpp=TILE_MPP, tile_size=TILE_SIZE, min_tissue=0.25,
                               tissue=tm):
            tile.read(r)
            n += 1
        t2 = time.perf_counter()
        info = {"backend": r.backend, "dimensions": r.dimensions, "levels": r.level_count}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info.update(n_tiles=n, mask_s=t1 - t0, tiles_s=t2 - t1, tracemalloc_peak_mb=peak / 2**20,
                mask_peak_mb=mask_peak / 2**20, mask_shape=tm.mask.shape,
                rss_before_mb=rss0 / 1024, rss_peak_mb=rss1 / 1024,
                tissue_area_mm2=tm.area_mm2)
    print(json.dumps(info))


def bench_synthetic(sizes: list[int], workdir: Path) -> None:
    for size in sizes:
        path = workdir / f"synthetic_{size}.tif"
        t0 = time.perf_counter()
        tracemalloc.start()
        write_pyramidal_tiff(
            path, checker_renderer(60.0, 0.25), width=size, height=size, mpp=0.25, tile=512,
            compression="jpeg",
            tissue_box=(0.2 * size, 0.2 * size, 0.8 * size, 0.8 * size),
        )
        write_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        wt = time.perf_counter() - t0
        mb = path.stat().st_size / 2**20
        proc = subprocess.run([sys.executable, __file__, "--child", str(path)],
                              capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        raw_gb = size * size * 3 / 1e9
        print(
            f"[synthetic {size}x{size}] level 0 = {raw_gb:.2f} GB raw RGB, file {mb:.0f} MiB "
            f"(written in {wt:.1f} s, writer heap peak {write_peak:.1f} MiB); "
            f"backend={res['backend']}, {res['levels']} levels; tissue mask {res['mask_s']:.2f} s "
            f"({res['tissue_area_mm2']:.1f} mm² tissue, mask {res['mask_shape'][1]}x"
            f"{res['mask_shape'][0]} px, heap peak {res['mask_peak_mb']:.1f} MiB); "
            f"{res['n_tiles']} tiles read at "
            f"{TILE_MPP} µm/px in {res['tiles_s']:.1f} s = "
            f"{res['n_tiles'] / max(res['tiles_s'], 1e-9):.0f} tiles/s; "
            f"heap peak while tiling (tracemalloc) {res['tracemalloc_peak_mb']:.1f} MiB; "
            f"peak RSS {res['rss_peak_mb']:.0f} MiB (after imports {res['rss_before_mb']:.0f} MiB, "
            f"growth {res['rss_peak_mb'] - res['rss_before_mb']:.0f} MiB)"
        )
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 40_000],
                        help="synthetic slide sides in pixels (default: 10000 40000; none = skip)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to write the synthetic slides (default: a temp folder)")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    bench_real_svs()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        bench_synthetic(args.sizes, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="pathxai_bench_") as tmp:
            bench_synthetic(args.sizes, Path(tmp))


if __name__ == "__main__":
    main()
