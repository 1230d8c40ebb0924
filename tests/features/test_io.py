"""Readers (plain layout, label map, QuPath GeoJSON, HoVer-Net JSON), the CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from pathxai.cli import main
from pathxai.exceptions import MaskInputError, MissingMPPError
from pathxai.features import (
    compute_features,
    features_from_folder,
    features_table,
    read_hovernet_json,
    read_label_map,
    read_mask_folder,
    read_qupath_geojson,
)


def _png(path, arr):
    Image.fromarray(arr).save(path)


def _write_slide(root, sid, *, mpp=0.5, shift=0):
    d = root / sid
    d.mkdir(parents=True)
    tumor = np.zeros((64, 80), np.uint8)
    tumor[:, : 40 + shift] = 255
    _png(d / "tumor.png", tumor)
    stroma = np.zeros((64, 80), np.uint8)
    stroma[:, 40 + shift:] = 1
    tifffile.imwrite(d / "stroma.tif", stroma)
    adipose = np.zeros((64, 80), np.uint8)
    adipose[:4, 70:] = 1
    _png(d / "adipose_tissue.png", adipose)
    inst = np.zeros((64, 80), np.uint16)
    inst[10:13, 10:13] = 1
    inst[30:33, 60:63] = 2
    tifffile.imwrite(d / "lymphocyte.instances.tif", inst)
    _png(d / "tissue.png", np.full((64, 80), 255, np.uint8))
    if mpp is not None:
        (d / "meta.json").write_text(json.dumps({"mpp": mpp}))
    return d


def test_plain_folder_layout(tmp_path):
    d = _write_slide(tmp_path, "S1")
    s = read_mask_folder(d)
    assert s.slide_id == "S1" and s.mpp == 0.5
    assert set(s.regions) == {"tumor", "stroma", "adipose tissue"}
    assert set(s.instances) == {"lymphocyte"} and s.tissue.all()
    f = features_from_folder(d)
    assert f["area_mm2__tumor"] == pytest.approx(64 * 40 * 0.25e-6)
    assert f["area_fraction__adipose_tissue"] == pytest.approx(40 / (64 * 80))
    assert f["count__lymphocyte__in__tumor"] == 1
    assert f["density_per_mm2__lymphocyte__in__tumor"] == pytest.approx(1 / (64 * 40 * 0.25e-6))


def test_features_table_and_cli(tmp_path):
    masks = tmp_path / "masks"
    _write_slide(masks, "A")
    _write_slide(masks, "B", shift=8)
    t = features_table(masks)
    assert list(t["slide_id"]) == ["A", "B"]
    assert t.loc[1, "ratio__tumor__to__stroma"] == pytest.approx(48 / 32)
    out = tmp_path / "out" / "features.parquet"
    objs = tmp_path / "out" / "objects.parquet"
    assert main(["features", "--masks", str(masks), "--out", str(out), "--objects", str(objs)]) == 0
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, t, check_dtype=False)
    o = pd.read_parquet(objs)
    assert len(o) == 4 and {"slide_id", "object", "area_um2", "in__tumor"} <= set(o.columns)
    csv = tmp_path / "f.csv"
    assert main(["features", "--masks", str(masks), "--mpp", "1.0", "--out", str(csv)]) == 0
    assert pd.read_csv(csv).loc[0, "area_mm2__tumor"] == pytest.approx(64 * 40 * 1e-6)


def test_cli_reports_missing_mpp(tmp_path, capsys):
    _write_slide(tmp_path / "m", "A", mpp=None)
    assert main(["features", "--masks", str(tmp_path / "m"), "--out", str(tmp_path / "f.csv")]) == 2
    assert "mpp" in capsys.readouterr().err
    with pytest.raises(MissingMPPError):
        features_table(tmp_path / "m")


def test_bad_inputs_name_the_file(tmp_path):
    d = _write_slide(tmp_path, "S1")
    _png(d / "tumor.png", np.zeros((10, 10), np.uint8))  # wrong size
    with pytest.raises(MaskInputError, match=r"tumor\.png.*differs"):
        read_mask_folder(d)
    d2 = _write_slide(tmp_path, "S2")
    _png(d2 / "unicorn.png", np.zeros((64, 80), np.uint8))
    with pytest.raises(MaskInputError, match=r"unicorn\.png.*unknown category"):
        read_mask_folder(d2)
    assert "unicorn" in read_mask_folder(d2, categories=["unicorn"]).regions
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MaskInputError, match="no mask images"):
        read_mask_folder(empty, mpp=0.5)
    with pytest.raises(MaskInputError, match="no slide folders"):
        features_table(empty)
    with pytest.raises(MaskInputError, match="differs"):
        compute_features({"tumor": np.ones((5, 5))}, image=np.zeros((6, 5, 3), np.uint8), mpp=0.5)
    with pytest.raises(MaskInputError, match="differs"):
        read_mask_folder(_write_slide(tmp_path, "S3"), image=np.zeros((9, 9, 3), np.uint8))


def test_label_map_reader(tmp_path):
    lab = np.zeros((20, 30), np.uint8)
    lab[:, :10] = 1
    lab[:, 10:25] = 2
    _png(tmp_path / "s.png", lab)
    (tmp_path / "map.json").write_text(json.dumps({"1": "tumor", "2": "stroma"}))
    s = read_label_map(tmp_path / "s.png", tmp_path / "map.json", mpp=1.0)
    f = compute_features(s, mpp=None)
    assert f["ratio__tumor__to__stroma"] == pytest.approx(10 / 15)
    assert f["area_fraction__tumor"] == pytest.approx(10 / 25)  # tissue = union of regions
    with pytest.raises(MaskInputError, match="not in the category map"):
        read_label_map(tmp_path / "s.png", {"1": "tumor"}, mpp=1.0)


def _square(x0, y0, s):
    return [[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s], [x0, y0]]


def test_qupath_geojson(tmp_path):
    feats = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_square(0, 0, 40), _square(10, 10, 10)]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[_square(50, 0, 10)], [_square(50, 20, 10)]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Stroma"}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_square(2, 2, 4)]},
         "properties": {"objectType": "detection", "classification": {"name": "Immune cells"}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_square(30, 30, 4)]},
         "properties": {"objectType": "detection", "classification": {"name": "Immune cells"}}},
    ]
    p = tmp_path / "s.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    s = read_qupath_geojson(p, mpp=1.0, shape=(64, 64), class_map={"Immune cells": "lymphocyte"})
    tumor_ref = np.zeros((64, 64), bool)
    from skimage.draw import polygon

    sq = np.array(_square(0, 0, 40), float)
    tumor_ref[polygon(sq[:, 1], sq[:, 0], (64, 64))] = True
    hole = np.array(_square(10, 10, 10), float)
    tumor_ref[polygon(hole[:, 1], hole[:, 0], (64, 64))] = False
    np.testing.assert_array_equal(s.regions["tumor"], tumor_ref)
    one = np.array(_square(50, 0, 10), float)
    assert s.regions["stroma"].sum() == 2 * len(polygon(one[:, 1], one[:, 0], (64, 64))[0])
    assert s.instances["lymphocyte"].max() == 2
    f = compute_features(s, mpp=None)
    assert f["count__lymphocyte"] == 2
    # half the resolution: coordinates at 1 µm/px rasterised at 2 µm/px
    s2 = read_qupath_geojson(p, mpp=2.0, source_mpp=1.0, class_map={"Immune cells": "lymphocyte"})
    assert s2.regions["tumor"].shape[0] <= 33
    bad = tmp_path / "bad.geojson"
    feats[1]["properties"].pop("classification")
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    with pytest.raises(MaskInputError, match=r"bad\.geojson.*feature 1.*classification"):
        read_qupath_geojson(bad, mpp=1.0)
    with pytest.raises(MaskInputError, match="unknown category 'immune cells'"):
        read_qupath_geojson(p, mpp=1.0)


def test_hovernet_json(tmp_path):
    nuc = {
        "1": {"contour": _square(5, 5, 6), "centroid": [8, 8], "type": 2},
        "2": {"contour": _square(20, 5, 6), "centroid": [23, 8], "type": 1},
        "3": {"contour": _square(5, 20, 6), "centroid": [8, 23], "type": 2},
    }
    p = tmp_path / "hv.json"
    p.write_text(json.dumps({"mag": 40, "nuc": nuc}))
    s = read_hovernet_json(p, mpp=0.25, shape=(40, 40), type_map={1: "neoplastic cell", 2: "lymphocyte"})
    assert sorted(np.unique(s.instances["lymphocyte"])) == [0, 1, 3]
    f = compute_features(s, mpp=None)
    assert f["count__lymphocyte"] == 2 and f["count__neoplastic_cell"] == 1
    # skimage.draw.polygon keeps pixel centres on the outline: a 6 px square covers 7 x 7
    assert f["mean_area_um2__lymphocyte"] == pytest.approx(7 * 7 * 0.0625)
    nuc["4"] = {"contour": _square(30, 30, 4), "type": 9}
    p.write_text(json.dumps({"nuc": nuc}))
    with pytest.raises(MaskInputError, match=r"hv\.json.*type 9"):
        read_hovernet_json(p, mpp=0.25, shape=(40, 40))


def test_uncompressed_tiff_is_read_lazily_with_same_features(tmp_path):
    from pathxai.features.masks_io import LazyMask

    d = _write_slide(tmp_path, "S1")
    s = read_mask_folder(d)
    assert isinstance(s.regions["stroma"], LazyMask) and isinstance(s.instances["lymphocyte"], LazyMask)
    arrays = {"tumor": s.regions["tumor"], "stroma": np.asarray(s.regions["stroma"]),
              "adipose tissue": s.regions["adipose tissue"]}
    eager = compute_features(arrays, instances={"lymphocyte": np.asarray(s.instances["lymphocyte"])},
                             tissue=s.tissue, mpp=0.5)
    pd.testing.assert_series_equal(features_from_folder(d, tile_size=24), eager, rtol=1e-12)


def test_list_features_cli(tmp_path, capsys):
    assert main(["list-features"]) == 0
    assert "density_per_mm2__{object}__in__{region}" in capsys.readouterr().out
    assert main(["list-features", "--out", str(tmp_path / "f.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "f.csv")) > 50


def test_image_dir_adds_intensity_and_texture(tmp_path):
    masks = tmp_path / "masks"
    _write_slide(masks, "A")
    _write_slide(masks, "B")
    imgs = tmp_path / "img"
    imgs.mkdir()
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[...] = (70, 40, 140)  # a haematoxylin-like purple
    _png(imgs / "A.png", rgb)
    t = features_table(masks, image_dir=imgs).set_index("slide_id")
    from skimage.color import rgb2hed

    h_ref = rgb2hed(rgb[:1, :1])[0, 0, 0]
    assert t.loc["A", "pixel_mean_h_od__tumor"] == pytest.approx(h_ref)
    assert t.loc["A", "mean_h_od__lymphocyte"] == pytest.approx(h_ref)
    assert t.loc["A", "mean_glcm_contrast__lymphocyte"] == 0.0  # constant image
    assert np.isnan(t.loc["B", "pixel_mean_h_od__tumor"])  # no image for B
    _png(imgs / "B.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(MaskInputError, match=r"B\.png.*differs"):
        features_table(masks, image_dir=imgs)


def test_segmentor_style_outputs(tmp_path):
    """Binary + instances of one category = objects only; qualified masks are categories."""
    d = _write_slide(tmp_path, "S1")
    inst = tifffile.imread(d / "lymphocyte.instances.tif")
    _png(d / "lymphocyte.png", ((inst > 0) * 255).astype(np.uint8))
    q = np.zeros((64, 80), np.uint8)
    q[10:13, 10:13] = 255
    _png(d / "lymphocyte__in__tumor.png", q)
    (d / "thumbnails").mkdir()
    _png(d / "thumbnails" / "slide.png", np.zeros((4, 4, 3), np.uint8))
    f = features_from_folder(d)
    assert "area_mm2__lymphocyte" not in f.index and f["count__lymphocyte"] == 2
    assert f["area_mm2__lymphocyte_in_tumor"] == pytest.approx(9 * 0.25e-6)
    _png(d / "lymphocyte__near__tumor.png", q)
    with pytest.raises(MaskInputError, match="lymphocyte__near__tumor"):
        read_mask_folder(d)
