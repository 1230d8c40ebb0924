"""Slide features on constructed masks whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pathxai.exceptions import MissingMPPError
from pathxai.features import compute_features
from pathxai.features.spatial import delaunay_graph, morisita_horn, ripley_l

MPP = 0.5  # µm per pixel; 1 px = 0.25 µm²
PX_MM2 = MPP * MPP / 1e6


def _slide():
    """400 x 400 px: tumor cols 0-199, stroma cols 200-299, glass beyond; 5 lymphocytes."""
    h = w = 400
    tumor = np.zeros((h, w), bool)
    tumor[:, :200] = True
    stroma = np.zeros((h, w), bool)
    stroma[:, 200:300] = True
    necrosis = np.zeros((h, w), bool)
    necrosis[10:20, 10:20] = True
    necrosis[30:40, 30:40] = True
    lymph = np.zeros((h, w), np.int32)
    # centre (row, col); distances of the centre pixel to the nearest tumor pixel (col 199)
    centres = [(50, 100), (150, 100), (50, 250), (150, 290), (300, 280)]
    for k, (r, c) in enumerate(centres, start=1):
        lymph[r - 1:r + 2, c - 1:c + 2] = k  # 3 x 3 px = 2.25 µm²
    return {"tumor": tumor, "stroma": stroma, "necrosis": necrosis}, {"lymphocyte": lymph}, tumor | stroma


def test_areas_counts_densities_distances_ratios():
    masks, inst, tissue = _slide()
    f = compute_features(masks, instances=inst, tissue=tissue, mpp=MPP)
    tissue_mm2 = 300 * 400 * PX_MM2
    tumor_mm2 = 200 * 400 * PX_MM2
    assert f["area_mm2__tumor"] == pytest.approx(0.02)
    assert f["area_mm2__stroma"] == pytest.approx(0.01)
    assert f["area_mm2__tissue"] == pytest.approx(tissue_mm2)
    assert f["area_fraction__tumor"] == pytest.approx(2 / 3)
    assert f["area_fraction__necrosis"] == pytest.approx(200 / 120000)
    assert f["ratio__tumor__to__stroma"] == pytest.approx(2.0)
    assert f["n_components__necrosis"] == 2
    assert f["n_components__tumor"] == 1
    # tumor | stroma abut along 400 px of column boundary: 400 x 0.5 µm
    assert f["interface_length_mm__tumor__to__stroma"] == pytest.approx(0.2)
    assert f["count__lymphocyte"] == 5
    assert f["density_per_mm2__lymphocyte"] == pytest.approx(5 / tissue_mm2)
    assert f["count__lymphocyte__in__tumor"] == 2
    assert f["density_per_mm2__lymphocyte__in__tumor"] == pytest.approx(2 / tumor_mm2)
    assert f["fraction__lymphocyte__in__tumor"] == pytest.approx(0.4)
    assert f["mean_area_um2__lymphocyte"] == pytest.approx(2.25)
    # distances to tumor: 0, 0, 25.5, 45.5, 40.5 µm (cols 250, 290, 280 vs 199)
    assert f["fraction_within_25um__lymphocyte__of__tumor"] == pytest.approx(2 / 5)
    assert f["fraction_within_50um__lymphocyte__of__tumor"] == pytest.approx(5 / 5)
    assert f["fraction_margin_50um__lymphocyte__of__tumor"] == pytest.approx(3 / 5)
    assert f["fraction_within_50um__lymphocyte__of__stroma"] == pytest.approx(1.0)
    # stroma starts at col 200: lymphocytes at col 100 are 100 px = 50 µm away
    assert f["fraction_margin_25um__lymphocyte__of__stroma"] == pytest.approx(0.0)


def test_interface_of_two_abutting_squares_and_perimeter():
    a = np.zeros((60, 80), bool)
    b = np.zeros((60, 80), bool)
    a[10:30, 10:30] = True
    b[10:30, 30:50] = True
    f = compute_features({"tumor": a, "stroma": b}, mpp=2.0)
    assert f["interface_length_mm__tumor__to__stroma"] == pytest.approx(20 * 2.0 / 1000)
    # a 20 x 20 px square: Benkrid-Crookes perimeter is 4 x 19 px between border-pixel centres
    assert f["perimeter_mm__tumor"] == pytest.approx(4 * 19 * 2.0 / 1000)


def test_empty_masks_zero_or_nan_as_documented():
    z = np.zeros((50, 50), bool)
    tissue = np.ones((50, 50), bool)
    f = compute_features({"tumor": z, "stroma": z}, instances={"lymphocyte": np.zeros((50, 50), np.int32)},
                         tissue=tissue, mpp=MPP)
    assert f["area_mm2__tumor"] == 0 and f["n_components__tumor"] == 0
    assert f["area_fraction__tumor"] == 0
    assert math.isnan(f["ratio__tumor__to__stroma"])          # zero denominator
    assert math.isnan(f["compactness__tumor"])
    assert f["count__lymphocyte"] == 0 and f["count__lymphocyte__in__tumor"] == 0
    assert f["density_per_mm2__lymphocyte"] == 0
    assert math.isnan(f["density_per_mm2__lymphocyte__in__tumor"])  # absent region
    assert math.isnan(f["fraction_within_50um__lymphocyte__of__tumor"])  # no objects
    assert math.isnan(f["mean_area_um2__lymphocyte"])
    assert math.isnan(f["mean_nn_distance_um__lymphocyte"])
    g = compute_features({"tumor": z}, tissue=np.zeros((50, 50), bool), mpp=MPP)
    assert g["area_mm2__tissue"] == 0 and math.isnan(g["area_fraction__tumor"])


def test_missing_mpp_is_an_error():
    masks, inst, _ = _slide()
    with pytest.raises(MissingMPPError, match="mpp"):
        compute_features(masks, instances=inst, mpp=None)


def _lattice_slide(spacing_px=50, n=20, mpp=MPP):
    size = spacing_px * n
    lab = np.zeros((size, size), np.int32)
    k = 0
    for i in range(n):
        for j in range(n):
            r, c = spacing_px // 2 + i * spacing_px, spacing_px // 2 + j * spacing_px
            k += 1
            lab[r - 1:r + 2, c - 1:c + 2] = k
    return {"tumor": np.ones((size, size), bool)}, {"lymphocyte": lab}


def test_lattice_nn_and_ripley_through_pipeline():
    from pathxai.features import FeatureParams

    masks, inst = _lattice_slide()  # 25 µm lattice filling a 500 x 500 µm window
    f = compute_features(masks, instances=inst, mpp=MPP,
                         params=FeatureParams(ripley_radii_um=(20.0, 40.0)))
    assert f["mean_nn_distance_um__lymphocyte"] == pytest.approx(25.0)
    assert f["ripley_l_20um__lymphocyte"] == pytest.approx(0.0)
    # within 40 µm every interior point has 4 neighbours at 25 and 4 at 35.4 µm; λ = 1/25²
    assert f["ripley_l_40um__lymphocyte"] == pytest.approx(25 * math.sqrt(8 / math.pi))


def test_ripley_csr_sanity():
    rng = np.random.default_rng(0)
    side = 1000.0
    pts = rng.uniform(0, side, (3000, 2))
    edge = np.minimum.reduce([pts[:, 0], pts[:, 1], side - pts[:, 0], side - pts[:, 1]])
    lv = ripley_l(pts, edge, side * side, (20.0, 50.0))
    np.testing.assert_allclose(lv, [20.0, 50.0], rtol=0.08)


def test_morisita_horn_and_delaunay_hand_examples():
    assert morisita_horn([1, 0], [0, 1]) == 0.0
    assert morisita_horn([3, 1, 2], [3, 1, 2]) == pytest.approx(1.0)
    assert morisita_horn([2, 1], [1, 2]) == pytest.approx(0.8)
    assert math.isnan(morisita_horn([0, 0], [1, 2]))
    pts = np.array([[0, 0], [10, 0], [0, 10], [12, 12]], float)
    g = delaunay_graph(pts, max_edge_um=100)
    edges = [10, 10, math.hypot(10, 10), math.hypot(2, 12), math.hypot(12, 2)]
    assert g["mean_degree"] == pytest.approx(2.5)
    assert g["mean_edge_um"] == pytest.approx(np.mean(edges))
    assert g["sd_edge_um"] == pytest.approx(np.std(edges))
    assert delaunay_graph(pts, max_edge_um=11)["mean_degree"] == pytest.approx(1.0)


def test_nn_between_types_and_colocalisation():
    h = w = 200
    a = np.zeros((h, w), np.int32)
    b = np.zeros((h, w), np.int32)
    a[10:13, 10:13] = 1
    b[10:13, 50:53] = 1  # 40 px = 20 µm to the right
    f = compute_features({}, instances={"lymphocyte": a, "neoplastic cell": b},
                         tissue=np.ones((h, w), bool), mpp=MPP)
    assert f["mean_nn_distance_um__lymphocyte__to__neoplastic_cell"] == pytest.approx(20.0)
    assert f["mean_nn_distance_um__neoplastic_cell__to__lymphocyte"] == pytest.approx(20.0)
    assert f["morisita_horn__neoplastic_cell__to__lymphocyte"] == pytest.approx(1.0)  # same 100 µm cell
    assert f["proportion__lymphocyte"] == pytest.approx(0.5)
    assert isinstance(f, pd.Series)


def test_distance_lookups_equal_the_distance_transform():
    from scipy import ndimage as ndi

    from pathxai.features.spatial import distance_lookups

    rng = np.random.default_rng(3)
    mask = ndi.gaussian_filter(rng.normal(size=(150, 170)), 5) > 0.05
    rows, cols = rng.integers(0, 150, 500), rng.integers(0, 170, 500)
    ref = ndi.distance_transform_edt(~mask, sampling=0.5)[rows, cols]
    got = distance_lookups(mask, rows, cols, 0.5, cap_um=1e9)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    capped = distance_lookups(mask, rows, cols, 0.5, cap_um=3.0)
    np.testing.assert_array_equal(np.isinf(capped), ref > 3.0)
    ref_out = ndi.distance_transform_edt(mask, sampling=0.5)[rows, cols]
    np.testing.assert_allclose(distance_lookups(mask, rows, cols, 0.5, 1e9, to_outside=True), ref_out)
