"""One call from a patient-level feature table and a clinical table to ranked biomarkers.

:func:`analyze` validates and joins the tables (every excluded patient or feature is
recorded with its reason in ``.exclusions``; nothing is dropped silently), then runs

1. the univariable Cox screen (descriptive, all patients; BH q within the primary and
   the exploratory family when ``primary_features`` names pre-specified hypotheses,
   across all features otherwise; see :mod:`pathxai.stats.families`);
2. the multivariable elastic-net Cox model with nested patient-grouped CV (honest
   C-indices with CIs, optimism bootstrap, AUC(t), calibration, KM of risk groups) and
   held-out SHAP stability, on all features (data-driven selection, exploratory) and,
   when ``primary_features`` is given, the same model restricted to the primary family
   (the *pre-specified* model; see "Headline model" below);
3. with ``label_col``: univariable logistic screen and the diagnostic models (plus the
   pre-specified logistic model on the primary family);
4. the ranked candidate-biomarker table (cluster leads first, see
   :mod:`pathxai.stats.biomarkers`), the per-cluster table and the figures.

:meth:`BiomarkerAnalysis.save` writes ``biomarkers.csv``, ``biomarker_clusters.csv``,
``univariable_cox.csv``, ``multivariable.json``, ``diagnostic.json`` (with a label),
``exclusions.csv``, ``analysis.json`` (parameters, seeds, versions, timings; also as
``params.json``) and ``figures/<name>.png`` per figure, each atomically (temporary name +
``os.replace``).

Headline model
--------------
REMARK (McShane 2005) and TRIPOD (Collins 2015): a model fixed before the outcomes were
seen is the primary analysis; selection among hundreds of candidate features is
exploratory. So when ``primary_features`` resolves to at least one analysed feature, the
**pre-specified model** (identical nested-CV elastic-net Cox, same folds, seeds, in-fold
preprocessing and unpenalised covariates, candidate features = the primary family only)
is the *headline*: the top-level metrics of ``multivariable.json`` (``harrell_c``,
``uno_c``, ``*_optimism_corrected``, ``time_dependent_auc``, ``calibration``,
``logrank_risk_groups``, ``km``, ``coefficients``, ``info``, ...) and the KM and
calibration figures describe it. Otherwise (``primary_features=None``, or no primary
feature among the analysed columns) the headline is the all-feature model and the top
level is exactly as before. In every case ``multivariable.json`` also has

* ``headline``: ``"primary"`` or ``"all_features"``; ``headline_rule``: the rule above;
* ``all_features``: the all-feature model (its metrics, ``info``, ``coefficients``);
* ``primary``: the pre-specified model (metrics, ``features``, ``coefficients``, its own
  held-out ``shap``) or ``None``; ``primary_note`` says why it is ``None`` when a family was
  requested;
* ``comparison``: paired bootstrap difference of Harrell's/Uno's C, pre-specified minus
  all-feature (same patient resamples), or ``None``.

``shap``, ``shap_clusters`` and ``covariate_shap`` at the top level always describe the
all-feature model (``shap_model``), because they rank every candidate in
``biomarkers.csv``. ``diagnostic.json`` gains ``primary`` (the pre-specified logistic model:
AUROC/AUPRC with CIs, calibration, ROC curve, SHAP; or ``None``) and ``headline``; its
``models`` table stays the all-feature models.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import InsufficientDataError, StatsInputError
from pathxai.stats.biomarkers import build_biomarker_table, cluster_table
from pathxai.stats.diagnostic import fit_diagnostic_models, univariable_logistic
from pathxai.stats.families import (
    MULTIPLICITY_RULE,
    NO_PRIMARY_RULE,
    family_qvalues,
    resolve_primary,
)
from pathxai.stats.preprocess import FeaturePreprocessor
from pathxai.stats.results import DiagnosticResult, SurvivalModelResult, UnivariableCoxResult
from pathxai.stats.survival import compare_c_indices, fit_survival_model
from pathxai.stats.univariable import univariable_cox

__all__ = ["analyze", "BiomarkerAnalysis", "load_table", "HEADLINE_RULE"]

#: Which multivariable model is the headline (top level of ``multivariable.json``).
HEADLINE_RULE = (
    "headline = the pre-specified model (elastic-net Cox on the primary family only) when "
    "primary features are given, else the all-feature model; the all-feature model "
    "(data-driven selection among all candidates) is exploratory (REMARK/TRIPOD)")

#: ``role`` of the two multivariable models.
ROLE_PRIMARY = "pre-specified (primary family only; primary analysis)"
ROLE_ALL = "all features (data-driven selection; exploratory)"


def load_table(obj) -> pd.DataFrame:
    """A DataFrame from a DataFrame, or a .csv / .tsv / .parquet path."""
    if isinstance(obj, pd.DataFrame):
        return obj.copy()
    path = Path(obj)
    if not path.is_file():
        raise StatsInputError(f"table {str(path)!r} not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".tsv", ".txt"):
        return pd.read_csv(path, sep="\t")
    return pd.read_csv(path)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="records"))
    return obj


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class BiomarkerAnalysis:
    """Everything :func:`analyze` found. Display in Jupyter shows the top of the table.

    Attributes
    ----------
    biomarkers : DataFrame, the ranked candidate-biomarker table (read this first).
    clusters : DataFrame, one row per correlation cluster in ranking order (lead feature,
        members, family and tier of the lead, survival SHAP importance).
    univariable : UnivariableCoxResult
    survival : SurvivalModelResult of the all-feature model (its SHAP ranks the table).
    multivariable : dict (JSON-able): the headline model's C-indices with CIs, AUC(t),
        calibration, KM, coefficients, plus ``headline``, ``primary``, ``all_features`` and
        ``comparison`` (see the module docstring).
    diagnostic : dict or None (JSON-able); ``diagnostic_result`` holds the result object.
    figures : dict name -> matplotlib Figure
    exclusions : DataFrame (kind, id, reason) of patients/features left out and why
    params : dict of parameters, seeds and package versions
    survival_primary : SurvivalModelResult or None, the pre-specified model.
    diagnostic_primary_result : DiagnosticResult or None, the pre-specified logistic model.
    """

    biomarkers: pd.DataFrame
    clusters: pd.DataFrame
    univariable: UnivariableCoxResult
    survival: SurvivalModelResult
    multivariable: dict[str, Any]
    diagnostic: dict[str, Any] | None
    diagnostic_result: DiagnosticResult | None
    figures: dict[str, Any]
    exclusions: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    survival_primary: SurvivalModelResult | None = None
    diagnostic_primary_result: DiagnosticResult | None = None

    def __repr__(self) -> str:
        def c_text(block: dict[str, Any] | None) -> str:
            m = (block or {}).get("harrell_c", {})
            return (f"{m.get('estimate', float('nan')):.3f} "
                    f"({m.get('ci_low', float('nan')):.3f}-{m.get('ci_high', float('nan')):.3f})")

        top = ", ".join(self.biomarkers["feature"].head(3))
        if self.multivariable.get("primary") is not None:
            c = (f"C-index pre-specified {c_text(self.multivariable['primary'])}, "
                 f"all features {c_text(self.multivariable.get('all_features'))}")
        else:
            c = f"C-index {c_text(self.multivariable)}"
        return (f"<BiomarkerAnalysis: {self.params.get('n_patients')} patients, "
                f"{len(self.biomarkers)} features; {c}; top: {top}>")

    def _repr_html_(self) -> str:
        cols = [c for c in ("rank", "feature", "family", "cluster", "redundant_with", "hr",
                            "hr_ci_low", "hr_ci_high", "q",
                            "or", "q_label", "shap_top_k_frequency", "tier", "evidence")
                if c in self.biomarkers]
        return (f"<p>{self!r}</p>" + self.biomarkers[cols].head(15).to_html(
            index=False, float_format=lambda x: f"{x:.3g}"))

    def save(self, out_dir) -> Path:
        """Write the tables, JSON files and PNG figures into ``out_dir`` (created)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / "biomarkers.csv", lambda p: self.biomarkers.to_csv(p, index=False))
        _atomic_write(out / "biomarker_clusters.csv",
                      lambda p: self.clusters.to_csv(p, index=False))
        _atomic_write(out / "univariable_cox.csv",
                      lambda p: self.univariable.summary.to_csv(p, index=False))
        _atomic_write(out / "exclusions.csv", lambda p: self.exclusions.to_csv(p, index=False))

        def dump(obj):
            return lambda p: Path(p).write_text(json.dumps(_jsonable(obj), indent=2))

        _atomic_write(out / "multivariable.json", dump(self.multivariable))
        if self.diagnostic is not None:
            _atomic_write(out / "diagnostic.json", dump(self.diagnostic))
        _atomic_write(out / "analysis.json", dump(self.params))
        _atomic_write(out / "params.json", dump(self.params))
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for name, fig in self.figures.items():
            _atomic_write(fig_dir / f"{name}.png",
                          lambda p, fig=fig: fig.savefig(p, dpi=110, format="png"))
        return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("pathxai", "numpy", "scipy", "pandas", "scikit-learn", "lifelines", "shap",
                "statsmodels", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _examples(values, k: int = 5) -> str:
    vals = list(values)
    more = f" (+{len(vals) - k} more)" if len(vals) > k else ""
    return ", ".join(repr(v) for v in vals[:k]) + more


def _prepare(features, clinical, id_col, time_col, event_col, label_col, covariates,
             on_unmatched, ignore_columns=()):
    feats = load_table(features)
    clin = load_table(clinical)
    excl: list[dict[str, str]] = []
    for name, df in (("features", feats), ("clinical", clin)):
        if id_col not in df.columns:
            if df.index.name == id_col:
                df.reset_index(inplace=True)
            else:
                raise StatsInputError(
                    f"id column {id_col!r} not in the {name} table; its columns are "
                    f"{_examples(df.columns)}")
    for col in [time_col, event_col] + ([label_col] if label_col else []) + list(covariates):
        if col not in clin.columns:
            raise StatsInputError(f"column {col!r} not in the clinical table; columns are "
                                  f"{_examples(clin.columns)}")
    feats[id_col] = feats[id_col].astype(str)
    clin[id_col] = clin[id_col].astype(str)
    for name, df in (("features", feats), ("clinical", clin)):
        dup = df[id_col][df[id_col].duplicated()].unique()
        if dup.size:
            hint = (" Aggregate slides to patients first (pathxai.features.aggregate_patients)."
                    if name == "features" else "")
            raise StatsInputError(
                f"{dup.size} id(s) occur more than once in the {name} table "
                f"(e.g. {_examples(dup)}); analysis needs one row per patient.{hint}")
    only_f = sorted(set(feats[id_col]) - set(clin[id_col]))
    only_c = sorted(set(clin[id_col]) - set(feats[id_col]))
    common = set(feats[id_col]) & set(clin[id_col])
    if not common:
        raise StatsInputError(
            f"no id matches between the feature table ({len(feats)} rows, e.g. "
            f"{_examples(feats[id_col][:3])}) and the clinical table ({len(clin)} rows, e.g. "
            f"{_examples(clin[id_col][:3])}); check id_col={id_col!r} and id formatting")
    if (only_f or only_c) and on_unmatched == "error":
        raise StatsInputError(
            f"{len(only_f)} feature-table id(s) not in the clinical table (e.g. "
            f"{_examples(only_f)}) and {len(only_c)} clinical id(s) without features (e.g. "
            f"{_examples(only_c)}); pass on_unmatched='exclude' to analyse the "
            f"{len(common)} matching patients")
    for i in only_f:
        excl.append({"kind": "patient", "id": i, "reason": "in feature table, not in clinical table"})
    for i in only_c:
        excl.append({"kind": "patient", "id": i, "reason": "in clinical table, no features"})
    df = clin.merge(feats, on=id_col, how="inner", suffixes=("", "__feature"))
    # outcome checks
    t = pd.to_numeric(df[time_col], errors="coerce")
    bad_t = t.isna() | ~np.isfinite(t) | (t < 0)
    for i, raw in zip(df.loc[bad_t, id_col], df.loc[bad_t, time_col]):
        excl.append({"kind": "patient", "id": i, "reason": f"time {raw!r} missing or invalid"})
    ev_raw = df[event_col]
    ev = ev_raw.map(lambda v: {True: 1, False: 0}.get(v, v) if isinstance(v, bool) else v)
    ev = pd.to_numeric(ev, errors="coerce")
    odd = ev.notna() & ~ev.isin([0, 1])
    if odd.any():
        raise StatsInputError(
            f"event column {event_col!r} must be 0/1 (or True/False); found values "
            f"{_examples(pd.unique(ev_raw[odd]))}")
    bad_e = ev.isna()
    for i in df.loc[bad_e & ~bad_t, id_col]:
        excl.append({"kind": "patient", "id": i, "reason": "event indicator missing"})
    keep = ~(bad_t | bad_e)
    df = df[keep].reset_index(drop=True)
    time_arr = t[keep].to_numpy(float)
    event_arr = ev[keep].to_numpy(int)
    # feature columns
    fcols = [c for c in feats.columns if c != id_col]
    for c in [c for c in fcols if c in set(ignore_columns)]:
        excl.append({"kind": "feature", "id": c, "reason": "bookkeeping column (ignore_columns)"})
    fcols = [c for c in fcols if c not in set(ignore_columns)]
    fcols = [c + "__feature" if c in clin.columns else c for c in fcols]
    numeric = []
    for c in fcols:
        col = df[c]
        if pd.api.types.is_bool_dtype(col):
            df[c] = col.astype(float)
            numeric.append(c)
        elif pd.api.types.is_numeric_dtype(col):
            numeric.append(c)
        else:
            excl.append({"kind": "feature", "id": c, "reason": (
                f"non-numeric column (dtype {col.dtype}, e.g. {_examples(col.dropna().unique(), 3)})")})
    if not numeric:
        raise StatsInputError("no numeric feature columns left; check the feature table")
    F = df[numeric].astype(float)
    inf = np.isinf(F.to_numpy())
    if inf.any():
        for j in np.flatnonzero(inf.any(0)):
            excl.append({"kind": "value", "id": numeric[j],
                         "reason": f"{int(inf[:, j].sum())} infinite value(s) treated as missing"})
        F = F.replace([np.inf, -np.inf], np.nan)
    allnan = F.columns[F.isna().all()]
    for c in allnan:
        excl.append({"kind": "feature", "id": c, "reason": "no values at all"})
    F = F.drop(columns=list(allnan))
    return df, F, time_arr, event_arr, excl, len(feats), len(clin)


def _model_block(surv: SurvivalModelResult) -> dict[str, Any]:
    """The JSON-able performance block of one multivariable Cox model.

    The keys the top level of ``multivariable.json`` has always had (metrics, ``info``,
    ``coefficients``, ``km`` without the curves, ``dropped_features_all_patients``) plus
    ``n_features`` and ``n_features_after_preprocessing``.
    """
    return {
        **surv.metrics,
        "info": surv.info,
        "coefficients": surv.summary,
        "km": {k: {kk: vv for kk, vv in v.items() if kk not in ("timeline", "survival")}
               for k, v in surv.km["curves"].items()},
        "dropped_features_all_patients": surv.dropped_features,
        "n_features": surv.info["n_features"],
        "n_features_after_preprocessing": surv.info["n_features_after_preprocessing"],
    }


def analyze(
    features,
    clinical,
    *,
    id_col: str,
    time_col: str,
    event_col: str,
    label_col: str | None = None,
    covariates: list[str] | None = None,
    seed: int = 0,
    n_bootstrap: int = 200,
    horizons=None,
    out_dir=None,
    outer_folds: int = 5,
    inner_folds: int = 5,
    l1_ratio: float = 0.5,
    top_k: int | None = None,
    cluster_threshold: float = 0.9,
    skew_transform: str = "auto_log",
    on_unmatched: str = "exclude",
    time_unit: str = "",
    n_threads: int = 1,
    figures: bool = True,
    ignore_columns: tuple[str, ...] = ("n_slides", "slide_id"),
    primary_features: str | list[str] | tuple[str, ...] | None = None,
) -> BiomarkerAnalysis:
    """Run the whole statistics stage; see the module docstring.

    Parameters
    ----------
    features : DataFrame or path (.csv/.tsv/.parquet)
        One row per patient, ``id_col`` plus numeric feature columns. Several rows per id
        is an error (aggregate slides to patients first).
    clinical : DataFrame or path
        One row per patient with ``id_col``, ``time_col``, ``event_col`` (0/1), optional
        ``label_col`` (binary 0/1) and covariates.
    id_col, time_col, event_col, label_col : column names.
    covariates : clinical columns to adjust for: in every univariable Cox model and,
        unpenalised, in the multivariable elastic-net Cox model (not in the diagnostic models).
    seed : seeds folds, bootstraps and tree models.
    n_bootstrap : replicates for CIs, optimism correction and SHAP stability.
    horizons : times for AUC(t) (default 25/50/75 % event-time quantiles).
    out_dir : if given, :meth:`BiomarkerAnalysis.save` is called there.
    outer_folds, inner_folds, l1_ratio, cluster_threshold, skew_transform : model settings.
    top_k : k of the SHAP top-k stability (default ``min(10, max(3, round(p / 10)))`` for
        p features, so that 'top k' stays selective on small panels).
    on_unmatched : 'exclude' (record) or 'error' for ids present in only one table.
    time_unit : shown on figures (e.g. 'months').
    n_threads : BLAS/OpenMP threads (1 avoids oversubscription on shared machines).
    figures : build the matplotlib figures.
    ignore_columns : feature-table columns that are not candidate features (e.g. the
        ``n_slides`` written by ``aggregate_patients``); recorded in ``exclusions``.
    primary_features : pre-specified primary hypotheses: feature names and/or
        :func:`fnmatch.fnmatchcase` patterns (``'density_per_mm2__lymphocyte__in__*'``),
        or ``'established'`` (may also be one item of the list) for
        :data:`pathxai.features.registry.ESTABLISHED_PANEL`. The matched features form the
        primary family and BH is applied within it and, separately, within the
        exploratory rest (per endpoint); every table gets a ``family`` column. A given
        name/pattern matching no column raises :class:`StatsInputError` (listing all of
        them); a panel pattern matching nothing is only recorded in
        ``params['primary_notes']``. None (default): one exploratory family, BH across all.
        With at least one primary feature the pre-specified multivariable Cox model (and,
        with ``label_col``, the pre-specified logistic model) is fitted on the primary
        family only and becomes the headline model (module docstring, "Headline model").

    Returns
    -------
    BiomarkerAnalysis
    """
    from threadpoolctl import threadpool_limits

    if on_unmatched not in ("exclude", "error"):
        raise StatsInputError(f"on_unmatched={on_unmatched!r}; use 'exclude' or 'error'")
    covariates = list(covariates or [])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    df, F, time_arr, event_arr, excl, n_feat_rows, n_clin_rows = _prepare(
        features, clinical, id_col, time_col, event_col, label_col, covariates, on_unmatched,
        ignore_columns)
    n_ev = int(event_arr.sum())
    if n_ev == 0:
        raise InsufficientDataError(
            f"all {len(event_arr)} patients are censored (no events in {event_col!r}); "
            "survival analysis is impossible")
    ids = df[id_col].to_numpy()
    table_cols = list(F.columns) + [e["id"] for e in excl if e["kind"] == "feature"]
    primary = resolve_primary(primary_features, list(F.columns), table_cols)
    fam_of = dict(zip(F.columns, primary.family_of(F.columns)))
    if top_k is None:
        top_k = int(min(10, max(3, round(F.shape[1] / 10))))
    pp = {"cluster_threshold": cluster_threshold, "skew_transform": skew_transform}
    with threadpool_limits(limits=n_threads):
        timings["prepare_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        cov = df[covariates] if covariates else None
        uni = univariable_cox(F, time_arr, event_arr, covariates=cov,
                             skew_transform="auto_log" if skew_transform == "auto_log" else "none")
        uni.summary.insert(1, "family", uni.summary["feature"].map(fam_of))
        uni.summary["q"] = family_qvalues(uni.summary["p"], uni.summary["family"])
        if primary_features is not None:
            uni.info["multiple_testing"] = ("Benjamini-Hochberg within each family "
                                            "(primary / exploratory)")
        for _, r in uni.summary[~uni.summary["converged"]].iterrows():
            excl.append({"kind": "feature (univariable)", "id": r["feature"],
                         "reason": r["message"]})
        timings["univariable_s"] = time.perf_counter() - t1
        pre_all = FeaturePreprocessor(**pp).fit(F, np.c_[time_arr, event_arr])
        label_of = {}
        for c, lab in pre_all.clusters_.items():
            label_of[c] = f"c{lab:03d}"
        reps = {f"c{pre_all.clusters_[r]:03d}": r for r in pre_all.representatives_}
        for c, why in pre_all.dropped_.items():
            if not why.startswith("correlated"):
                excl.append({"kind": "feature (multivariable, all-patient fit)", "id": c,
                             "reason": why})
        t1 = time.perf_counter()
        surv = fit_survival_model(F, time_arr, event_arr, groups=ids, covariates=cov,
                                  l1_ratio=l1_ratio,
                                  outer_folds=outer_folds, inner_folds=inner_folds,
                                  n_bootstrap=n_bootstrap, horizons=horizons, top_k=top_k,
                                  clusters=label_of, preprocess_params=pp, seed=seed)
        timings["survival_s"] = time.perf_counter() - t1
        surv_prim, primary_note = None, None
        if primary.features:
            t1 = time.perf_counter()
            try:
                surv_prim = fit_survival_model(
                    F[primary.features], time_arr, event_arr, groups=ids, covariates=cov,
                    l1_ratio=l1_ratio, outer_folds=outer_folds, inner_folds=inner_folds,
                    n_bootstrap=n_bootstrap, horizons=surv.metrics["horizons"],
                    top_k=min(top_k, len(primary.features)), clusters=label_of,
                    preprocess_params=pp, seed=seed)
            except StatsInputError as exc:
                primary_note = f"pre-specified model not fitted: {type(exc).__name__}: {exc}"
                excl.append({"kind": "model (multivariable, pre-specified)", "id": "cox",
                             "reason": f"{type(exc).__name__}: {exc}"})
            timings["survival_primary_s"] = time.perf_counter() - t1
        elif primary_features is not None:
            primary_note = ("no primary feature among the analysed columns (see primary_notes); "
                            "no pre-specified model, the all-feature model is the headline")
        diag_res = None
        diag_prim = None
        uni_lab = None
        if label_col:
            t1 = time.perf_counter()
            lab = pd.to_numeric(df[label_col].map(
                lambda v: {True: 1, False: 0}.get(v, v) if isinstance(v, bool) else v),
                errors="coerce")
            has = lab.notna().to_numpy()
            for i in ids[~has]:
                excl.append({"kind": "patient (diagnostic)", "id": i,
                             "reason": f"label {label_col!r} missing"})
            odd = lab[has][~lab[has].isin([0, 1])]
            if len(odd):
                raise StatsInputError(f"label column {label_col!r} must be 0/1; found "
                                      f"{_examples(pd.unique(odd))}")
            y = lab[has].to_numpy(int)
            Fl = F[has].reset_index(drop=True)
            uni_lab = univariable_logistic(Fl, y)
            uni_lab.insert(1, "family", uni_lab["feature"].map(fam_of))
            uni_lab["q_label"] = family_qvalues(uni_lab["p_label"], uni_lab["family"])
            diag_res = fit_diagnostic_models(Fl, y, groups=ids[has], outer_folds=outer_folds,
                                             n_bootstrap=n_bootstrap, top_k=top_k,
                                             clusters=label_of, preprocess_params=pp, seed=seed)
            timings["diagnostic_s"] = time.perf_counter() - t1
            if surv_prim is not None:
                t1 = time.perf_counter()
                try:
                    diag_prim = fit_diagnostic_models(
                        Fl[primary.features], y, groups=ids[has], outer_folds=outer_folds,
                        n_bootstrap=n_bootstrap, top_k=min(top_k, len(primary.features)),
                        clusters=label_of, preprocess_params=pp, models=("logistic",),
                        seed=seed)
                except StatsInputError as exc:
                    excl.append({"kind": "model (diagnostic, pre-specified)", "id": "logistic",
                                 "reason": f"{type(exc).__name__}: {exc}"})
                timings["diagnostic_primary_s"] = time.perf_counter() - t1
    table = build_biomarker_table(
        uni.summary, surv.shap_summary, clusters=label_of, representatives=reps,
        shap_clusters=surv.shap_clusters, univariable_label=uni_lab,
        shap_label=None if diag_res is None else diag_res.shap_summary["logistic"],
        shap_label_clusters=None if diag_res is None else diag_res.shap_clusters["logistic"],
        top_k=top_k, families=fam_of, cluster_threshold=cluster_threshold)
    clusters_df = cluster_table(table, surv.shap_clusters, reps)
    n_prim = len(primary.features)
    n_tested = int(uni.summary["p"].notna().sum())
    n_prim_tested = int(uni.summary.loc[uni.summary["family"] == "primary", "p"].notna().sum())
    rule = (MULTIPLICITY_RULE.format(n_primary=n_prim_tested,
                                     n_exploratory=n_tested - n_prim_tested, alpha=0.05)
            if primary_features is not None else NO_PRIMARY_RULE.format(n_exploratory=n_tested))
    headline = "primary" if surv_prim is not None else "all_features"
    head = surv_prim if surv_prim is not None else surv
    multivariable = {
        **_model_block(head),
        "shap": surv.shap_summary,
        "shap_clusters": surv.shap_clusters,
        "covariate_shap": surv.covariate_shap,
        "shap_model": "all_features",
        "headline": headline,
        "headline_rule": HEADLINE_RULE,
        "primary": (None if surv_prim is None else
                    {"role": ROLE_PRIMARY, "features": list(primary.features),
                     **_model_block(surv_prim), "shap": surv_prim.shap_summary}),
        "all_features": {"role": ROLE_ALL, **_model_block(surv)},
        "comparison": None if surv_prim is None else {
            "primary_minus_all_features": compare_c_indices(
                time_arr, event_arr, surv_prim.oof["risk_score"].to_numpy(),
                surv.oof["risk_score"].to_numpy(), n_bootstrap=n_bootstrap, seed=seed),
            "note": "paired percentile bootstrap over the same patient resamples as the "
                    "per-model intervals"},
    }
    if primary_note is not None:
        multivariable["primary_note"] = primary_note
    diagnostic = None
    if diag_res is not None:
        diagnostic = {"models": diag_res.summary, "info": diag_res.info,
                      "curves": diag_res.curves,
                      "univariable_logistic": uni_lab,
                      "shap": {k: v for k, v in diag_res.shap_summary.items()},
                      "headline": "primary" if diag_prim is not None else "all_features",
                      "primary": None if diag_prim is None else {
                          "role": ROLE_PRIMARY, "features": list(primary.features),
                          "n_features": len(primary.features),
                          **diag_prim.summary.iloc[0].to_dict(), "info": diag_prim.info,
                          "curve": diag_prim.curves["logistic"],
                          "shap": diag_prim.shap_summary["logistic"]}}
    figs: dict[str, Any] = {}
    if figures:
        from pathxai.stats import plots

        t1 = time.perf_counter()
        figs["volcano"] = plots.volcano_figure(uni)
        figs["forest"] = plots.forest_figure(uni)
        head_label = "pre-specified model" if surv_prim is not None else ""
        figs["km_risk_groups"] = plots.km_figure(head.km, head.metrics["logrank_risk_groups"],
                                                 time_unit, model=head_label)
        figs["shap_beeswarm"] = plots.shap_beeswarm_figure(
            surv.shap_oof, surv.x_oof, surv.feature_names,
            title="SHAP of the Cox log partial hazard on held-out patients"
                  + (" (all-feature model)" if surv_prim is not None else ""))
        figs["shap_stability"] = plots.shap_stability_figure(surv.shap_summary)
        figs["calibration_survival"] = plots.survival_calibration_figure(
            head.metrics["calibration"], model=head_label)
        if diag_res is not None:
            figs["roc"] = plots.roc_figure(diag_res, primary=diag_prim)
            figs["calibration_diagnostic"] = plots.diagnostic_calibration_figure(diag_res)
        timings["figures_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    params = {
        "id_col": id_col, "time_col": time_col, "event_col": event_col, "label_col": label_col,
        "covariates": covariates, "seed": seed, "n_bootstrap": n_bootstrap,
        "horizons": surv.metrics["horizons"], "outer_folds": outer_folds,
        "inner_folds": inner_folds, "l1_ratio": l1_ratio, "top_k": top_k,
        "cluster_threshold": cluster_threshold, "skew_transform": skew_transform,
        "on_unmatched": on_unmatched, "n_threads": n_threads,
        "ignore_columns": list(ignore_columns),
        "n_feature_rows": n_feat_rows, "n_clinical_rows": n_clin_rows,
        "n_patients": int(len(df)), "n_events": n_ev, "n_features": int(F.shape[1]),
        "primary_features": (primary_features if primary_features is None
                             or isinstance(primary_features, str) else list(primary_features)),
        "primary_patterns": primary.requested, "primary_family": primary.features,
        "n_primary": n_prim, "primary_notes": primary.notes,
        "multiple_testing": rule,
        "multivariable_headline": headline, "headline_rule": HEADLINE_RULE,
        "tier_rules": table.attrs.get("tier_rules"),
        "ranking_rule": table.attrs.get("ranking_rule"), "versions": _versions(),
        "timings": timings,
    }
    res = BiomarkerAnalysis(table, clusters_df, uni, surv, multivariable, diagnostic, diag_res,
                            figs, pd.DataFrame(excl, columns=["kind", "id", "reason"]), params,
                            survival_primary=surv_prim, diagnostic_primary_result=diag_prim)
    if out_dir is not None:
        res.save(out_dir)
    return res
