"""Metrics on hand-made masks and evaluate_index on synthetic and real rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pathxai.datasets.index import load_pair, read_index
from pathxai.exceptions import UnsupportedPromptError
from pathxai.segment import PromptResult, StainSegmentor, evaluate_index, parse_prompt
from pathxai.segment.evaluate import ASSUMED_MPP, assumed_mpp, iter_targets
from pathxai.segment.metrics import aji, bootstrap_mean_ci, dice, iou


def _squares():
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[0:4, 0:4] = True  # 16 px
    b[2:6, 2:6] = True  # 16 px, overlap 2x2 = 4 px
    return a, b


def test_dice_and_iou_by_hand():
    a, b = _squares()
    assert dice(a, b) == pytest.approx(2 * 4 / 32)
    assert iou(a, b) == pytest.approx(4 / 28)
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0  # documented convention
    assert dice(empty, empty, empty_score=np.nan) != dice(empty, empty, empty_score=np.nan)
    assert dice(a, empty) == 0.0
    with pytest.raises(ValueError):
        dice(a, a[:4])


def test_aji_by_hand():
    gt = np.zeros((6, 6), int)
    gt[0:2, 0:2] = 1
    gt[0:2, 2:4] = 2
    merged = (gt > 0).astype(int)
    # perfect instances
    assert aji(gt, gt) == 1.0
    # one prediction covering two 4-px objects: each match 4/8 -> C = 8, U = 16
    assert aji(merged, gt) == pytest.approx(0.5)
    # one 8-px object split in two: best match 4 / 8, other 4-px piece unused -> 4 / 12
    assert aji(gt, merged) == pytest.approx(4 / 12)
    # a missed object adds its area to U; a false positive adds its area too
    pred = np.zeros_like(gt)
    pred[0:2, 0:2] = 7
    pred[5, 5] = 9
    assert aji(pred, gt) == pytest.approx(4 / (4 + 4 + 1))
    assert aji(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    assert aji(np.zeros_like(gt), gt) == 0.0
    # ids need not be consecutive and are only labels
    assert aji(gt * 10, gt) == 1.0


def test_bootstrap_ci():
    v = [0.2, 0.4, 0.6, 0.8]
    lo, hi = bootstrap_mean_ci(v, n_boot=2000, seed=1)
    assert lo < np.mean(v) < hi and 0.2 <= lo and hi <= 0.8
    assert bootstrap_mean_ci(v, seed=1) == bootstrap_mean_ci(v, seed=1)
    assert bootstrap_mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(np.isnan(bootstrap_mean_ci([0.5])))
    # one cluster: between-cluster variability cannot be estimated
    assert all(np.isnan(bootstrap_mean_ci(v, groups=["s"] * 4)))
    # two clusters with means 0.3 and 0.7: cluster means are the only resampled units
    lo, hi = bootstrap_mean_ci(v, groups=["a", "a", "b", "b"], n_boot=2000)
    assert lo == pytest.approx(0.3) and hi == pytest.approx(0.7)


class _Oracle:
    """Predicts a fixed mask per image file (to test the evaluation bookkeeping)."""

    mpp = 0.5

    def __init__(self, masks):
        self.masks = masks

    def set_image(self, image, *, mpp):
        self.current = image.shape[:2]
        self.key = int(image[0, 0, 0])

    def predict(self, prompts):
        out = []
        for p in prompts:
            p = parse_prompt(p)
            if p.label == "necrosis":
                raise UnsupportedPromptError(p.label, "oracle", ["gland"])
            m = self.masks[self.key]
            inst = m.astype(np.int32) if p.structure != "tissue" else None
            out.append(PromptResult(p, m, m.astype(np.float32), float(m.any()), inst))
        return out


def _tiny_index(tmp_path):
    (tmp_path / "toy" / "images").mkdir(parents=True)
    (tmp_path / "toy" / "masks").mkdir(parents=True)
    rows, masks = [], {}
    for k in range(3):
        img = np.full((20, 20, 3), 200, np.uint8)
        img[0, 0, 0] = k  # image key for the oracle
        gt = np.zeros((20, 20), np.uint8)
        gt[0:10, 0:10] = 1
        pred = np.zeros((20, 20), bool)
        pred[0:10, 0 : 10 if k < 2 else 5] = True  # Dice 1, 1, 2*50/(100+50)
        masks[k] = pred
        Image.fromarray(img).save(tmp_path / "toy" / "images" / f"i{k}.png")
        Image.fromarray(gt).save(tmp_path / "toy" / "masks" / f"i{k}__gland.png")
        for cat in ("gland", "necrosis"):
            rows.append({"dataset": "toy", "image": f"toy/images/i{k}.png",
                         "mask": f"toy/masks/i{k}__gland.png", "category": cat,
                         "structure": "tissue", "region": "colon", "mask_kind": "binary",
                         "mpp": "" if k else "0.5", "magnification": "20x", "split": "test"})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    return tmp_path / "index.csv", masks


def test_iter_targets_gives_image_target_and_mpp(tmp_path):
    index, _ = _tiny_index(tmp_path)
    got = list(iter_targets(read_index(index, datasets="toy")))
    assert len(got) == 6
    row, image, target, mpp = got[0]
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert target.dtype == bool and target.sum() == 100 and target[:10, :10].all()
    assert row["category"] == "gland" and mpp == 0.5          # from the index
    assert got[2][3] == pytest.approx(ASSUMED_MPP["@20x"][0])  # empty mpp: assumed at 20x


def test_evaluate_bookkeeping(tmp_path):
    index, masks = _tiny_index(tmp_path)
    out = tmp_path / "m.json"
    res = evaluate_index(index, _Oracle(masks), out=out, n_boot=200, absent_check=False)
    summ = {r["category"]: r for r in res["summary"]}
    assert summ["gland"]["n"] == 3
    assert summ["gland"]["dice"] == pytest.approx((1 + 1 + 100 / 150) / 3)
    assert summ["necrosis"]["n"] == 0 and summ["necrosis"]["n_unsupported"] == 3
    assert summ["gland"]["dice_ci_low"] <= summ["gland"]["dice"] <= summ["gland"]["dice_ci_high"]
    rows = [r for r in res["rows"] if r["status"] == "ok"]
    assert {r["mpp_source"] for r in rows} == {"index", "assumed (@20x)"}
    assert rows[0]["prompt"] == "tissue-level gland in colon pathology"
    saved = json.loads(out.read_text())
    assert saved["summary"][0].keys() >= {"dataset", "category", "n", "dice", "dice_ci_low",
                                          "dice_ci_high", "aji"}
    assert "assumed_mpp" in saved


def test_evaluation_records_the_models_mask_rules(tmp_path):
    """The metrics JSON names the weights and the mask rules (TTA, scales, thresholds)."""
    import torch

    from pathxai.segment.build import default_config
    from pathxai.segment.modeling import ModelConfig, PromptSegmentationModel
    from pathxai.segment.predictor import Segmentor

    index, _ = _tiny_index(tmp_path)
    torch.manual_seed(0)
    cfg = default_config("tiny")
    cfg["trained_labels"] = ["gland"]
    model = PromptSegmentationModel(ModelConfig(
        vocab_size=len(cfg["vocabulary"]), enc_channels=(8, 8, 16, 16, 16),
        dec_dims=(8, 8, 8, 16, 16), embed_dim=8, dim=16, heads=2, text_depth=1,
        fusion_depth=1, num_queries=4))
    seg = Segmentor(model, cfg, device="cpu", tta=True)
    res = evaluate_index(index, seg, n_boot=50, absent_check=False, datasets="toy")
    info = json.loads(json.dumps(res["predictor"]))
    assert info["checkpoint_hash"] == seg.checkpoint_hash
    assert info["postprocess"]["test_time_augmentation"]
    assert info["postprocess"]["tissue_mpp"] == 0.5


def test_assumed_mpp_table():
    assert assumed_mpp({"dataset": "glas", "mpp": 0.62}) == (0.62, "index")
    assert assumed_mpp({"dataset": "cpm15", "mpp": float("nan"), "magnification": "40x"})[0] == 0.25
    assert assumed_mpp({"dataset": "biomedparse_demo", "mpp": ""})[0] == pytest.approx(0.0625)
    assert assumed_mpp({"dataset": "new", "mpp": "", "magnification": ""})[0] == 0.5


def test_evaluate_real_subset(shared_data):
    idx = read_index(shared_data / "index.csv")
    sub = pd.concat([idx[idx.dataset == "cpm15"].head(2), idx[idx.dataset == "kather2016"].head(4)])
    res = evaluate_index(sub, StainSegmentor(), n_boot=100, absent_check=True,
                         root=shared_data)
    summ = {(r["dataset"], r["category"]): r for r in res["summary"]}
    cpm = summ[("cpm15", "nucleus")]
    assert cpm["n"] == 2 and cpm["dice"] > 0.5 and 0 < cpm["aji"] < cpm["dice"]
    # per-row Dice agrees with a direct computation
    row = next(r for r in res["rows"] if r["dataset"] == "cpm15")
    src = sub[sub.image_id == row["image_id"]].iloc[0]
    image, target, _ = load_pair(src)
    direct, = StainSegmentor().set_image(image, mpp=0.5 if src.magnification == "20x" else 0.25
                                         ).predict(["nuclei"])
    assert row["dice"] == pytest.approx(dice(direct.mask, target > 0))
    assert row["mpp_source"].startswith("assumed")
    ab = res["absent"]
    assert ab["summary"] and 0 <= ab["overall_empty_rate"] <= 1
    glass = [r for r in ab["rows"] if r["reason"] == "blank glass" and r["status"] == "ok"]
    assert glass and all(r["empty"] for r in glass)


def _aji_reference(pred, gt):
    """Kumar et al. 2017, Algorithm 1, written as loops over objects (slow, obvious)."""
    c = u = 0
    used = set()
    for g in [i for i in np.unique(gt) if i]:
        gm = gt == g
        best, best_iou = None, -1.0
        for p in [j for j in np.unique(pred) if j]:
            pm = pred == p
            j = (gm & pm).sum() / (gm | pm).sum()
            if j > best_iou:
                best, best_iou = p, j
        if best is None or best_iou == 0:
            u += gm.sum()
            continue
        pm = pred == best
        c += (gm & pm).sum()
        u += (gm | pm).sum()
        used.add(best)
    for p in [j for j in np.unique(pred) if j and j not in used]:
        u += (pred == p).sum()
    return c / u


def test_aji_matches_reference_on_random_instances():
    from skimage.measure import label

    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = label(rng.random((24, 24)) > 0.6)
        pred = label(rng.random((24, 24)) > 0.55)
        assert aji(pred, gt) == pytest.approx(_aji_reference(pred, gt))
