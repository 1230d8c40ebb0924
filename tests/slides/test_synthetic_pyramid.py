"""Pyramidal TIFFs written in tmp_path with known content: backends, levels, mpp
metadata, read_region_mpp resampling, white outside, arrays and RGBA."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from pathxai.exceptions import MissingMPPError, SlideReadError
from pathxai.slides import open_slide, write_pyramidal_tiff
from pathxai.slides.synthetic_tiff import array_renderer, downsample_box

W, H, MPP = 1000, 700, 0.25


@pytest.fixture(scope="module")
def ramp() -> np.ndarray:
    """R = x / 4, G = y / 4 (level-0 pixel indices), B = 100: linear, so any
    interpolating/antialiasing filter must return the value at the output pixel centre."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([x // 4, y // 4, np.full_like(x, 100)], axis=-1)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory, ramp):
    d = tmp_path_factory.mktemp("pyr")
    pages = write_pyramidal_tiff(d / "pages.tif", array_renderer(ramp), width=W, height=H,
                                 mpp=MPP, tile=128, compression="deflate")
    subifd = write_pyramidal_tiff(d / "subifd.tif", array_renderer(ramp), width=W, height=H,
                                  mpp=MPP, tile=128, compression="deflate", subifds=True)
    return pages, subifd


def test_levels_and_backends(pyramids, ramp):
    pages, subifd = pyramids
    expected = [(1000, 700), (500, 350), (250, 175), (125, 88)]
    with open_slide(pages) as r:  # consecutive pages: OpenSlide generic-tiff
        assert r.backend == "openslide" and r.vendor == "generic-tiff"
        assert list(r.level_dimensions) == expected and r.mpp == pytest.approx(MPP)
    with open_slide(subifd) as r:  # SubIFD pyramid: OpenSlide sees 1 level -> tifffile
        assert r.backend == "tifffile" and list(r.level_dimensions) == expected
        assert r.mpp == pytest.approx(MPP)
        np.testing.assert_array_equal(r.read_region((130, 250), (300, 200)),
                                      ramp[250:450, 130:430])
        ref1 = downsample_box(ramp, 2)
        np.testing.assert_array_equal(r.read_region((130, 250), (150, 100), level=1),
                                      ref1[125:225, 65:215])
        assert "backend='tifffile'" in repr(r) and "mpp=0.25" in repr(r)


def test_tifffile_reads_only_touched_tiles_and_matches_tifffile(pyramids):
    _, subifd = pyramids
    with tifffile.TiffFile(subifd) as tif:  # independent reference: tifffile's own decode
        ref = tif.pages[0].asarray()
    with open_slide(subifd, backend="tifffile") as r:
        np.testing.assert_array_equal(r.read_region((0, 0), (W, H)), ref)
        r._cache.clear()
        r.read_region((300, 300), (10, 10))
        assert len(r._cache) == 1  # one 128 px tile decoded for a 10 x 10 read


@pytest.mark.parametrize("which", [0, 1])
def test_read_region_mpp_resamples_linear_pattern(pyramids, which):
    path = pyramids[which]
    with open_slide(path) as r:
        # 0.75 µm/px = 3x level 0 -> read level 1 (2x) and resample by 1.5
        x0, y0, ds = 40, 60, 3.0
        out = r.read_region_mpp((x0, y0), (200, 150), mpp=MPP * ds).astype(float)
        assert out.shape == (150, 200, 3)
        j, i = np.mgrid[0:150, 0:200]
        # output pixel (i, j) is centred at level-0 x0 + (i + 0.5) * ds; pixel k has
        # centre k + 0.5 and value k / 4 (before flooring)
        exp_r = (x0 + (i + 0.5) * ds - 0.5) / 4.0
        exp_g = (y0 + (j + 0.5) * ds - 0.5) / 4.0
        core = (slice(3, -3), slice(3, -3))
        # x // 4 steps: the ramp's integer floor adds up to +-0.5 plus rounding
        assert np.abs(out[..., 0] - exp_r)[core].max() <= 1.5
        assert np.abs(out[..., 1] - exp_g)[core].max() <= 1.5
        assert np.abs(out[..., 2] - 100).max() <= 1


def test_read_region_mpp_exact_level_and_identity(pyramids, ramp):
    pages, _ = pyramids
    with open_slide(pages) as r:
        same = r.read_region_mpp((10, 20), (64, 32), mpp=MPP)
        np.testing.assert_array_equal(same, ramp[20:52, 10:74])
        lvl1 = r.read_region_mpp((100, 200), (50, 40), mpp=2 * MPP)
        np.testing.assert_array_equal(lvl1, downsample_box(ramp, 2)[100:140, 50:100])


def test_read_region_mpp_outside_is_white_and_blocks_are_seamless(pyramids, monkeypatch):
    pages, _ = pyramids
    import pathxai.slides.reader as reader_mod

    with open_slide(pages) as r:
        out = r.read_region_mpp((W - 40, H - 40), (40, 40), mpp=2 * MPP)
        assert (out[25:, :] == 255).all() and (out[:, 25:] == 255).all()
        big = r.read_region_mpp((5, 5), (300, 200), mpp=MPP * 2.5)
        monkeypatch.setattr(reader_mod, "_SRC_BLOCK", 64)  # force many small blocks
        blocks = r.read_region_mpp((5, 5), (300, 200), mpp=MPP * 2.5)
        np.testing.assert_array_equal(big, blocks)


def test_ome_tiff_mpp_and_levels(tmp_path, ramp):
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(ramp, tile=(128, 128), subifds=1, compression="zlib", photometric="rgb",
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm",
                            "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "µm"})
        tif.write(downsample_box(ramp, 2), tile=(128, 128), subfiletype=1,
                  compression="zlib", photometric="rgb")
    with open_slide(path) as r:
        assert r.backend == "tifffile" and r.vendor == "ome"
        assert r.mpp == pytest.approx(0.5) and r.level_count == 2
        np.testing.assert_array_equal(r.read_region((7, 9), (33, 21)), ramp[9:30, 7:40])


def test_jpeg_tiff_and_thumbnail(tmp_path, ramp):
    path = write_pyramidal_tiff(tmp_path / "j.tif", array_renderer(ramp), width=W, height=H,
                                mpp=MPP, tile=128, compression="jpeg")
    with open_slide(path) as r, open_slide(path, backend="tifffile") as t:
        a, b = r.read_region((200, 100), (256, 256)), t.read_region((200, 100), (256, 256))
        assert np.abs(a.astype(int) - b).max() <= 2  # same JPEG data, two decoders
        assert np.abs(a.astype(int) - ramp[100:356, 200:456]).mean() < 2.0
        thumb = r.thumbnail((100, 100))
        assert thumb.shape == (70, 100, 3)


def test_truncated_synthetic_tile_data(tmp_path, ramp):
    path = write_pyramidal_tiff(tmp_path / "t.tif", array_renderer(ramp), width=W, height=H,
                                mpp=MPP, tile=128, compression="deflate", subifds=True)
    with tifffile.TiffFile(path) as tif:
        offsets = tif.pages[0].dataoffsets
        cut_at = int(offsets[len(offsets) // 2])
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[:cut_at])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = open_slide(cut, backend="tifffile")
        except SlideReadError as exc:
            assert "truncated" in str(exc)
            return
    with r, pytest.raises(SlideReadError, match="truncated"):
        r.read_region((0, 0), (W, H))


def test_array_and_pillow_backends(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left opaque red, right transparent
    rgba[:, 15:, 3] = 0
    with open_slide(rgba, mpp=0.5) as r:
        assert r.backend == "array" and r.dimensions == (30, 20)
        out = r.read_region((0, 0), (30, 20))
        assert (out[:, :15] == [200, 0, 0]).all() and (out[:, 15:] == 255).all()
        clone = pickle.loads(pickle.dumps(r))
        np.testing.assert_array_equal(clone.read_region((0, 0), (30, 20)), out)
    png = tmp_path / "t.png"
    Image.fromarray(rgba).save(png)
    with open_slide(png) as r:
        assert r.backend == "pillow" and r.mpp is None
        np.testing.assert_array_equal(r.read_region((0, 0), (30, 20)), out)
        with pytest.raises(MissingMPPError, match="mpp="):
            r.read_region_mpp((0, 0), (5, 5), mpp=1.0)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    with open_slide(gray) as r:
        np.testing.assert_array_equal(r.read_region((0, 0), (4, 3))[..., 1], gray)
    with pytest.raises(SlideReadError, match="shape"):
        open_slide(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="level"):
        open_slide(gray).read_region((0, 0), (2, 2), level=3)
