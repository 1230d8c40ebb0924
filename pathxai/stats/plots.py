"""Figures of a biomarker analysis (matplotlib; each function returns a Figure).

Uses the object-oriented API only (no pyplot state is left behind) so it is safe in
Jupyter and in headless runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["km_figure", "shap_beeswarm_figure", "shap_stability_figure",
           "survival_calibration_figure", "volcano_figure", "forest_figure", "roc_figure",
           "diagnostic_calibration_figure"]


def _fig(w=6.0, h=4.0) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


def volcano_figure(univariable) -> Figure:
    """log2 HR per SD vs -log10 q of the univariable screen."""
    fig = _fig(5.5, 4.5)
    univariable.plot_volcano(ax=fig.add_subplot())
    return fig


def forest_figure(univariable, top: int = 25) -> Figure:
    """Forest plot of the ``top`` univariable HRs per SD with 95 % CI."""
    n = min(top, len(univariable.summary))
    fig = _fig(6.5, 0.28 * n + 1.5)
    univariable.plot(ax=fig.add_subplot(), top=top)
    return fig


def km_figure(km: dict, logrank: dict, time_unit: str = "", model: str = "") -> Figure:
    """Kaplan--Meier curves of the risk groups with an at-risk table and log-rank p.

    ``model`` names the model whose out-of-fold score defines the groups (title prefix).
    """
    from lifelines.plotting import add_at_risk_counts

    fig = _fig(6.5, 5.0)
    ax = fig.add_subplot()
    fitters = []
    for c in km["curves"].values():
        kmf = c["_fitter"]
        kmf.plot_survival_function(ax=ax, ci_show=True)
        fitters.append(kmf)
    ax.set_xlabel(f"time{f' ({time_unit})' if time_unit else ''}")
    ax.set_ylabel("survival probability")
    p = logrank.get("p", float("nan"))
    ptxt = f"log-rank p = {p:.2g}" if np.isfinite(p) else "groups collapsed: no log-rank test"
    prefix = f"{model}: o" if model else "O"
    ax.set_title(f"{prefix}ut-of-fold risk groups (training-fold quantiles); {ptxt}", fontsize=9)
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"])
    return fig


def shap_beeswarm_figure(shap_values: np.ndarray, x_values: np.ndarray, names, top: int = 15,
                         title: str = "SHAP on held-out patients") -> Figure:
    """Beeswarm-style plot: per feature, held-out SHAP values coloured by feature value."""
    imp = np.abs(shap_values).mean(0)
    order = [i for i in np.argsort(-imp)[:top] if imp[i] > 0][::-1]
    fig = _fig(6.5, 0.3 * max(len(order), 1) + 1.5)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    sc = None
    for row, j in enumerate(order):
        v = shap_values[:, j]
        x = x_values[:, j]
        lo, hi = np.nanpercentile(x, [5, 95])
        c = np.clip((x - lo) / (hi - lo + 1e-12), 0, 1)
        jitter = rng.normal(0, 0.08, v.size)
        sc = ax.scatter(v, row + jitter, c=c, cmap="coolwarm", s=6, alpha=0.8, vmin=0, vmax=1)
    ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize=7)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("SHAP value (model output units)")
    ax.set_title(title, fontsize=9)
    if sc is not None:
        cb = fig.colorbar(sc, ax=ax, pad=0.01)
        cb.set_label("feature value (low to high)")
    return fig


def shap_stability_figure(shap_summary: pd.DataFrame, top: int = 15,
                          title: str = "SHAP stability across refits") -> Figure:
    """Bars: mean |SHAP| with percentile interval; annotated with top-k frequency."""
    s = shap_summary.sort_values("shap_mean_abs", ascending=False).head(top).iloc[::-1]
    fig = _fig(6.5, 0.3 * len(s) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(s))
    # the mean can lie outside a percentile interval of a skewed (mostly zero) distribution
    err = [np.clip(s["shap_mean_abs"] - s["shap_ci_low"], 0, None),
           np.clip(s["shap_ci_high"] - s["shap_mean_abs"], 0, None)]
    ax.barh(y, s["shap_mean_abs"], xerr=err,
            color="tab:purple", alpha=0.7, error_kw={"lw": 0.8})
    for yi, (_, r) in zip(y, s.iterrows()):
        ax.text(r["shap_ci_high"], yi, f"  top-k {r['shap_top_k_frequency']:.0%}", va="center",
                fontsize=6)
    ax.set_yticks(y, s["feature"], fontsize=7)
    ax.set_xlabel("mean |SHAP| on held-out patients (95 % interval across refits)")
    ax.set_title(title, fontsize=9)
    return fig


def survival_calibration_figure(cal: dict, model: str = "") -> Figure:
    """Observed (KM) vs predicted risk at the calibration horizon, per risk quintile.

    ``model`` names the model (title prefix).
    """
    fig = _fig(4.5, 4.5)
    ax = fig.add_subplot()
    g = pd.DataFrame(cal["groups"])
    ax.errorbar(g["predicted_risk"], g["observed_risk"],
                yerr=[g["observed_risk"] - g["observed_ci_low"],
                      g["observed_ci_high"] - g["observed_risk"]], fmt="o", capsize=2)
    m = max(g["predicted_risk"].max(), g["observed_ci_high"].max(), 0.05)
    ax.plot([0, m], [0, m], "k--", lw=0.8)
    ax.set_xlabel(f"predicted risk at t = {cal['horizon']:.3g}")
    ax.set_ylabel("observed risk (1 - KM)")
    s = cal["slope"]
    ax.set_title(f"{model + ': ' if model else ''}calibration (out-of-fold); slope "
                 f"{s['estimate']:.2f} ({s['ci_low']:.2f}-{s['ci_high']:.2f})", fontsize=9)
    return fig


def roc_figure(diagnostic, primary=None) -> Figure:
    """ROC curves of the out-of-fold predictions of each diagnostic model.

    ``primary`` (a :class:`~pathxai.stats.results.DiagnosticResult` of the pre-specified
    logistic model) adds its curve, labelled ``pre-specified``.
    """
    fig = _fig(4.8, 4.5)
    ax = fig.add_subplot()
    diagnostic.plot(ax=ax)
    if primary is not None:
        for name, c in primary.curves.items():
            row = primary.summary.set_index("model").loc[name]
            ax.plot(c["fpr"], c["tpr"], color="k", lw=1.4,
                    label=f"{name}, pre-specified AUROC {row['auroc']:.2f} "
                          f"({row['auroc_ci_low']:.2f}-{row['auroc_ci_high']:.2f})")
        ax.legend(fontsize=7, loc="lower right")
    return fig


def diagnostic_calibration_figure(diagnostic) -> Figure:
    fig = _fig(4.8, 4.5)
    diagnostic.plot_calibration(ax=fig.add_subplot())
    return fig
