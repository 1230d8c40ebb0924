"""Tile grid geometry (hand-computed counts), bounds, overlap, tissue coverage and bounded
memory, on a synthetic pyramidal TIFF whose tissue rectangle is known exactly."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pathxai.exceptions import MissingMPPError
from pathxai.slides import iter_tiles, open_slide, tile_grid, tissue_mask, write_pyramidal_tiff
from pathxai.slides.synthetic_tiff import checker_renderer

W, H, MPP = 2000, 1500, 0.5
TISSUE = (400, 300, 1400, 1100)  # level-0 box (x0, y0, x1, y1) of H&E-coloured pattern


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiling") / "slide.tif"
    return write_pyramidal_tiff(path, checker_renderer(40.0, MPP), width=W, height=H, mpp=MPP,
                                tile=256, compression="jpeg", tissue_box=TISSUE)


def _true_fraction(x, y, s):
    x0, y0, x1, y1 = TISSUE
    ox = max(0.0, min(x + s, x1) - max(x, x0))
    oy = max(0.0, min(y + s, y1) - max(y, y0))
    return ox * oy / (s * s)


def test_grid_counts_match_hand_computation(slide_path):
    with open_slide(slide_path) as r:
        # 64 px at 2 µm/px = 256 level-0 px per tile (slide at 0.5 µm/px)
        tiles = list(iter_tiles(r, mpp=2.0, tile_size=64, min_tissue=0.0, tissue=False))
        # cols: ceil((2000 - 256) / 256) + 1 = 8; rows: ceil((1500 - 256) / 256) + 1 = 6
        assert len(tiles) == 48
        assert {t.col for t in tiles} == set(range(8)) and {t.row for t in tiles} == set(range(6))
        inside = list(iter_tiles(r, mpp=2.0, tile_size=64, min_tissue=0.0, tissue=False,
                                 include_partial=False))
        assert len(inside) == 7 * 5  # floor(1744 / 256) + 1 = 7, floor(1244 / 256) + 1 = 5
        for t in inside:
            assert 0 <= t.x and t.x + t.size0 <= W and 0 <= t.y and t.y + t.size0 <= H
        for t in tiles:  # every tile starts inside the slide
            assert 0 <= t.x < W and 0 <= t.y < H
            assert t.size0 == 256 and t.x_um == t.x * MPP and t.size_um == 128.0
        assert max(t.x + t.size0 for t in tiles) >= W and max(t.y + t.size0 for t in tiles) >= H


def test_overlap_is_respected(slide_path):
    with open_slide(slide_path) as r:
        tiles = list(iter_tiles(r, mpp=2.0, tile_size=64, overlap=16, min_tissue=0.0,
                                tissue=False))
        # stride 48 px at 2 µm/px = 192 level-0 px; cols: ceil(1744 / 192) + 1 = 11
        assert max(t.col for t in tiles) + 1 == 11
        row0 = sorted((t for t in tiles if t.row == 0), key=lambda t: t.col)
        steps = np.diff([t.x for t in row0])
        assert (steps == 192).all()
        # neighbours share 16 output px = 64 level-0 px
        assert row0[0].x + row0[0].size0 - row0[1].x == 64
        with pytest.raises(ValueError, match="overlap"):
            next(iter_tiles(r, mpp=2.0, tile_size=64, overlap=64, tissue=False))


def test_tissue_filter_and_coverage(slide_path):
    with open_slide(slide_path) as r:
        tm = tissue_mask(r)  # 8 µm/px = 16 level-0 px per mask pixel
        true_area_mm2 = (TISSUE[2] - TISSUE[0]) * (TISSUE[3] - TISSUE[1]) * (MPP / 1000) ** 2
        assert tm.area_mm2 == pytest.approx(true_area_mm2, rel=0.05)
        tiles = list(iter_tiles(r, mpp=1.0, tile_size=100, min_tissue=0.5, tissue=tm))
        kept = {(t.row, t.col) for t in tiles}
        for t in iter_tiles(r, mpp=1.0, tile_size=100, min_tissue=0.0, tissue=False):
            truth = _true_fraction(t.x, t.y, t.size0)
            if abs(truth - 0.5) > 0.1:  # away from the threshold the decision must match
                assert ((t.row, t.col) in kept) == (truth >= 0.5), (t, truth)
        for t in tiles:
            assert t.tissue_fraction == pytest.approx(_true_fraction(t.x, t.y, t.size0),
                                                      abs=0.1)
        # any tissue at all: the union of tiles covers the whole tissue rectangle
        loose = list(iter_tiles(r, mpp=1.0, tile_size=100, min_tissue=0.01, tissue=tm))
        ys, xs = np.mgrid[TISSUE[1]:TISSUE[3]:7, TISSUE[0]:TISSUE[2]:7]
        covered = np.zeros(xs.shape, bool)
        for t in loose:
            covered |= (xs >= t.x) & (xs < t.x + t.size0) & (ys >= t.y) & (ys < t.y + t.size0)
        assert covered.all()
        table = tile_grid(r, mpp=1.0, tile_size=100, min_tissue=0.5, tissue=tm)
        assert len(table) == len(tiles)
        assert table.attrs["grid"].n_cols == 10  # ceil((2000 - 200) / 200) + 1


def test_tile_read_matches_read_region_mpp(slide_path):
    with open_slide(slide_path) as r:
        tile = next(iter_tiles(r, mpp=1.0, tile_size=64, min_tissue=0.9))
        img = tile.read(r)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, r.read_region_mpp((tile.x, tile.y), (64, 64),
                                                             mpp=1.0))
        assert img.mean() < 230  # a tissue tile, not glass


def test_tiling_memory_is_bounded(slide_path):
    """Reading every tile keeps Python-heap peaks at the tile cache plus a few tiles,
    far below level 0 (the benchmark checks the same on 10k and 40k px slides)."""
    with open_slide(slide_path, backend="tifffile") as r:
        r.cache_bytes = 1 << 20  # 1 MiB: about five 256 px slide tiles
        tm = tissue_mask(r)
        tracemalloc.start()
        n = 0
        for tile in iter_tiles(r, mpp=0.5, tile_size=128, min_tissue=0.0, tissue=tm):
            tile.read(r)
            n += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    level0_bytes = W * H * 3  # 9 MB
    assert n == 16 * 12  # ceil(2000 / 128) x ceil(1500 / 128)
    # 1 MiB cache + the block being decoded/resampled + one output tile, < 1/3 of level 0
    assert peak < level0_bytes / 3


def test_tiling_needs_mpp():
    with open_slide(np.full((64, 64, 3), 200, np.uint8)) as r, \
            pytest.raises(MissingMPPError, match="mpp="):
        next(iter_tiles(r, mpp=1.0, tile_size=16, tissue=False))
