"""The cohort report: one self-contained HTML file per run (figures embedded, text escaped).

Public API
----------
render_report(run_dir_or_result, out_path=None) -> Path
    Write ``report.html`` from a run folder (nothing is recomputed).
flow_diagram, area_qc_plot, feature_distributions
    The report's own figures (matplotlib), usable in notebooks.
"""

from __future__ import annotations

from pathxai.report.figures import area_qc_plot, feature_distributions, figure_to_png, flow_diagram
from pathxai.report.html import build_context, render_report

__all__ = [
    "area_qc_plot",
    "build_context",
    "feature_distributions",
    "figure_to_png",
    "flow_diagram",
    "render_report",
]
