"""Paired comparison of two checkpoints scored on the same rows.

Two :func:`pathxai.segment.evaluate.evaluate_index` results on one index differ by much less
than their separate confidence intervals suggest: most of the spread of a mean Dice comes
from how hard the images are, which both models share. The honest test of "did the new
checkpoint gain?" is therefore **paired**: per image, ``dice_b - dice_a``; per
``(dataset, category)`` the mean difference with a percentile bootstrap CI that resamples
images (and one that resamples whole clusters, the ``cluster`` of each row, e.g. GlaS
patients), and how many images got better or worse. The absent-object check is compared
prompt by prompt: which known-absent prompts stopped (or started) giving an empty mask.

Used by ``analyses/compare_checkpoints.py`` to decide whether a fine-tune is shipped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pathxai.exceptions import StatsInputError
from pathxai.segment.metrics import bootstrap_mean_ci

__all__ = ["absent_changes", "paired_dice_table"]

_KEY = ["dataset", "image_id", "category"]


def _scored_rows(result: dict, name: str) -> pd.DataFrame:
    rows = result.get("rows") if isinstance(result, dict) else None
    if rows is None:
        raise StatsInputError(
            f"result {name!r} has no 'rows': pass the JSON written by `pathxai evaluate` or "
            "analyses/evaluate_default_checkpoint.py (model.json), not its summary")
    df = pd.DataFrame(rows)
    missing = [c for c in [*_KEY, "dice", "status"] if c not in df.columns]
    if missing:
        raise StatsInputError(f"result {name!r} rows lack columns {missing}")
    df = df[(df["status"] == "ok") & df["dice"].notna()]
    if df.duplicated(_KEY).any():
        dup = df.loc[df.duplicated(_KEY), _KEY].iloc[0].tolist()
        raise StatsInputError(f"result {name!r} scores {dup} twice; rows must be unique per "
                              "(dataset, image_id, category)")
    return df


def paired_dice_table(a: dict, b: dict, *, n_boot: int = 2000, ci: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Per ``(dataset, category)``: mean Dice of ``a`` and ``b`` on the rows both scored,
    and the paired difference ``b - a`` with bootstrap CIs.

    Parameters
    ----------
    a, b : dict
        Results of :func:`~pathxai.segment.evaluate.evaluate_index` (their ``rows``; the
        JSON files ``pathxai evaluate`` writes) on the same index. ``a`` is the reference.
    n_boot : int
        Bootstrap resamples.
    ci : float
        Coverage of the intervals.
    seed : int
        Seed of the resampling.

    Returns
    -------
    DataFrame
        One row per ``(dataset, category)``: ``n`` (images scored by both), ``dice_a``,
        ``dice_b``, ``diff`` (mean of ``dice_b - dice_a``), ``diff_ci_low`` /
        ``diff_ci_high`` (images resampled; NaN for n < 2), ``diff_ci_low_cluster`` /
        ``diff_ci_high_cluster`` (clusters resampled when the rows carry ``cluster``; NaN
        with fewer than 2 clusters), ``n_better``, ``n_worse`` (images with a higher / lower
        Dice in ``b``), ``n_only_a``, ``n_only_b`` (rows scored by one result only, left out).

    Raises
    ------
    StatsInputError
        A result without per-row scores, or with duplicate rows; no row scored by both.
    """
    da, db = _scored_rows(a, "a"), _scored_rows(b, "b")
    keep_b = [*_KEY, "dice"] + (["cluster"] if "cluster" in db.columns else [])
    m = da.merge(db[keep_b], on=_KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    if not (m["_merge"] == "both").any():
        raise StatsInputError("the two results share no scored (dataset, image_id, category) row; "
                              "were they run on the same index and split?")
    if "cluster_a" in m.columns:
        m["cluster"] = m["cluster_a"].fillna(m["cluster_b"])
    recs: list[dict[str, Any]] = []
    for (ds, cat), g in m.groupby(["dataset", "category"], sort=True):
        both = g[g["_merge"] == "both"]
        diff = (both["dice_b"] - both["dice_a"]).to_numpy(float)
        lo = hi = clo = chi = float("nan")
        if diff.size >= 2:
            lo, hi = bootstrap_mean_ci(diff, n_boot=n_boot, ci=ci, seed=seed)
            if "cluster" in both.columns and both["cluster"].notna().all():
                clo, chi = bootstrap_mean_ci(diff, n_boot=n_boot, ci=ci, seed=seed,
                                             groups=both["cluster"].tolist())
        recs.append({
            "dataset": ds, "category": cat, "n": int(diff.size),
            "dice_a": float(both["dice_a"].mean()) if diff.size else float("nan"),
            "dice_b": float(both["dice_b"].mean()) if diff.size else float("nan"),
            "diff": float(diff.mean()) if diff.size else float("nan"),
            "diff_ci_low": lo, "diff_ci_high": hi,
            "diff_ci_low_cluster": clo, "diff_ci_high_cluster": chi,
            "n_better": int((diff > 0).sum()), "n_worse": int((diff < 0).sum()),
            "n_only_a": int((g["_merge"] == "left_only").sum()),
            "n_only_b": int((g["_merge"] == "right_only").sum()),
        })
    return pd.DataFrame(recs)


def absent_changes(a: dict, b: dict) -> pd.DataFrame:
    """Known-absent prompts (``absent.rows`` with ``counted``) whose empty-mask outcome
    differs between ``a`` and ``b``.

    Returns
    -------
    DataFrame
        Columns ``image``, ``category``, ``reason``, ``empty_a``, ``empty_b``,
        ``presence_a``, ``presence_b``, ``pred_fraction_b``; empty when nothing changed or
        either result ran no absent-object check.
    """
    cols = ["image", "category", "reason", "empty_a", "empty_b", "presence_a", "presence_b",
            "pred_fraction_b"]
    ra = pd.DataFrame((a.get("absent") or {}).get("rows") or [])
    rb = pd.DataFrame((b.get("absent") or {}).get("rows") or [])
    if ra.empty or rb.empty:
        return pd.DataFrame(columns=cols)
    key = ["image", "category", "prompt"]
    ra, rb = (r[(r["status"] == "ok") & r["counted"].astype(bool)] for r in (ra, rb))
    m = ra.merge(rb, on=key, suffixes=("_a", "_b"))
    m = m[m["empty_a"].astype(bool) != m["empty_b"].astype(bool)]
    m = m.rename(columns={"reason_a": "reason"})
    return m[cols].reset_index(drop=True)
