"""Paired comparison of two evaluation results (pathxai.segment.compare)."""

from __future__ import annotations

import numpy as np
import pytest

from pathxai.exceptions import StatsInputError
from pathxai.segment.compare import absent_changes, paired_dice_table


def _result(dice_by_image: dict, *, dataset="glas", category="gland", clusters=None,
            absent=None) -> dict:
    rows = [{"dataset": dataset, "image_id": k, "category": category, "status": "ok",
             "dice": v, "cluster": (clusters or {}).get(k, f"{dataset}:{k}")}
            for k, v in dice_by_image.items()]
    return {"rows": rows, "absent": {"rows": absent or [], "overall_empty_rate": None}}


def test_paired_difference_is_the_mean_of_per_image_differences_with_a_tighter_ci():
    rng = np.random.default_rng(0)
    hard = rng.uniform(0.4, 0.95, 40)                       # image difficulty, shared
    a = {f"i{k}": float(x) for k, x in enumerate(hard)}
    gain = rng.normal(0.01, 0.005, 40)
    b = {f"i{k}": float(x + g) for k, (x, g) in enumerate(zip(hard, gain))}
    t = paired_dice_table(_result(a), _result(b), n_boot=500)
    r = t.iloc[0]
    assert r["n"] == 40 and r["n_only_a"] == 0 and r["n_only_b"] == 0
    assert r["diff"] == pytest.approx(gain.mean())
    assert r["dice_b"] - r["dice_a"] == pytest.approx(gain.mean())
    assert r["diff_ci_low"] < gain.mean() < r["diff_ci_high"]
    assert r["diff_ci_low"] > 0, "a consistent small gain must be detected by the paired CI"
    assert r["n_better"] == int((gain > 0).sum()) and r["n_worse"] == int((gain < 0).sum())
    # the unpaired spread of each mean is far wider than the paired one
    assert (r["diff_ci_high"] - r["diff_ci_low"]) < 0.2 * hard.std()


def test_rows_scored_by_one_result_only_are_left_out_and_counted():
    a = {"x": 0.5, "y": 0.6, "z": 0.7}
    b = {"x": 0.6, "y": 0.6, "w": 0.9}
    r = paired_dice_table(_result(a), _result(b), n_boot=200).iloc[0]
    assert r["n"] == 2 and r["n_only_a"] == 1 and r["n_only_b"] == 1
    assert r["diff"] == pytest.approx(0.05)
    assert r["dice_a"] == pytest.approx(0.55) and r["dice_b"] == pytest.approx(0.6)


def test_cluster_ci_needs_two_clusters_and_groups_are_per_dataset_category():
    a = {"p": 0.5, "q": 0.6, "r": 0.7, "s": 0.8}
    b = {"p": 0.55, "q": 0.6, "r": 0.72, "s": 0.9}
    one = paired_dice_table(_result(a, clusters=dict.fromkeys(a, "slide1")),
                            _result(b, clusters=dict.fromkeys(b, "slide1")), n_boot=200).iloc[0]
    assert np.isnan(one["diff_ci_low_cluster"]) and not np.isnan(one["diff_ci_low"])
    two = {"p": "s1", "q": "s1", "r": "s2", "s": "s2"}
    r = paired_dice_table(_result(a, clusters=two), _result(b, clusters=two), n_boot=200).iloc[0]
    assert r["diff_ci_low_cluster"] <= r["diff"] <= r["diff_ci_high_cluster"]
    both = _result(a)
    both["rows"] += _result({"p": 0.9}, dataset="ebhi_seg")["rows"]
    t = paired_dice_table(both, both, n_boot=50)
    assert list(zip(t["dataset"], t["n"])) == [("ebhi_seg", 1), ("glas", 4)]
    assert (t["diff"] == 0).all()


def test_failed_rows_are_not_compared_and_bad_inputs_are_refused():
    a = _result({"x": 0.5, "y": 0.6})
    b = _result({"x": 0.7, "y": 0.6})
    b["rows"][1]["status"] = "error"
    r = paired_dice_table(a, b, n_boot=50).iloc[0]
    assert r["n"] == 1 and r["n_only_a"] == 1 and np.isnan(r["diff_ci_low"])
    with pytest.raises(StatsInputError, match="no 'rows'"):
        paired_dice_table({"summary": []}, b)
    with pytest.raises(StatsInputError, match="share no scored"):
        paired_dice_table(a, _result({"z": 0.1}))
    dup = _result({"x": 0.5})
    dup["rows"].append(dict(dup["rows"][0]))
    with pytest.raises(StatsInputError, match="twice"):
        paired_dice_table(dup, a)


def test_absent_changes_lists_prompts_whose_empty_outcome_flipped():
    def row(img, cat, empty, pres, frac=0.0, counted=True):
        return {"image": img, "category": cat, "prompt": f"tissue-level {cat}", "reason": "tile",
                "status": "ok", "counted": counted, "empty": empty, "presence": pres,
                "pred_fraction": frac}
    a = _result({"x": 0.5}, absent=[row("t1", "adipose tissue", True, 0.3),
                                     row("t2", "debris", False, 0.8, 0.1),
                                     row("t3", "stroma", True, 0.2, counted=False)])
    b = _result({"x": 0.5}, absent=[row("t1", "adipose tissue", False, 0.7, 0.05),
                                     row("t2", "debris", True, 0.1),
                                     row("t3", "stroma", False, 0.9, 0.3, counted=False)])
    ch = absent_changes(a, b)
    assert sorted(ch["category"]) == ["adipose tissue", "debris"]   # uncounted stroma left out
    ad = ch[ch["category"] == "adipose tissue"].iloc[0]
    assert ad["empty_a"] and not ad["empty_b"] and ad["pred_fraction_b"] == pytest.approx(0.05)
    assert absent_changes(a, a).empty
    assert absent_changes(a, {"rows": []}).empty


def test_compare_checkpoints_script_renders_the_table(tmp_path, repo_script):
    mod = repo_script("analyses/compare_checkpoints.py")
    a = _result({"x": 0.5, "y": 0.6, "z": 0.7})
    b = _result({"x": 0.6, "y": 0.65, "z": 0.7})
    text = mod.render(a, b, n_boot=100)
    assert "| glas | gland | 3 | 0.600 | 0.650 | +0.050 [" in text
    assert "| 2 / 0 |" in text
