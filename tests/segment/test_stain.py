"""Classical StainSegmentor baseline."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from pathxai.datasets.index import load_image, load_pair, read_index
from pathxai.exceptions import UnsupportedPromptError
from pathxai.segment import StainSegmentor
from pathxai.segment.metrics import dice

PINK = (235, 190, 215)   # eosin-stained stroma
PURPLE = (70, 40, 120)   # haematoxylin-stained nucleus


def _synthetic(centres, radius=8, shape=(160, 160), seed=0):
    rng = np.random.default_rng(seed)
    img = np.empty(shape + (3,), np.float32)
    img[:] = PINK
    truth = np.zeros(shape, bool)
    for c in centres:
        rr, cc = disk(c, radius, shape=shape)
        img[rr, cc] = PURPLE
        truth[rr, cc] = True
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth


def test_separate_nuclei_are_counted():
    centres = [(20 + 40 * i, 20 + 40 * j) for i in range(4) for j in range(3)]
    img, truth = _synthetic(centres)
    seg = StainSegmentor().set_image(img, mpp=0.5)
    res, = seg.predict(["nuclei"])
    assert res.n_objects == len(centres)
    assert dice(res.mask, truth) > 0.9
    assert res.instances.shape == truth.shape and res.instances.dtype == np.int32
    assert res.presence == 1.0


def test_touching_nuclei_are_split_by_watershed():
    img, truth = _synthetic([(80, 66), (80, 94)], radius=9)  # discs overlap by 4 px
    res, = StainSegmentor().set_image(img, mpp=0.5).predict("nucleus")
    assert res.n_objects == 2


def test_resampling_keeps_the_input_grid():
    img, truth = _synthetic([(40, 40), (100, 110)], radius=16)
    # the same picture declared at 0.25 µm/px is processed at 0.5 and mapped back
    res, = StainSegmentor(mpp=0.5).set_image(img, mpp=0.25).predict(["nuclei"])
    assert res.mask.shape == truth.shape and res.probability.shape == truth.shape
    assert res.n_objects == 2 and dice(res.mask, truth) > 0.85


def test_unsupported_prompt_raises():
    img, _ = _synthetic([(40, 40)])
    seg = StainSegmentor().set_image(img, mpp=0.5)
    with pytest.raises(UnsupportedPromptError) as info:
        seg.predict(["necrosis"])
    assert "necrosis" in str(info.value) and "nucleus" in info.value.supported
    assert not seg.supports("mucin") and seg.supports("tumour")
    with pytest.raises(RuntimeError):
        StainSegmentor().predict(["nuclei"])


def test_cpm15_nucleus_dice(shared_data):
    idx = read_index(shared_data / "index.csv", datasets="cpm15")
    row = idx[idx["image_id"] == "image06"].iloc[0]
    image, target, _ = load_pair(row)
    res, = StainSegmentor().set_image(image, mpp=0.5).predict(["nuclei"])  # 20x tile
    d = dice(res.mask, target > 0)
    # measured 0.86; a method that ignores the image (all foreground) scores 2p/(1+p)
    p = (target > 0).mean()
    assert d > 0.75 and d > 2 * p / (1 + p) + 0.3
    n_true = len(np.unique(target)) - 1
    assert 0.6 * n_true <= res.n_objects <= 1.4 * n_true


def test_blank_glass_gives_empty_masks(shared_data):
    image = load_image(shared_data / "tiles_unlabelled" / "no-tissue.png")
    seg = StainSegmentor().set_image(image, mpp=0.5)
    prompts = ["tissue", "nuclei", "tumor", "gland", "adipose tissue", "lymphocytes", "stroma"]
    for res in seg.predict(prompts):
        assert not res.mask.any(), res.prompt.label
        assert res.presence == 0.0
    bg, = seg.predict(["background"])
    assert bg.mask.all()


def test_predict_batch_matches_predict():
    a, _ = _synthetic([(40, 40)])
    b, _ = _synthetic([(40, 40), (120, 120)])
    seg = StainSegmentor()
    out = seg.predict_batch([a, b], ["nuclei", "tissue"], mpp=0.5)
    assert [r[0].n_objects for r in out] == [1, 2]
    assert all(r[1].mask.all() for r in out)
