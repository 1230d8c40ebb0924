"""Every produced feature is declared (unit + definition); user features plug in the same way."""

from __future__ import annotations

import numpy as np
import pytest

from pathxai.exceptions import FeatureError
from pathxai.features import (
    FeatureSpec,
    clear_user_features,
    compute_features,
    feature_name,
    list_features,
    match_feature,
    register_feature,
    split_feature_name,
)
from pathxai.features.naming import slugify

REQUIRED = [
    "area_mm2__tumor", "area_fraction__tumor", "count__lymphocyte", "density_per_mm2__lymphocyte",
    "density_per_mm2__lymphocyte__in__tumor", "mean_area_um2__lymphocyte",
    "fraction_within_50um__lymphocyte__of__tumor", "ratio__tumor__to__stroma",
]


@pytest.fixture(scope="module")
def full_features():
    rng = np.random.default_rng(1)
    h = w = 120
    regions = {"tumor": np.zeros((h, w), bool), "stroma": np.zeros((h, w), bool),
               "adipose tissue": np.zeros((h, w), bool)}
    regions["tumor"][:, :60] = True
    regions["stroma"][:, 60:110] = True
    regions["adipose tissue"][:20, 110:] = True
    inst = {}
    for name in ("lymphocyte", "neoplastic cell"):
        lab = np.zeros((h, w), np.int32)
        for k in range(1, 15):
            r, c = rng.integers(3, h - 3, 2)
            lab[r - 2:r + 2, c - 2:c + 2] = k
        inst[name] = lab
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return compute_features(regions, instances=inst, image=image, mpp=0.5)


def test_required_spellings_exist(full_features):
    for name in REQUIRED:
        assert name in full_features.index, name


def test_every_column_is_declared_with_unit_and_definition(full_features):
    assert len(full_features) > 200
    for name in full_features.index:
        spec = match_feature(name)
        assert spec is not None, f"{name} has no registry entry"
        assert spec.unit.strip() and spec.definition.strip() and spec.empty.strip(), name
        assert spec.aggregation_for(name), name
        split_feature_name(name)  # follows the naming scheme


def test_list_features_table():
    t = list_features()
    assert {"name", "unit", "level", "definition", "empty", "aggregation", "function"} <= set(t.columns)
    assert t["name"].is_unique
    assert (t["unit"].str.len() > 0).all() and (t["definition"].str.len() > 10).all()
    row = t.set_index("name").loc["density_per_mm2__{object}__in__{region}"]
    assert row["unit"] == "1/mm²" and row["level"] == "object"


def test_spec_without_unit_or_definition_is_refused():
    with pytest.raises(FeatureError, match="unit"):
        FeatureSpec("x__tumor", "", "slide", "something", lambda s, o: 1.0)
    with pytest.raises(FeatureError, match="definition"):
        FeatureSpec("x__tumor", "1", "slide", " ", lambda s, o: 1.0)
    with pytest.raises(FeatureError, match="placeholder"):
        FeatureSpec("x__{nope}", "1", "slide", "d", lambda s, o: 1.0)


def test_extra_and_registered_features_appear_everywhere():
    masks = {"tumor": np.ones((20, 20), bool)}

    def max_area(slide, objects):
        return {f"max_area_um2__{slugify(n)}": float(objects.loc[objects["object"] == n, "area_um2"].max())
                for n in slide.instances}

    extra = [{"name": "max_area_um2__{object}", "unit": "µm²", "level": "object",
              "definition": "largest object area", "function": max_area,
              "aggregation": "weighted_mean:count__{object}"}]
    lab = np.zeros((20, 20), np.int32)
    lab[1:3, 1:3] = 1
    lab[5:10, 5:10] = 2
    f = compute_features(masks, instances={"lymphocyte": lab}, mpp=1.0, extra_features=extra)
    assert f["max_area_um2__lymphocyte"] == 25.0
    assert "max_area_um2__{object}" in set(list_features(extra)["name"])
    try:
        register_feature("n_pixels__tumor", unit="px", definition="tumor pixels (demo)",
                         function=lambda slide, objects: float(slide.regions["tumor"].sum()))
        g = compute_features(masks, mpp=1.0)
        assert g["n_pixels__tumor"] == 400
        assert "n_pixels__tumor" in set(list_features()["name"])
    finally:
        clear_user_features()
    assert "n_pixels__tumor" not in compute_features(masks, mpp=1.0).index
    bad = [{"name": "y__tumor", "unit": "1", "definition": "d", "function": lambda s, o: {"zzz": 1}}]
    with pytest.raises(FeatureError, match="does not match"):
        compute_features(masks, mpp=1.0, extra_features=bad)


def test_naming_helpers():
    assert slugify("Adipose tissue") == "adipose_tissue"
    assert slugify("non-neoplastic cell") == "non_neoplastic_cell"
    assert feature_name("density_per_mm2", "lymphocyte", in_="tumor") == "density_per_mm2__lymphocyte__in__tumor"
    assert split_feature_name("ratio__tumor__to__stroma") == {
        "measure": "ratio", "object": "tumor", "connector": "to", "other": "stroma"}
    with pytest.raises(FeatureError):
        split_feature_name("a__b__c")


def test_builtin_functions_resolve():
    import importlib

    for fn in set(list_features()["function"]):
        module, _, attr = fn.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), fn
