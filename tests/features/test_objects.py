"""Per-object morphometry equals skimage's regionprops_table; texture equals graycomatrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk, ellipse
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import perimeter, regionprops_table

from pathxai.features.objects import morphometry_px, to_physical
from pathxai.features.regions import perimeter_contrib
from pathxai.features.texture import object_texture, quantise_h

PAIRS = [
    ("area", "area_px"), ("centroid-0", "centroid_row"), ("centroid-1", "centroid_col"),
    ("perimeter", "perimeter_px"), ("eccentricity", "eccentricity"), ("solidity", "solidity"),
    ("axis_major_length", "major_axis_px"), ("axis_minor_length", "minor_axis_px"),
    ("orientation", "orientation_rad"), ("area_convex", "convex_area_px"),
    ("bbox-0", "bbox_min_row"), ("bbox-1", "bbox_min_col"),
]


def _close(ours, ref, name, atol, msg):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    if name == "orientation":  # an axis direction: +π/2 and -π/2 are the same axis
        diff = (ours - ref + np.pi / 2) % np.pi - np.pi / 2
        np.testing.assert_allclose(diff, 0.0, atol=atol, err_msg=msg)
    else:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=msg)


def _random_labels(seed: int, size: int = 256, n: int = 150) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int32)
    for k in range(1, n + 1):
        r, c = rng.integers(0, size, 2)  # objects may touch the image edge
        a, b = rng.uniform(1, 12, 2)
        rr, cc = ellipse(r, c, a, b, shape=lab.shape, rotation=rng.uniform(-np.pi, np.pi))
        lab[rr, cc] = k  # later objects overlap earlier ones: touching, non-convex shapes
    holes = rng.random(lab.shape) < 0.05  # ragged, non-convex, sometimes split objects
    lab[holes] = 0
    lab[5, 5] = n + 1  # a single-pixel object
    lab[10:12, 200:230] = n + 2  # a thin bar
    return lab


@pytest.mark.parametrize("seed", [0, 1])
def test_morphometry_equals_regionprops(seed):
    lab = _random_labels(seed)
    props = ["label", "area", "centroid", "perimeter", "eccentricity", "solidity",
             "axis_major_length", "axis_minor_length", "orientation", "area_convex", "bbox"]
    ref = regionprops_table(lab, properties=props)
    ours = morphometry_px(lab)
    np.testing.assert_array_equal(ours["label"].to_numpy(), ref["label"])
    for a, b in PAIRS:
        _close(ours[b], ref[a], a, 1e-9, f"{a} vs {b}")
    np.testing.assert_array_equal(ours["bbox_max_row"].to_numpy(), ref["bbox-2"] - 1)
    np.testing.assert_array_equal(ours["bbox_max_col"].to_numpy(), ref["bbox-3"] - 1)


def test_offset_moves_centroids_only():
    lab = _random_labels(3, size=96, n=20)
    a = morphometry_px(lab)
    b = morphometry_px(lab, offset=(1000, 7))
    np.testing.assert_allclose(b["centroid_row"] - a["centroid_row"], 1000)
    np.testing.assert_allclose(b["centroid_col"] - a["centroid_col"], 7)
    np.testing.assert_allclose(b["solidity"], a["solidity"])


def test_disk_perimeter_area_and_physical_units():
    r_px, mpp = 40, 0.25
    lab = np.zeros((101, 101), np.int32)
    lab[disk((50, 50), r_px)] = 1
    phys = to_physical(morphometry_px(lab), mpp).iloc[0]
    r_um = r_px * mpp
    # the Benkrid-Crookes estimate (as regionprops) runs ~3-4 % long on digital disks
    assert phys["perimeter_um"] == pytest.approx(2 * math.pi * r_um, rel=0.05)
    assert phys["area_um2"] == pytest.approx(math.pi * r_um**2, rel=0.01)
    assert phys["equivalent_diameter_um"] == pytest.approx(2 * r_um, rel=0.01)
    assert phys["circularity"] == pytest.approx(1.0, abs=0.1)
    assert phys["eccentricity"] < 0.05
    assert phys["solidity"] > 0.98
    # whole-mask perimeter helper equals skimage.measure.perimeter
    assert perimeter_contrib(lab > 0).sum() == pytest.approx(perimeter(lab > 0, 4))


def test_rectangle_axes_exact():
    lab = np.zeros((30, 50), np.int32)
    lab[5:9, 10:40] = 3  # 4 x 30 px
    m = morphometry_px(lab).iloc[0]
    # variance of a discrete uniform of n values: (n² - 1) / 12 -> axis = 4 sqrt(var)
    assert m["major_axis_px"] == pytest.approx(4 * math.sqrt((30**2 - 1) / 12))
    assert m["minor_axis_px"] == pytest.approx(4 * math.sqrt((4**2 - 1) / 12))
    assert m["solidity"] == 1.0
    assert m["orientation_rad"] == pytest.approx(math.pi / 2)  # major axis along columns


def test_empty_label_image():
    m = morphometry_px(np.zeros((10, 10), np.int32))
    assert len(m) == 0 and "solidity" in m.columns


def test_texture_matches_graycomatrix_on_rectangular_objects():
    rng = np.random.default_rng(0)
    h_od = rng.uniform(0, 0.2, (40, 60))
    e_od = rng.uniform(0, 0.3, (40, 60))
    lab = np.zeros((40, 60), np.int32)
    lab[2:20, 3:30] = 1
    lab[22:38, 35:58] = 2
    tex = object_texture(lab, h_od, e_od, levels=8, h_od_max=0.15).set_index("label")
    q = quantise_h(h_od, 8, 0.15).astype(np.uint8)
    for k, (rs, cs) in {1: (slice(2, 20), slice(3, 30)), 2: (slice(22, 38), slice(35, 58))}.items():
        g = graycomatrix(q[rs, cs], [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=8,
                         symmetric=True).sum(axis=3, keepdims=True).astype(float)
        g /= g.sum()
        for prop in ("contrast", "homogeneity", "energy", "correlation"):
            assert tex.loc[k, f"glcm_{prop}"] == pytest.approx(graycoprops(g, prop)[0, 0], rel=1e-9)
        assert tex.loc[k, "h_od"] == pytest.approx(h_od[rs, cs].mean())
        assert tex.loc[k, "e_od"] == pytest.approx(e_od[rs, cs].mean())


@pytest.mark.shared
@pytest.mark.parametrize("dataset", ["cpm15", "glas"])
def test_real_annotations_match_regionprops(shared_data, dataset):
    """Hand-drawn nuclei (CPM-15) and glands (GlaS): every property equals regionprops."""
    import pandas as pd
    from PIL import Image

    idx = pd.read_csv(shared_data / "index.csv", dtype=str, keep_default_na=False)
    rows = idx[(idx["dataset"] == dataset) & (idx["mask_kind"] == "instance")].head(2)
    for mask in rows["mask"]:
        lab = np.asarray(Image.open(shared_data / mask)).astype(np.int32)
        props = ["label", "area", "centroid", "perimeter", "eccentricity", "solidity",
                 "axis_major_length", "axis_minor_length", "orientation", "area_convex", "bbox"]
        ref = regionprops_table(lab, properties=props)
        ours = morphometry_px(lab)
        np.testing.assert_array_equal(ours["label"].to_numpy(), ref["label"])
        for a, b in PAIRS:
            _close(ours[b], ref[a], a, 1e-7, f"{mask}: {a}")
