"""Lifelines-style result objects: ``summary`` DataFrame, ``print_summary()``,
``plot(ax=None)`` returning the axes, and ``_repr_html_`` for Jupyter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Result", "UnivariableCoxResult", "SurvivalModelResult", "DiagnosticResult"]


class Result:
    """Base: a titled ``summary`` table plus header facts (``info``)."""

    title = "result"

    def __init__(self, summary: pd.DataFrame, info: dict[str, Any] | None = None):
        self.summary = summary
        self.info = dict(info or {})

    def _header(self) -> list[tuple[str, str]]:
        out = []
        for k, v in self.info.items():
            if isinstance(v, (dict, list)) and len(str(v)) > 120:
                continue
            if isinstance(v, float):
                v = f"{v:.4g}"
            out.append((k, str(v)))
        return out

    def print_summary(self, decimals: int = 3, max_rows: int | None = 30) -> None:
        """Print the header facts and the summary table."""
        print(f"<{type(self).__name__}: {self.title}>")
        for k, v in self._header():
            print(f"  {k} = {v}")
        with pd.option_context("display.max_rows", max_rows, "display.width", 160,
                               "display.max_columns", 30):
            print(self.summary.round(decimals).to_string(max_rows=max_rows))

    def _repr_html_(self) -> str:
        head = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in self._header())
        table = self.summary.head(50).to_html(float_format=lambda x: f"{x:.3g}", index=False)
        return (f"<div><h4>{type(self).__name__}: {self.title}</h4>"
                f"<table>{head}</table>{table}</div>")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.title}, {len(self.summary)} rows>"

    def plot(self, ax=None):  # pragma: no cover - overridden
        raise NotImplementedError


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


class UnivariableCoxResult(Result):
    """Per-feature Cox screening (descriptive; HR per SD, Wald p, BH q, PH test)."""

    title = "univariable Cox screening (HR per SD)"

    def plot(self, ax=None, top: int = 25):
        """Forest plot of the ``top`` features by q: HR per SD with 95 % CI (log axis)."""
        s = self.summary.dropna(subset=["hr"]).sort_values("p").head(top).iloc[::-1]
        ax = _axes(ax, (6, 0.28 * len(s) + 1.2))
        y = np.arange(len(s))
        colors = np.where(s["q"] < 0.05, "tab:red", "tab:gray")
        ax.hlines(y, s["hr_ci_low"], s["hr_ci_high"], colors=colors, lw=1.2)
        ax.scatter(s["hr"], y, c=colors, s=18, zorder=3)
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, s["feature"], fontsize=7)
        ax.set_xlabel("hazard ratio per SD (95 % CI); red: q < 0.05")
        ax.set_title("Univariable Cox (descriptive)")
        return ax

    def plot_volcano(self, ax=None, label_top: int = 8):
        """Volcano plot: log2 HR per SD vs -log10 q."""
        s = self.summary.dropna(subset=["hr", "q"])
        ax = _axes(ax, (5.5, 4.5))
        x = np.log2(s["hr"])
        yv = -np.log10(np.clip(s["q"], 1e-300, None))
        ax.scatter(x, yv, s=12, c=np.where(s["q"] < 0.05, "tab:red", "tab:gray"))
        ax.axhline(-np.log10(0.05), color="k", lw=0.8, ls="--")
        ax.axvline(0, color="k", lw=0.5)
        for _, r in s.sort_values("q").head(label_top).iterrows():
            ax.annotate(r["feature"], (np.log2(r["hr"]), -np.log10(max(r["q"], 1e-300))),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xlabel("log2 hazard ratio per SD")
        ax.set_ylabel("-log10 q (Benjamini-Hochberg)")
        ax.set_title("Volcano plot (dashed: q = 0.05)")
        return ax


class SurvivalModelResult(Result):
    """Multivariable elastic-net Cox: coefficients summary plus performance in ``metrics``."""

    title = "multivariable elastic-net Cox (nested CV)"

    def __init__(self, summary: pd.DataFrame, info: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, km: dict[str, Any] | None = None):
        super().__init__(summary, info)
        self.metrics = dict(metrics or {})
        self.km = km

    def _header(self):
        out = super()._header()
        for k in ("harrell_c", "uno_c", "harrell_c_optimism_corrected"):
            m = self.metrics.get(k)
            if isinstance(m, dict):
                out.append((k, f"{m['estimate']:.3f} (95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f})"))
        return out

    def plot(self, ax=None, top: int = 20):
        """Coefficients (log HR per SD) of the final model, with bootstrap selection share."""
        s = self.summary[self.summary["coef"] != 0].copy()
        s = s.reindex(s["coef"].abs().sort_values(ascending=False).index).head(top).iloc[::-1]
        ax = _axes(ax, (6, 0.3 * len(s) + 1.2))
        y = np.arange(len(s))
        ax.barh(y, s["coef"], color=np.where(s["coef"] > 0, "tab:red", "tab:blue"))
        ax.set_yticks(y, s["feature"], fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("penalised log HR per SD (final model)")
        return ax


class DiagnosticResult(Result):
    """Diagnostic classifiers (per model: AUROC, AUPRC with CIs, calibration)."""

    title = "diagnostic models (nested CV)"

    def __init__(self, summary: pd.DataFrame, info: dict[str, Any] | None = None,
                 curves: dict[str, Any] | None = None):
        super().__init__(summary, info)
        self.curves = dict(curves or {})

    def plot(self, ax=None):
        """ROC curves of the out-of-fold predictions of each model."""
        ax = _axes(ax, (4.5, 4.5))
        for name, c in self.curves.items():
            row = self.summary.set_index("model").loc[name]
            ax.plot(c["fpr"], c["tpr"], label=f"{name} AUROC {row['auroc']:.2f} "
                    f"({row['auroc_ci_low']:.2f}-{row['auroc_ci_high']:.2f})")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title("ROC (out-of-fold)")
        ax.legend(fontsize=7, loc="lower right")
        return ax

    def plot_calibration(self, ax=None):
        """Reliability curve of the out-of-fold predicted probabilities."""
        ax = _axes(ax, (4.5, 4.5))
        for name, c in self.curves.items():
            ax.plot(c["prob_pred"], c["prob_true"], "o-", ms=3, label=name)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed fraction")
        ax.set_title("Calibration (out-of-fold)")
        ax.legend(fontsize=7)
        return ax
