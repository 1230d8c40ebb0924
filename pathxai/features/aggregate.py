"""Slide -> patient aggregation with one documented rule per feature.

The rule of every feature is its registry ``aggregation`` (see
:mod:`pathxai.features.registry`):

* ``sum``: pooled counts, areas, lengths (missing slides contribute 0);
* ``ratio:NUM/DEN``: recomputed from pooled sums: area fractions are area-weighted
  (Σ region area / Σ tissue area), densities are pooled counts / pooled areas, ratios
  are Σ numerator area / Σ denominator area;
* ``weighted_mean:W``: Σ w·x / Σ w over slides where x is finite and w > 0 (object-weighted
  means of object statistics, area-weighted region shape indices); for ``mean_*``
  statistics this is the exact pooled mean; for ``median_*`` and ``iqr_*`` it is the
  object-weighted mean of the slide values (an approximation: exact pooled quantiles need
  the per-object table);
* ``pooled_sd:MEAN:COUNT``: the exact SD (ddof=0) of the pooled objects from slide counts,
  means and SDs.

A patient value is NaN when no slide has a usable value (e.g. zero pooled denominator).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import FeatureError
from pathxai.features.registry import FeatureSpec, match_feature, normalise_extra

__all__ = ["aggregate_patients", "aggregation_rules"]


def aggregation_rules(columns: Iterable[str],
                      extra_features: Iterable[FeatureSpec | Mapping[str, Any]] | None = None) -> dict[str, str]:
    """The aggregation rule of each feature column (placeholders filled)."""
    extra = normalise_extra(extra_features)
    out = {}
    for c in columns:
        spec = match_feature(c, extra)
        if spec is None:
            raise FeatureError(f"column {c!r} has no registry entry, so no aggregation rule")
        out[c] = spec.aggregation_for(c)
    return out


def _col(g: pd.DataFrame, name: str) -> pd.Series:
    if name not in g:
        raise FeatureError(f"aggregation needs column {name!r}, which the slide table lacks")
    return g[name].astype(float)


def _apply(rule: str, g: pd.DataFrame, col: str) -> float:
    x = g[col].astype(float)
    kind, _, arg = rule.partition(":")
    if kind == "sum":
        return float(x.fillna(0).sum())
    if kind == "ratio":
        num, den = arg.split("/")
        n = float(_col(g, num).fillna(0).sum())
        d = float(_col(g, den).fillna(0).sum())
        return n / d if d > 0 else float("nan")
    if kind == "weighted_mean":
        w = _col(g, arg)
        ok = np.isfinite(x) & np.isfinite(w) & (w > 0)
        return float((x[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    if kind == "pooled_sd":
        mean_col, count_col = arg.split(":")
        m, n = _col(g, mean_col), _col(g, count_col)
        ok = np.isfinite(x) & np.isfinite(m) & np.isfinite(n) & (n > 0)
        if not ok.any():
            return float("nan")
        m, n, s = m[ok], n[ok], x[ok]
        tot = n.sum()
        grand = (n * m).sum() / tot
        var = ((n * (s * s + (m - grand) ** 2)).sum()) / tot
        return float(np.sqrt(max(var, 0.0)))
    raise FeatureError(f"unknown aggregation rule {rule!r} for {col!r}")


def aggregate_patients(slide_table: pd.DataFrame, slide_to_patient: Mapping[str, str] | pd.Series | pd.DataFrame,
                       *, slide_col: str = "slide_id", patient_col: str = "patient_id",
                       extra_features: Iterable[FeatureSpec | Mapping[str, Any]] | None = None,
                       include_n_slides: bool = False) -> pd.DataFrame:
    """Pool slide features into one row per patient.

    Parameters
    ----------
    slide_table : DataFrame
        One row per slide (``slide_col`` plus feature columns), as from
        :func:`~pathxai.features.features_table`.
    slide_to_patient : mapping, Series or DataFrame
        Slide id -> patient id (a DataFrame needs ``slide_col`` and ``patient_col``).
    extra_features : optional
        The extra features used to compute the table (for their rules).
    include_n_slides : bool
        Add an ``n_slides`` column (off by default so that downstream statistics, which
        use every numeric column, do not test it as a biomarker).

    Returns
    -------
    DataFrame
        ``patient_col`` and every feature column (and ``n_slides``), one row per patient,
        sorted by patient id.
    """
    if isinstance(slide_to_patient, pd.DataFrame):
        missing = {slide_col, patient_col} - set(slide_to_patient.columns)
        if missing:
            raise FeatureError(f"slide_to_patient lacks columns {sorted(missing)}")
        mapping = dict(zip(slide_to_patient[slide_col].astype(str), slide_to_patient[patient_col]))
    else:
        mapping = {str(k): v for k, v in dict(slide_to_patient).items()}
    if slide_col not in slide_table:
        raise FeatureError(f"slide table has no {slide_col!r} column")
    ids = slide_table[slide_col].astype(str)
    unmapped = sorted(set(ids) - set(mapping))
    if unmapped:
        raise FeatureError(f"slides without a patient: {unmapped[:10]}; add them to slide_to_patient")
    feats = [c for c in slide_table.columns if c not in (slide_col, patient_col)]
    rules = aggregation_rules(feats, extra_features)
    table = slide_table.assign(**{patient_col: ids.map(mapping).to_numpy()})
    rows = []
    for pid, g in table.groupby(patient_col, sort=True):
        row: dict[str, Any] = {patient_col: pid}
        if include_n_slides:
            row["n_slides"] = len(g)
        for c in feats:
            row[c] = _apply(rules[c], g, c)
        rows.append(row)
    return pd.DataFrame(rows)
