"""The same slide tiled different ways gives the same features and objects (counted once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.draw import ellipse

from pathxai.features import compute_features, object_table


@pytest.fixture(scope="module")
def slide():
    rng = np.random.default_rng(7)
    h, w = 230, 270
    field = ndi.gaussian_filter(rng.normal(size=(h, w)), 12)
    tumor = field > 0.02
    stroma = (field <= 0.02) & (field > -0.03)
    necrosis = ndi.gaussian_filter(rng.normal(size=(h, w)), 4) > 0.12  # many small blobs
    lab = np.zeros((h, w), np.int32)
    lym = np.zeros((h, w), np.int32)
    for k in range(1, 120):
        r, c = rng.integers(0, h), rng.integers(0, w)
        a, b = rng.uniform(2, 8, 2)
        rr, cc = ellipse(r, c, a, b, shape=(h, w), rotation=rng.uniform(0, np.pi))
        (lab if k % 3 else lym)[rr, cc] = k
    big = ellipse(115, 135, 40, 25, shape=(h, w), rotation=0.4)  # spans many tiles
    lab[big] = 500
    lab[200:203, 20:24] = 501
    lab[5:8, 250:253] = 501  # one label in two distant parts (one object)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return ({"tumor": tumor, "stroma": stroma, "necrosis": necrosis},
            {"neoplastic cell": lab, "lymphocyte": lym}, image)


def test_features_do_not_depend_on_tiling(slide):
    masks, inst, image = slide
    whole = compute_features(masks, instances=inst, image=image, mpp=0.5)
    for tile in (64, 97):
        tiled = compute_features(masks, instances=inst, image=image, mpp=0.5, tile_size=tile)
        assert list(tiled.index) == list(whole.index)
        pd.testing.assert_series_equal(tiled, whole, rtol=1e-9, atol=1e-12)
    assert whole["n_components__necrosis"] > 3  # components joined across seams


def test_objects_counted_once_with_same_measurements(slide):
    masks, inst, image = slide
    a = object_table(masks, instances=inst, image=image, mpp=0.5)
    b = object_table(masks, instances=inst, image=image, mpp=0.5, tile_size=50)
    expected = {n: len(np.unique(v[v > 0])) for n, v in inst.items()}
    assert a.groupby("object").size().to_dict() == expected
    key = ["object", "label"]
    a, b = a.sort_values(key, ignore_index=True), b.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12)
    big = a[(a["object"] == "neoplastic cell") & (a["label"] == 500)].iloc[0]
    assert big["area_um2"] == pytest.approx((inst["neoplastic cell"] == 500).sum() * 0.25)
