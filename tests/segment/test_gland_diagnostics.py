"""The helpers of analyses/gland_diagnostics.py: the error split and the slide tissue
detector run on an image."""

from __future__ import annotations

import numpy as np
import pytest


def test_error_shares_split_false_positives_by_tissue(repo_script):
    m = repo_script("analyses/gland_diagnostics.py")
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True                       # 16 px
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:5] = True                        # 12 true positives, 4 false negatives
    mask[8:10, 0:5] = True                       # 10 false positives ...
    tissue = np.ones((10, 10), bool)
    tissue[9, :] = False                         # ... 5 of them on glass
    got = m.error_shares(mask, truth, tissue)
    assert got == pytest.approx({"fp": 0.10, "fn": 0.04, "fp_on_glass": 0.5})
    assert m.error_shares(truth, truth, tissue) == {"fp": 0.0, "fn": 0.0, "fp_on_glass": 0.0}


def test_tissue_on_image_finds_stained_tissue_not_glass(repo_script):
    m = repo_script("analyses/gland_diagnostics.py")
    rng = np.random.default_rng(0)
    img = np.full((400, 600, 3), 245, np.uint8)   # glass
    tissue = rng.integers(0, 40, (400, 350, 3)) + np.array([150, 60, 160])  # pink-purple
    img[:, :350] = np.clip(tissue, 0, 255).astype(np.uint8)
    got = m.tissue_on_image(img, 0.62)
    assert got.shape == (400, 600)
    assert got[:, :320].mean() > 0.95 and got[:, 380:].mean() < 0.05
