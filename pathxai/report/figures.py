"""Figures of the cohort report that the statistics stage does not draw.

* :func:`flow_diagram` — REMARK-style cohort flow: slides and patients in, exclusions
  with reasons, patients and events analysed.
* :func:`area_qc_plot` — per-slide mask areas per prompt with robust-z outliers marked.
* :func:`feature_distributions` — distributions of the top candidate features, split by
  outcome (event or diagnostic label).
* :func:`figure_to_png` — a figure as PNG bytes for embedding.

The statistical figures (volcano, forest, Kaplan–Meier with at-risk tables, SHAP
beeswarm and stability, ROC, calibration) come from :mod:`pathxai.stats` and are
embedded as they are.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["flow_diagram", "area_qc_plot", "feature_distributions", "figure_to_png"]


def _plt() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_to_png(fig: Any, *, dpi: int = 110, close: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (tight bounding box); closes it by default."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        _plt().close(fig)
    return buf.getvalue()


def _wrap(text: str, width: int = 46) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def _reason_counts(items: Sequence[dict], *, max_lines: int = 4) -> str:
    """'n × reason' lines, most frequent first, long reasons shortened."""
    if not items:
        return ""
    reasons = pd.Series([str(d.get("reason", "")).split("\n")[0][:70] for d in items])
    vc = reasons.value_counts()
    lines = [f"{n} × {r}" for r, n in vc.head(max_lines).items()]
    if len(vc) > max_lines:
        lines.append(f"… {len(vc) - max_lines} more reasons (see table)")
    return "\n".join(lines)


def flow_diagram(flow: dict[str, Any]) -> Any:
    """REMARK-style flow diagram of the cohort (McShane et al. 2005, item 'patients').

    Parameters
    ----------
    flow : dict
        From :func:`pathxai.pipeline.run.cohort_flow`: ``patients_in``, ``slides_in``,
        ``slides_failed``, ``slides_ok``, ``patients_no_slides``,
        ``patients_excluded_stats``, ``patients_analysed``, ``events``,
        ``median_follow_up``, ``time_unit``, ``label_counts``.

    Returns
    -------
    matplotlib.figure.Figure
        Main boxes down the left; exclusion boxes (with reasons) to the right.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.5, 6.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.5", "fc": "#eef3f8", "ec": "#2f5d8a", "lw": 1.2}
    exbox = {"boxstyle": "round,pad=0.5", "fc": "#fdf1ec", "ec": "#b5542c", "lw": 1.2}
    fu = flow.get("median_follow_up")
    unit = flow.get("time_unit") or ""
    fu_txt = f"median follow-up {fu:.1f} {unit} (reverse KM)" if fu is not None else "median follow-up not estimable"
    lab = flow.get("label_counts")
    lab_txt = ""
    if lab:
        lab_txt = f"\n{flow.get('label_col')}: " + ", ".join(f"{k}: {v}" for k, v in lab.items())
    main = [
        (9.0, f"Cohort manifest\n{flow['patients_in']} patients, {flow['slides_in']} slides"),
        (6.2, f"Slides segmented and measured\n{flow['slides_ok']} slides"),
        (3.4, f"Patients with ≥ 1 measured slide\n{flow['patients_in'] - len(flow['patients_no_slides'])} patients"),
        (0.7, f"Patients analysed: {flow['patients_analysed']}\n"
              f"events: {flow['events']}, {fu_txt}{lab_txt}"),
    ]
    for y, text in main:
        ax.text(2.6, y, text, ha="center", va="center", fontsize=9.5, bbox=box)
    for (y0, _), (y1, _) in zip(main[:-1], main[1:]):
        ax.annotate("", xy=(2.6, y1 + 0.75), xytext=(2.6, y0 - 0.75),
                    arrowprops={"arrowstyle": "-|>", "color": "#2f5d8a", "lw": 1.2})
    excl = [
        (7.6, flow["slides_failed"], "slides failed"),
        (4.8, flow["patients_no_slides"], "patients without a measured slide"),
        (2.05, flow["patients_excluded_stats"], "patients excluded by the statistics"),
    ]
    for y, items, title in excl:
        text = f"Excluded: {len(items)} {title}"
        detail = _reason_counts(items)
        if detail:
            text += "\n" + "\n".join(_wrap(line, 60) for line in detail.split("\n"))
        ax.text(5.6, y, text, ha="left", va="center", fontsize=8.5, bbox=exbox)
        ax.annotate("", xy=(5.45, y), xytext=(2.6, y),
                    arrowprops={"arrowstyle": "-|>", "color": "#b5542c", "lw": 1.0})
    fig.tight_layout()
    return fig


def area_qc_plot(qc: pd.DataFrame, *, threshold: float = 3.5) -> Any | None:
    """Strip plot of per-slide mask areas (mm²) per prompt; outliers in red.

    Parameters
    ----------
    qc : DataFrame
        From :func:`pathxai.pipeline.stages.qc_area_table`: ``slide_id``,
        ``area_mm2__<slug>`` and ``z__<slug>`` columns.
    threshold : float
        ``|robust z|`` above which a slide is flagged.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when there are no area columns.
    """
    cols = [c for c in qc.columns if c.startswith("area_mm2__")]
    if not cols or qc.empty:
        return None
    plt = _plt()
    rng = np.random.default_rng(0)  # jitter only
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(cols) + 2), 3.6))
    for i, c in enumerate(cols):
        slug = c[len("area_mm2__"):]
        y = qc[c].to_numpy(dtype=float)
        z = qc.get(f"z__{slug}", pd.Series(np.zeros(len(qc)))).to_numpy(dtype=float)
        x = i + rng.uniform(-0.18, 0.18, size=len(y))
        bad = np.abs(z) > threshold
        ax.scatter(x[~bad], y[~bad], s=18, color="#2f5d8a", alpha=0.8, label="slide" if i == 0 else None)
        ax.scatter(x[bad], y[bad], s=34, color="#c0392b", marker="D",
                   label=f"|robust z| > {threshold}" if i == 0 else None)
        if np.isfinite(y).any():
            ax.hlines(np.nanmedian(y), i - 0.3, i + 0.3, color="k", lw=1)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c[len("area_mm2__"):].replace("_", " ") for c in cols], rotation=20, ha="right")
    ax.set_ylabel("mask area per slide (mm²)")
    ax.set_title("Segmented area per slide and prompt (line = median)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def feature_distributions(
    patient_features: pd.DataFrame,
    features: Sequence[str],
    *,
    groups: pd.Series | None = None,
    group_name: str = "",
    ncols: int = 3,
) -> Any | None:
    """Histograms of ``features`` across patients, split by ``groups`` when given.

    Parameters
    ----------
    patient_features : DataFrame
        One row per patient.
    features : sequence of str
        Columns to draw (e.g. the top candidate biomarkers); missing ones are skipped.
    groups : Series, optional
        Group per row of ``patient_features`` (e.g. event 0/1 or the diagnostic label).
    group_name : str
        Legend title.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no feature column is numeric.
    """
    feats = [
        f for f in features
        if f in patient_features.columns and pd.api.types.is_numeric_dtype(patient_features[f])
    ]
    if not feats:
        return None
    plt = _plt()
    nrows = int(np.ceil(len(feats) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), squeeze=False)
    palette = ["#2f5d8a", "#d55e00", "#009e73", "#cc79a7"]
    for ax, f in zip(axes.ravel(), feats):
        x = patient_features[f].to_numpy(dtype=float)
        finite = np.isfinite(x)
        bins = np.histogram_bin_edges(x[finite], bins=min(20, max(5, finite.sum() // 3))) if finite.any() else 10
        if groups is not None:
            g = pd.Series(np.asarray(groups), index=patient_features.index)
            for k, (level, idx) in enumerate(g.groupby(g).groups.items()):
                vals = patient_features.loc[idx, f].to_numpy(dtype=float)
                ax.hist(vals[np.isfinite(vals)], bins=bins, alpha=0.55, color=palette[k % 4],
                        label=f"{group_name}={level}")
        else:
            ax.hist(x[finite], bins=bins, color=palette[0], alpha=0.8)
        ax.set_title(_wrap(f, 38), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("patients", fontsize=7)
    for ax in axes.ravel()[len(feats):]:
        ax.axis("off")
    if groups is not None:
        axes.ravel()[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
