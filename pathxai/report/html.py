"""The self-contained HTML report of a cohort run: :func:`render_report`.

Everything is read back from the run folder (so a report can be re-rendered from
disk without recomputing anything) and written as ONE file: figures are embedded as
base64 PNG ``data:`` URIs, the CSS is inline, there is no JavaScript and nothing is
fetched from the network. The template is rendered by jinja2 with autoescaping on,
so user-supplied text (slide and patient ids, prompts, column names, error
messages) can never inject markup.
"""

from __future__ import annotations

import base64
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import PipelineError
from pathxai.pipeline.io import atomic_write_text, read_json
from pathxai.report.figures import area_qc_plot, feature_distributions, figure_to_png, flow_diagram

__all__ = ["render_report", "build_context", "STAT_FIGURE_SECTIONS"]

#: (section id, title, file-name keywords) — how the statistics figures are placed
STAT_FIGURE_SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("univariable", "Univariable screening: volcano and forest plots", ("volcano", "forest", "univariable")),
    ("survival", "Kaplan–Meier curves with numbers at risk", ("km", "kaplan", "survival")),
    ("shap", "SHAP importance (held-out data) and selection stability", ("shap", "beeswarm", "stability", "importance")),
    ("diagnostic", "Diagnostic model: ROC and calibration", ("roc", "calibration", "diagnostic", "auc")),
)

_MAX_QC_SLIDES = 24
_MAX_BIOMARKER_ROWS = 25


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _file_uri(path: Path) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return _data_uri(path.read_bytes(), mime)


def _fmt(value: Any) -> str:
    """Numbers to 3 significant digits (p/q values in scientific form when tiny)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(value)


def _table(df: pd.DataFrame | None, *, max_rows: int | None = None) -> dict[str, Any] | None:
    """A DataFrame as ``{"columns": [...], "rows": [[...]], "n_total": int}`` of strings."""
    if df is None or df.empty:
        return None
    shown = df if max_rows is None else df.head(max_rows)
    rows = [[_fmt(v) for v in r] for r in shown.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in df.columns], "rows": rows, "n_total": len(df)}


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, **kwargs) if path.is_file() else None
    except (pd.errors.EmptyDataError, OSError):
        return None


def _find_biomarkers(stats_dir: Path) -> pd.DataFrame | None:
    for name in ("biomarkers.csv", "biomarker_table.csv", "candidate_biomarkers.csv"):
        df = _read_csv(stats_dir / name)
        if df is not None:
            return df
    hits = sorted(stats_dir.rglob("*biomarker*.csv")) if stats_dir.is_dir() else []
    return _read_csv(hits[0]) if hits else None


def _ci_text(m: Any, signed: bool = False) -> str:
    """``'0.764 (0.670–0.819)'`` (signed: ``'+0.048 (-0.007 to +0.117)'``) from
    ``{estimate, ci_low, ci_high}``; ``'–'`` when absent."""
    if not isinstance(m, dict) or m.get("estimate") is None:
        return "–"
    f = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    sep = " to " if signed else "–"
    ci = f" ({f.format(lo)}{sep}{f.format(hi)})" if lo is not None and hi is not None else ""
    return f.format(m["estimate"]) + ci


def _model_performance(stats_dir: Path) -> dict[str, Any] | None:
    """Out-of-fold performance of the multivariable (and diagnostic) models, labelled.

    Reads ``multivariable.json`` / ``diagnostic.json``: the pre-specified model (primary
    family only) and the all-feature model, the headline marked. Files written before the
    pre-specified model existed (no ``headline`` key) show their one model as the
    all-feature model.
    """
    mv = read_json(stats_dir / "multivariable.json")
    if not isinstance(mv, dict) or "harrell_c" not in mv:
        return None
    head = mv.get("headline", "all_features")
    prim = mv.get("primary")
    allf = mv.get("all_features") or mv
    n_all = allf.get("n_features", (allf.get("info") or {}).get("n_features"))
    models = [("primary", "pre-specified (primary family)", prim)] if prim else []
    models.append(("all_features", "all features" + (" (exploratory)" if prim else ""), allf))
    rows = []
    for key, label, b in models:
        auc = b.get("time_dependent_auc") or {}
        rows.append({
            "model": label + (" — headline" if key == head else ""),
            "features": b.get("n_features", (b.get("info") or {}).get("n_features")),
            "Harrell's C (95% CI)": _ci_text(b.get("harrell_c")),
            "Uno's C (95% CI)": _ci_text(b.get("uno_c")),
            "optimism-corrected C (95% CI)": _ci_text(b.get("harrell_c_optimism_corrected")),
            "AUC(t)": "; ".join(f"t={t}: {_ci_text(v)}" for t, v in auc.items()),
        })
    comp = (mv.get("comparison") or {}).get("primary_minus_all_features") or {}
    diag_rows = []
    dg = read_json(stats_dir / "diagnostic.json")
    if isinstance(dg, dict):
        def drow(label: str, r: dict[str, Any], n: Any) -> dict[str, Any]:
            def ci(k: str) -> str:
                return _ci_text({"estimate": r.get(k), "ci_low": r.get(f"{k}_ci_low"),
                                 "ci_high": r.get(f"{k}_ci_high")})
            return {"model": label, "features": n, "AUROC (95% CI)": ci("auroc"),
                    "AUPRC (95% CI)": ci("auprc"), "Brier": r.get("brier")}

        d_head = dg.get("headline", "all_features")
        if dg.get("primary"):
            diag_rows.append(drow("logistic, pre-specified (primary family)"
                                  + (" — headline" if d_head == "primary" else ""),
                                  dg["primary"], dg["primary"].get("n_features")))
        for r in dg.get("models") or []:
            diag_rows.append(drow(f"{r.get('model')}, all features"
                                  + (" (exploratory)" if dg.get("primary") else ""), r, n_all))
    return {
        "survival": _table(pd.DataFrame(rows)),
        "diagnostic": _table(pd.DataFrame(diag_rows)) if diag_rows else None,
        "has_primary": bool(prim),
        "comparison": _ci_text(comp.get("harrell_c"), signed=True) if comp else None,
        "primary_note": mv.get("primary_note"),
    }


def _stat_figures(stats_dir: Path) -> list[dict[str, Any]]:
    """Statistics PNGs grouped into report sections by their file names."""
    pngs = sorted(stats_dir.rglob("*.png")) if stats_dir.is_dir() else []
    groups: dict[str, dict[str, Any]] = {
        sid: {"id": sid, "title": title, "figures": []} for sid, title, _ in STAT_FIGURE_SECTIONS
    }
    other = {"id": "other-stats", "title": "Other statistical figures", "figures": []}
    for p in pngs:
        name = p.stem.lower()
        target = other
        for sid, _, words in STAT_FIGURE_SECTIONS:
            if any(w in name for w in words):
                target = groups[sid]
                break
        target["figures"].append(
            {"name": p.stem.replace("_", " "), "src": _data_uri(p.read_bytes())}
        )
    return [*groups.values(), other]


def _qc_gallery(run_dir: Path, qc: pd.DataFrame | None, prompts: list[str]) -> list[dict[str, Any]]:
    """Per slide: thumbnail + one overlay per prompt (flagged slides first)."""
    slides_root = run_dir / "slides"
    if qc is None or qc.empty or not slides_root.is_dir():
        return []
    order = qc.sort_values(["flagged", "slide_id"], ascending=[False, True]) if "flagged" in qc else qc
    gallery = []
    for _, row in order.head(_MAX_QC_SLIDES).iterrows():
        sdir = slides_root / str(row["slide_id"])
        rec = read_json(sdir / "areas.json", {}) or {}
        thumbs = [p for p in (sdir / "qc" / "thumbnail.jpg", sdir / "qc" / "thumbnail.png") if p.is_file()]
        if not thumbs:
            continue
        panels = [{"label": "H&E thumbnail", "src": _file_uri(thumbs[0])}]
        for o in rec.get("overlays", []):
            f = sdir / o["file"]
            if f.is_file():
                area = rec.get("area_mm2", {}).get(o["slug"])
                label = o["prompt"] + (f" — {area:.3g} mm²" if area is not None else "")
                panels.append({"label": label, "src": _file_uri(f)})
        gallery.append(
            {
                "slide_id": str(row["slide_id"]),
                "flagged": bool(row.get("flagged", False)),
                "reason": "" if pd.isna(row.get("flag_reason")) else str(row.get("flag_reason")),
                "panels": panels,
            }
        )
    return gallery


def _top_features(biomarkers: pd.DataFrame | None, patient_features: pd.DataFrame | None, n: int = 9) -> list[str]:
    if biomarkers is not None and "feature" in biomarkers.columns:
        return [str(f) for f in biomarkers["feature"].head(n)]
    if patient_features is None:
        return []
    num = patient_features.select_dtypes("number")
    return list(num.var().sort_values(ascending=False).index[:n])


def build_context(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything the template shows, read from the run folder.

    Parameters
    ----------
    run_dir : path-like
        A folder written by :func:`pathxai.pipeline.run`.

    Returns
    -------
    dict
        Plain values (strings, numbers, small lists/dicts) and data URIs.

    Raises
    ------
    PipelineError
        If ``run_dir`` has no ``run.json`` (not a run folder).
    """
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    if not isinstance(info, dict):
        raise PipelineError(f"{str(run_dir)!r} has no readable run.json; is it a `pathxai run` output folder?")
    params = info.get("parameters", {})
    prompts = [str(p) for p in params.get("prompts", [])]
    flow = read_json(run_dir / "cohort_flow.json", {}) or {}
    qc = _read_csv(run_dir / "qc_areas.csv", dtype={"slide_id": str})
    pcol = flow.get("patient_col", "patient_id")
    patients = _read_csv(run_dir / "patient_features.csv", dtype={pcol: str})
    outcomes = _read_csv(run_dir / "patients" / "outcomes.csv", dtype={pcol: str})
    failures = _read_csv(run_dir / "failures.csv", dtype=str)
    stats_dir = run_dir / "stats"
    biomarkers = _find_biomarkers(stats_dir)

    figures: dict[str, str] = {}
    if flow:
        figures["flow"] = _data_uri(figure_to_png(flow_diagram(flow)))
    if qc is not None:
        fig = area_qc_plot(qc)
        if fig is not None:
            figures["areas"] = _data_uri(figure_to_png(fig))
    if patients is not None:
        groups, gname = None, ""
        if outcomes is not None and pcol in outcomes:
            merged = patients[[pcol]].merge(outcomes, on=pcol, how="left")
            for col in (flow.get("label_col"), info.get("parameters", {}).get("event_col")):
                if col and col in merged and merged[col].notna().all():
                    groups, gname = merged[col].to_numpy(), str(col)
                    break
        fig = feature_distributions(patients, _top_features(biomarkers, patients), groups=groups, group_name=gname)
        if fig is not None:
            figures["distributions"] = _data_uri(figure_to_png(fig))

    qc_cols = ["slide_id", *[c for c in (qc.columns if qc is not None else []) if c.startswith("area_mm2__")],
               "n_tiles", "max_abs_z", "flagged", "flag_reason"]
    qc_view = None
    if qc is not None:
        qc_view = qc[[c for c in qc_cols if c in qc.columns]].rename(
            columns=lambda c: c.replace("area_mm2__", "area (mm²): ").replace("max_abs_z", "max |robust z|")
            .replace("n_tiles", "tiles segmented")
        )
    counts = info.get("counts", {})
    methods = {
        "Prompts": ", ".join(prompts),
        "Prompts skipped": (
            ", ".join(params.get("prompts_skipped") or [])
            + f" (the {params.get('model')!s} model cannot segment them)"
            if params.get("prompts_skipped") else "none"
        ),
        "Segmentation model": f"{params.get('model')} ({info.get('model', {}).get('class', '')}), "
                              f"checkpoint SHA-256 {info.get('model', {}).get('sha256', '')}",
        "Segmentation options": str(params.get("segment_options") or "defaults"),
        "Statistics parameters": ", ".join(f"{k}={v}" for k, v in sorted((params.get("stats") or {}).items())),
        "Seeds": ", ".join(f"{k}={v}" for k, v in sorted((info.get("seeds") or {}).items())),
        "Outcome columns": f"time {params.get('time_col')} ({params.get('time_unit')}), event "
                           f"{params.get('event_col')}, label {params.get('label_col')}",
        "Covariates": ", ".join(params.get("covariates") or []) or "none",
        "Executor": f"{params.get('executor')} ({params.get('n_workers')} worker(s)), "
                    f"max failures {params.get('max_failures')}",
        "Manifest": str(info.get("manifest")),
        "Run": f"started {info.get('started')}, finished {info.get('finished')}, status {info.get('status')}",
    }
    stats_record = read_json(stats_dir / "DONE.json", {}) or {}
    stats_error = stats_record.get("error") if isinstance(stats_record, dict) else None
    stats_params_file = read_json(stats_dir / "analysis.json") or read_json(stats_dir / "params.json")
    return {
        "title": f"pathxai biomarker report — {Path(str(info.get('manifest', run_dir))).parent.name or run_dir.name}",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "info": info,
        "flow": flow,
        "figures": figures,
        "failures": _table(failures),
        "stats_exclusions": flow.get("patients_excluded_stats", []),
        "no_slide_patients": flow.get("patients_no_slides", []),
        "qc_table": _table(qc_view),
        "n_flagged": int(qc["flagged"].sum()) if qc is not None and "flagged" in qc else 0,
        "gallery": _qc_gallery(run_dir, qc, prompts),
        "max_qc": _MAX_QC_SLIDES,
        "stat_sections": _stat_figures(stats_dir),
        "performance": _model_performance(stats_dir),
        "biomarkers": _table(biomarkers, max_rows=_MAX_BIOMARKER_ROWS),
        "methods": methods,
        "stats_error": stats_error,
        "stats_params": stats_params_file if isinstance(stats_params_file, dict) else None,
        "versions": info.get("versions", {}),
        "timings": info.get("timings_s", {}),
        "counts": counts,
        "prompts": prompts,
    }


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("pathxai.report", "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped: user text cannot inject markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(run: Any, out_path: str | os.PathLike | None = None) -> Path:
    """Render ``report.html`` for a run.

    Parameters
    ----------
    run : path-like or RunResult
        The run folder, or the :class:`~pathxai.pipeline.run.RunResult` of :func:`pathxai.run`.
    out_path : path-like, optional
        Where to write; default ``<run folder>/report.html``.

    Returns
    -------
    Path
        The written HTML file (one self-contained file).
    """
    run_dir = Path(getattr(run, "out_dir", run))
    context = build_context(run_dir)
    html = _environment().get_template("report.html.j2").render(**context)
    target = Path(out_path) if out_path is not None else run_dir / "report.html"
    atomic_write_text(target, html)
    return target
