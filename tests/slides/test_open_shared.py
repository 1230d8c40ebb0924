"""Every file in ../shared/data/slides opens with its documented geometry and pixels, or
raises SlideReadError with a clear reason. References: slides/manifest.csv (geometry,
mpp) and OpenSlide / tifffile called directly (pixels)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import openslide
import pandas as pd
import pytest
import tifffile

from pathxai.exceptions import MissingMPPError, SlideReadError
from pathxai.slides import open_slide

pytestmark = pytest.mark.shared


def _manifest(shared_slides):
    return pd.read_csv(shared_slides / "manifest.csv", dtype=str, keep_default_na=False)


def _os_rgb(path, location, level, size):
    """Independent reference: OpenSlide's RGBA composited on white."""
    with openslide.OpenSlide(str(path)) as s:
        rgba = np.asarray(s.read_region(location, level, size)).astype(np.float64)
    a = rgba[..., 3:] / 255.0
    return np.round(rgba[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)


OPENABLE = ["cmu-1-small-region.svs", "tcga-cr-7395-01a-01-ts1.svs", "small.svs",
            "boxes.tiff", "dicom-boxes/boxes_0.dcm", "dicom-boxes/boxes_1.dcm"]


@pytest.mark.parametrize("name", OPENABLE)
def test_openslide_files_match_manifest_and_openslide(shared_slides, name):
    row = _manifest(shared_slides).set_index("file").loc[name]
    path = shared_slides / name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = open_slide(path)
    with reader:
        assert reader.backend == "openslide"
        assert reader.vendor == row.openslide_vendor
        assert reader.dimensions == (int(row.level0_width), int(row.level0_height))
        assert reader.level_count == int(row.levels)
        dims = [tuple(int(v) for v in d.split("x")) for d in row.level_dimensions.split()]
        assert list(reader.level_dimensions) == dims
        if name == "boxes.tiff":
            # manifest mpp 352.78 is the 72-dpi default of the writer: ignored, with a warning
            assert float(row.mpp) > 300
            assert reader.mpp is None
            assert any("implausible mpp" in str(w.message) for w in caught)
        elif row.mpp:
            assert reader.mpp == pytest.approx(float(row.mpp))
        else:
            assert reader.mpp is None
        if row.objective_power:
            assert reader.objective_power == pytest.approx(float(row.objective_power))
        w, h = reader.dimensions
        loc, size = (w // 4, h // 4), (min(w // 2, 300), min(h // 2, 200))
        np.testing.assert_array_equal(reader.read_region(loc, size),
                                      _os_rgb(path, loc, 0, size))
        top = reader.level_count - 1
        lw, lh = (min(v, 400) for v in reader.level_dimensions[top])
        np.testing.assert_array_equal(reader.read_region((0, 0), (lw, lh), level=top),
                                      _os_rgb(path, (0, 0), top, (lw, lh)))
        rgb = reader.read_region((0, 0), (4, 4))
        assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)


def test_cmu_known_geometry_and_outside_is_white(shared_slides):
    with open_slide(shared_slides / "cmu-1-small-region.svs") as r:
        assert r.dimensions == (2220, 2967) and r.mpp == pytest.approx(0.499)
        region = r.read_region((-10, -20), (40, 40))
        assert (region[:20] == 255).all() and (region[:, :10] == 255).all()
        inner = _os_rgb(shared_slides / "cmu-1-small-region.svs", (0, 0), 0, (30, 20))
        np.testing.assert_array_equal(region[20:, 10:], inner)
        thumb = r.thumbnail(256)
        assert max(thumb.shape[:2]) == 256 and thumb.shape[1] == round(2220 / (2967 / 256))


@pytest.mark.parametrize("name", ["cmu-1-small-region.svs", "tcga-cr-7395-01a-01-ts1.svs"])
def test_tifffile_backend_agrees_with_openslide(shared_slides, name):
    """Our tile-by-tile tifffile reader against OpenSlide's decoder (JPEG / JPEG 2000)."""
    path = shared_slides / name
    with open_slide(path, backend="tifffile") as r:
        w, h = r.dimensions
        loc, size = (w // 3 + 7, h // 3 + 5), (333, 251)  # crosses tile borders
        ours = r.read_region(loc, size).astype(int)
        ref = _os_rgb(path, loc, 0, size).astype(int)
        assert np.abs(ours - ref).mean() < 1.0
        assert np.abs(ours - ref).max() <= 8


def test_kidney_plain_tiff_via_tifffile(shared_slides):
    path = shared_slides / "kidney-48-5.tif"
    ref = tifffile.imread(path)  # independent: the whole (small) image
    assert ref.shape == (901, 1493, 3)
    with open_slide(path) as r:
        assert r.backend == "tifffile" and r.dimensions == (1493, 901) and r.level_count == 1
        assert r.mpp is None
        np.testing.assert_array_equal(r.read_region((700, 400), (120, 90)),
                                      ref[400:490, 700:820])
        with pytest.raises(MissingMPPError, match="mpp="):
            r.read_region_mpp((0, 0), (10, 10), mpp=2.0)
    with open_slide(path, mpp=0.5) as r:
        assert r.mpp == 0.5 and r.mpp_source == "argument"
        assert r.read_region_mpp((0, 0), (100, 50), mpp=1.0).shape == (50, 100, 3)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("broken.svs", ["unsupported format", "IJrE"]),
        ("unopenable.tiff", ["compression", "52479"]),
        ("small_dicom.dcm", ["dicom", "Couldn't get image flavor"]),
        ("dicom-boxes", ["is a folder"]),
        ("no-such-slide.svs", ["file not found"]),
    ],
)
def test_broken_files_raise_slide_read_error(shared_slides, name, words):
    with pytest.raises(SlideReadError) as info:
        open_slide(shared_slides / name)
    msg = str(info.value)
    assert name in msg
    for word in words:
        assert word in msg
    assert "\n" not in msg


def test_unreadable_svs_fails_at_read_time(shared_slides):
    with open_slide(shared_slides / "unreadable.svs") as r:
        assert r.dimensions == (16, 16)
        with pytest.raises(SlideReadError, match="Bogus marker length"):
            r.read_region((0, 0), (16, 16))


def test_truncated_copy_raises(shared_slides, tmp_path):
    data = (shared_slides / "cmu-1-small-region.svs").read_bytes()
    cut = tmp_path / "cut.svs"
    cut.write_bytes(data[: len(data) // 2])  # cuts off every image directory
    with pytest.raises(SlideReadError, match="truncated"):
        open_slide(cut)
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    with pytest.raises(SlideReadError, match="empty file"):
        open_slide(empty)


def test_reader_pickles_and_reopens(shared_slides):
    with open_slide(shared_slides / "cmu-1-small-region.svs") as r:
        clone = pickle.loads(pickle.dumps(r))
        try:
            np.testing.assert_array_equal(clone.read_region((500, 600), (64, 48)),
                                          r.read_region((500, 600), (64, 48)))
            assert clone.mpp == r.mpp
        finally:
            clone.close()
    r.close()
    with pytest.raises(SlideReadError, match="closed"):
        r.read_region((0, 0), (4, 4))
