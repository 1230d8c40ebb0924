"""render_patch: exact, consistent ground truth; physical scale; determinism; speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from skimage.color import rgb2hed
from skimage.measure import regionprops_table

from pathxai.datasets import NUCLEUS_TYPE_CODES, TISSUE_CODES, Composition, render_patch


@pytest.fixture(scope="module")
def patch():
    return render_patch(np.random.default_rng(3), (384, 384), mpp=0.5, composition=Composition())


def test_shapes_dtypes_and_ids(patch):
    assert patch.image.shape == (384, 384, 3) and patch.image.dtype == np.uint8
    assert patch.tissue.shape == (384, 384) and patch.tissue.dtype == np.uint8
    assert patch.nuclei.dtype == np.int32
    assert set(np.unique(patch.tissue)) <= set(TISSUE_CODES.values())
    ids = np.unique(patch.nuclei)
    ids = ids[ids > 0]
    # ids are exactly 1..n, each with a declared type
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))
    assert set(patch.nucleus_types) == set(ids.tolist())
    assert set(patch.nucleus_types.values()) <= set(NUCLEUS_TYPE_CODES.values())


def test_same_rng_same_patch_and_different_seed_differs():
    a = render_patch(np.random.default_rng(7), (160, 200), mpp=0.5)
    b = render_patch(np.random.default_rng(7), (160, 200), mpp=0.5)
    c = render_patch(np.random.default_rng(8), (160, 200), mpp=0.5)
    assert a.image.shape == (160, 200, 3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.nuclei, b.nuclei)
    assert a.nucleus_types == b.nucleus_types
    assert not np.array_equal(a.image, c.image)


def test_nuclei_carry_more_haematoxylin_than_their_surroundings(patch):
    hed = rgb2hed(patch.image)
    h = hed[..., 0]
    nuc = patch.nuclei > 0
    tissue = (patch.tissue > 0) & ~nuc
    assert h[nuc].mean() > h[tissue].mean() + 0.02
    # eosin (stroma) higher outside nuclei than inside
    assert hed[..., 1][tissue].mean() > hed[..., 1][nuc].mean()
    # glass is bright
    bg = patch.tissue == 0
    if bg.sum() > 100:
        assert patch.image[bg].mean() > 200


def test_lymphocytes_are_small_round_and_dark_tumor_nuclei_large():
    p = render_patch(np.random.default_rng(11), (512, 512), mpp=0.5, composition=Composition(
        tumor=0.5, stroma=0.2, lymphocytic_infiltrate=0.3, necrosis=0, gland=0,
        adipose_tissue=0, background=0))
    tmap = p.nucleus_type_map()
    props = regionprops_table(p.nuclei, properties=("label", "area", "eccentricity"))
    area_um2 = props["area"] * p.mpp**2
    types = np.array([p.nucleus_types[int(k)] for k in props["label"]])
    lym = types == NUCLEUS_TYPE_CODES["lymphocyte"]
    neo = types == NUCLEUS_TYPE_CODES["neoplastic cell"]
    assert lym.sum() > 30 and neo.sum() > 30
    # a 7 µm round lymphocyte covers pi * 3.5^2 = 38.5 µm²; a tumor nucleus 2-4 times that
    assert 25 < np.median(area_um2[lym]) < 50
    assert np.median(area_um2[neo]) > 1.8 * np.median(area_um2[lym])
    hed = rgb2hed(p.image)[..., 0]
    assert hed[tmap == 2].mean() > hed[tmap == 1].mean()


def test_physical_scale_is_independent_of_mpp():
    comp = Composition(tumor=0, stroma=0.3, lymphocytic_infiltrate=0.7, necrosis=0, gland=0,
                       adipose_tissue=0, background=0)
    med = {}
    for mpp, side in ((0.5, 400), (1.0, 200)):  # same 200 µm field
        p = render_patch(np.random.default_rng(5), (side, side), mpp=mpp, composition=comp)
        lym = p.instances_of(NUCLEUS_TYPE_CODES["lymphocyte"])
        areas = np.bincount(lym.ravel())[1:] * mpp**2
        med[mpp] = np.median(areas[areas > 0])
        # ~11,000 lymphocytes / mm² of aggregate, 0.04 mm² field
        assert 100 < areas.size < 600
    assert med[1.0] == pytest.approx(med[0.5], rel=0.3)


def test_composition_targets_are_approximately_met():
    comp = Composition(background=0.1, tumor=0.4, stroma=0.2, necrosis=0.1, adipose_tissue=0.1,
                       lymphocytic_infiltrate=0.1, gland=0.0, nest_fraction=1.0)
    p = render_patch(np.random.default_rng(2), (512, 512), mpp=1.0, composition=comp)
    frac = np.bincount(p.tissue.ravel(), minlength=7) / p.tissue.size
    assert frac[TISSUE_CODES["gland"]] == 0
    for name, want in (("tumor", 0.4), ("necrosis", 0.1), ("adipose tissue", 0.1)):
        assert frac[TISSUE_CODES[name]] == pytest.approx(want, abs=0.06)


def test_absent_categories_are_absent_and_random_compositions_vary():
    comp = Composition(background=0, tumor=0, stroma=1.0, necrosis=0, adipose_tissue=0,
                       lymphocytic_infiltrate=0, gland=0, lymphocytes_in_stroma_per_mm2=0)
    p = render_patch(np.random.default_rng(1), (200, 200), mpp=0.5, composition=comp)
    assert set(np.unique(p.tissue)) == {TISSUE_CODES["stroma"]}
    assert set(p.nucleus_types.values()) == {NUCLEUS_TYPE_CODES["connective tissue cell"]}
    seen = set()
    for s in range(6):
        q = render_patch(np.random.default_rng(s), (96, 96), mpp=1.0)
        seen.add(tuple(sorted(np.unique(q.tissue).tolist())))
    assert len(seen) > 2


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="mpp"):
        render_patch(np.random.default_rng(0), (64, 64), mpp=0)
    with pytest.raises(ValueError, match="shape"):
        render_patch(np.random.default_rng(0), (0, 64))


def test_fast_enough():
    rng = np.random.default_rng(0)
    render_patch(rng, (128, 128))  # warm-up (imports)
    t = time.perf_counter()
    render_patch(rng, (512, 512), mpp=0.5, composition=Composition())
    # target 0.2 s on an idle core; generous bound for a shared, loaded machine
    assert time.perf_counter() - t < 2.0


def test_public_names_resolve():
    import pathxai.cohort
    import pathxai.datasets

    for mod in (pathxai.datasets, pathxai.cohort):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, name
