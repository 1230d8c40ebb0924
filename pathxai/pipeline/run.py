"""One call from a cohort manifest to ``report.html``: :func:`run`.

Stages and their cache keys (see :mod:`pathxai.pipeline.cache`)::

    slide    key = f(slide file SHA-256, µm/px override, model checkpoint hash, prompts,
                     segmentation options, QC size)            -> slides/<id>/DONE.json
    aggregate key = f(keys of all finished slides, slide→patient map)
                                                                  -> patients/DONE.json
    stats    key = f(aggregate key, clinical table content, column roles, stats params, seed)
                                                                  -> stats/DONE.json
    report   key = f(stats key, cohort flow, QC table)         -> report.html + REPORT.json

A stage whose stored key equals its current key is skipped, so a second run of the
same manifest recomputes nothing and a new statistics parameter re-runs only the
statistics (and the report that shows them). Every run appends to ``run.log`` and
rewrites ``run.json`` (versions, parameters, checkpoint hash, seeds, per-stage
timings and counts of cached versus computed work).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import PipelineError, StatsInputError, TooManyFailuresError
from pathxai.pipeline.cache import FileHashCache, hash_table, stage_key
from pathxai.pipeline.completion import is_complete
from pathxai.pipeline.io import (
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    read_json,
)
from pathxai.pipeline.stages import (
    SlideJob,
    collect_slide_tables,
    model_fingerprint,
    process_slide,
    qc_area_table,
    run_statistics,
    slide_dir_for,
)

__all__ = ["run", "RunResult", "DEFAULT_PROMPTS", "package_versions", "cohort_flow"]

log = logging.getLogger("pathxai.pipeline")

#: prompts used when neither the call nor the manifest names any
DEFAULT_PROMPTS: tuple[str, ...] = (
    "tumor",
    "stroma",
    "necrosis",
    "lymphocytes",
)

#: packages whose versions go into run.json and the report's methods section
_VERSIONED_PACKAGES = (
    "pathxai", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "scikit-image",
    "lifelines", "shap", "statsmodels", "torch", "openslide-python", "openslide-bin",
    "tifffile", "imagecodecs", "pillow", "matplotlib", "jinja2", "dask", "distributed",
)

#: error types that may pass on a retry (the slide is tried again on the next run)
_TRANSIENT_ERRORS = {"WorkerCrashed", "MemoryError", "KilledWorker", "TimeoutError", "KeyboardInterrupt"}


@dataclass
class RunResult:
    """What :func:`run` produced.

    Attributes
    ----------
    out_dir : Path
        The run folder.
    report_path : Path or None
        ``out_dir/report.html`` (None if the statistics could not run).
    slide_features : DataFrame
        One row per successfully processed slide.
    patient_features : DataFrame
        One row per patient with at least one processed slide.
    failures : DataFrame
        ``failures.csv``: slide_id, stage, error_type, message, time.
    counts : dict
        Cached versus computed work per stage (also in ``run.json``).
    timings : dict
        Seconds per stage.
    analysis : BiomarkerAnalysis or None
        The statistics result when computed in this run (None when taken from the
        cache; its tables are in ``out_dir/stats``).
    info : dict
        The content of ``run.json``.
    """

    out_dir: Path
    report_path: Path | None
    slide_features: pd.DataFrame
    patient_features: pd.DataFrame
    failures: pd.DataFrame
    counts: dict[str, Any]
    timings: dict[str, float]
    analysis: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def biomarkers(self) -> pd.DataFrame | None:
        """The candidate-biomarker table (from the analysis or ``stats/biomarkers.csv``)."""
        if self.analysis is not None:
            return self.analysis.biomarkers
        path = self.out_dir / "stats" / "biomarkers.csv"
        return pd.read_csv(path) if path.is_file() else None

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display
        import html

        return (
            f"<b>pathxai run</b> {html.escape(str(self.out_dir))}: "
            f"{len(self.slide_features)} slides, {len(self.patient_features)} patients, "
            f"{len(self.failures)} failures; report: {html.escape(str(self.report_path))}"
        )


def package_versions() -> dict[str, str]:
    """Installed versions of pathxai and the packages its results depend on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# --------------------------------------------------------------------------- failures
def _failures_api() -> tuple[Any, Any, Any, Any]:
    from pathxai.pipeline import failures as f

    return f.record_failure, f.record_outcome_failure, f.read_failures, f.clear_failures


class _RunLog:
    """Attach ``out_dir/run.log`` to the ``pathxai`` logger for the duration of a run."""

    def __init__(self, path: Path):
        self.handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
        self.logger = logging.getLogger("pathxai")
        self.old_level = self.logger.level

    def __enter__(self) -> _RunLog:
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.old_level)
        self.handler.close()


def _stage_done(folder: Path, key: str) -> bool:
    rec = read_json(folder / "DONE.json")
    return isinstance(rec, dict) and rec.get("key") == key


def _mark_stage(folder: Path, key: str, **payload: Any) -> None:
    atomic_write_json(
        folder / "DONE.json", {"key": key, "finished": datetime.now(timezone.utc).isoformat(), **payload}
    )


def _resolve_prompts(prompts: Any, cohort: Any) -> list[str]:
    if prompts is None:
        prompts = list(getattr(cohort, "prompts", None) or DEFAULT_PROMPTS)
    elif isinstance(prompts, str):
        prompts = [p.strip() for p in prompts.split(",") if p.strip()]
    prompts = [str(p) for p in prompts]
    if not prompts:
        raise PipelineError("no prompts given: pass prompts=[...] or set `prompts:` in the manifest")
    from pathxai.segment import parse_prompt

    seen: dict[str, str] = {}
    for p in prompts:
        slug = parse_prompt(p).slug  # raises UnknownPromptError naming the bad prompt
        if slug in seen:
            raise PipelineError(
                f"prompts {seen[slug]!r} and {p!r} mean the same category ({slug!r}); give it once"
            )
        seen[slug] = p
    return prompts


def _supported_prompts(prompts: list[str], model: str, *, explicit: bool) -> tuple[list[str], list[str]]:
    """Prompts the model can answer, and those it cannot (dropped with a warning).

    Prompts the user passed explicitly are never dropped: the predictor's
    :class:`~pathxai.exceptions.UnsupportedPromptError` is raised before any slide is read.
    """
    from pathxai.pipeline.stages import get_predictor

    predictor = get_predictor(model)
    supports = getattr(predictor, "supports", None)
    if supports is None:
        return prompts, []
    bad = [p for p in prompts if not supports(p)]
    if bad and explicit:
        from pathxai.exceptions import UnsupportedPromptError
        from pathxai.segment import parse_prompt

        labels = getattr(predictor, "supported_labels", ())
        labels = list(labels() if callable(labels) else labels)
        raise UnsupportedPromptError(parse_prompt(bad[0]).label, getattr(predictor, "name", model), labels)
    kept = [p for p in prompts if p not in bad]
    if not kept:
        raise PipelineError(f"model {model!r} can segment none of the prompts {prompts}")
    return kept, bad


def cohort_flow(
    cohort: Any,
    failures: pd.DataFrame,
    ok_slides: list[str],
    patient_features: pd.DataFrame,
    stats_exclusions: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """REMARK-style counts: slides and patients in, excluded (with reasons), analysed.

    Median follow-up uses the reverse Kaplan–Meier method (censoring treated as the
    event), which is not biased by early deaths (Schemper & Smith 1996).

    Returns
    -------
    dict
        ``patients_in``, ``slides_in``, ``slides_failed`` (list of {slide_id, patient_id,
        reason}), ``patients_no_slides`` (list of {patient_id, reason}),
        ``patients_excluded_stats`` (list of {patient_id, reason}), ``patients_analysed``,
        ``events``, ``median_follow_up`` (in ``time_unit``), ``label_counts``.
    """
    slides = cohort.slides
    ok_slides = set(ok_slides)
    pcol, scol = cohort.patient_col, cohort.slide_col
    slide_to_patient = dict(zip(slides["slide_id"].astype(str), slides["patient_id"].astype(str)))
    failed = []
    for _, row in failures.iterrows():
        sid = str(row["slide_id"])
        if sid in ok_slides or sid not in slide_to_patient:  # recovered, or no longer in the cohort
            continue
        failed.append(
            {
                "slide_id": sid,
                "patient_id": slide_to_patient.get(sid, ""),
                "reason": f"{row.get('error_type', '')}: {row.get('message', '')}",
                "stage": str(row.get("stage", "")),
            }
        )
    clinical = cohort.clinical.copy()
    clinical[pcol] = clinical[pcol].astype(str)
    all_patients = list(clinical[pcol])
    with_features = set(patient_features[pcol].astype(str)) if pcol in patient_features else set()
    no_slides = [
        {"patient_id": p, "reason": "no slide processed (all of its slides failed)"}
        for p in all_patients
        if p not in with_features
    ]
    excluded_stats = []
    if stats_exclusions is not None and len(stats_exclusions):
        ex = stats_exclusions
        if "kind" in ex.columns:  # pathxai.stats: kind (patient | feature), id, reason
            ex = ex[ex["kind"].astype(str) == "patient"]
        idc = "id" if "id" in ex.columns else pcol
        for _, r in ex.iterrows():
            if idc in ex.columns and str(r[idc]) in with_features:
                excluded_stats.append({"patient_id": str(r[idc]), "reason": str(r.get("reason", ""))})
    excluded_ids = {d["patient_id"] for d in no_slides} | {d["patient_id"] for d in excluded_stats}
    analysed = clinical[~clinical[pcol].isin(excluded_ids)]
    tcol, ecol = cohort.time_col, cohort.event_col
    events = int(pd.to_numeric(analysed[ecol], errors="coerce").fillna(0).sum()) if ecol else None
    median_fu = None
    if tcol and ecol and len(analysed):
        from lifelines import KaplanMeierFitter

        t = pd.to_numeric(analysed[tcol], errors="coerce")
        e = pd.to_numeric(analysed[ecol], errors="coerce")
        keep = t.notna() & e.notna()
        if keep.any():
            km = KaplanMeierFitter().fit(t[keep], event_observed=1 - e[keep])
            m = float(km.median_survival_time_)
            median_fu = m if np.isfinite(m) else None
    label_counts = None
    if cohort.label_col and cohort.label_col in analysed:
        label_counts = {str(k): int(v) for k, v in analysed[cohort.label_col].value_counts().sort_index().items()}
    return {
        "patients_in": len(all_patients),
        "slides_in": int(len(slides)),
        "slides_failed": failed,
        "slides_ok": len(ok_slides),
        "patients_no_slides": no_slides,
        "patients_excluded_stats": excluded_stats,
        "patients_analysed": int(len(analysed)),
        "events": events,
        "median_follow_up": median_fu,
        "time_unit": getattr(cohort, "time_unit", None),
        "label_col": cohort.label_col,
        "label_counts": label_counts,
        "slide_col": scol,
        "patient_col": pcol,
    }


def _read_stats_exclusions(stats_dir: Path, analysis: Any) -> pd.DataFrame | None:
    ex = getattr(analysis, "exclusions", None) if analysis is not None else None
    if isinstance(ex, pd.DataFrame):
        return ex
    path = stats_dir / "exclusions.csv"
    if path.is_file():
        return pd.read_csv(path, dtype=str)
    return None


# --------------------------------------------------------------------------- main entry
def run(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    prompts: list[str] | str | None = None,
    model: str = "default",
    executor: str = "local",
    n_workers: int = 1,
    scheduler: Any = None,
    max_failures: int | None = None,
    stats_params: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    segment_options: dict[str, Any] | None = None,
    qc_size: int = 256,
) -> RunResult:
    """Run the whole pipeline on a cohort: segment → features → patients → stats → report.

    Parameters
    ----------
    manifest : path-like
        Cohort manifest (YAML), validated by :func:`pathxai.load_cohort` before any work.
    out_dir : path-like
        Output folder (created). Everything the run writes stays inside it.
    prompts : list of str or comma-separated str, optional
        What to segment; default: the manifest's ``prompts`` or :data:`DEFAULT_PROMPTS`.
    model : str
        ``"default"`` (shipped neural checkpoint), a checkpoint name/folder, or
        ``"stain"`` (classical baseline).
    executor : {"local", "processes", "dask"}
        Where slide tasks run (see :func:`pathxai.pipeline.executors.run_tasks`).
    n_workers : int
        Worker processes for ``processes``/``dask``.
    scheduler : str or distributed.Client, optional
        Address of an existing Dask scheduler.
    max_failures : int, optional
        Stop with :class:`~pathxai.exceptions.TooManyFailuresError` once more slides
        than this failed; None never stops.
    stats_params : dict, optional
        Extra keyword arguments of :func:`pathxai.stats.analyze` (e.g. ``n_bootstrap``).
        ``primary_features`` defaults to ``"established"`` (the pre-specified literature
        panel :data:`pathxai.features.registry.ESTABLISHED_PANEL` is the primary family);
        pass ``primary_features=None`` for one exploratory family.
    seed : int
        Seed of the statistics (cross-validation splits, bootstrap, SHAP background).
    progress : bool
        Show tqdm progress bars (per stage and per slide).
    segment_options : dict, optional
        Extra keyword arguments for the whole-slide segmentation (tile size, batch size).
    qc_size : int
        Longest side in pixels of the QC thumbnails.

    Returns
    -------
    RunResult

    Raises
    ------
    ManifestError
        The manifest or its tables are invalid (all problems listed).
    UnknownPromptError
        A prompt matches no category.
    CheckpointError
        The model cannot be loaded.
    TooManyFailuresError
        More than ``max_failures`` slides failed.
    """
    from tqdm.auto import tqdm

    from pathxai.cohort import load_cohort

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stats_params = dict(stats_params or {})
    stats_params.setdefault("seed", seed)
    # what analyze receives: the established panel is the primary family unless the caller
    # says otherwise (recorded as parameters.primary_features in run.json; parameters.stats stays as given)
    stats_run = {"primary_features": "established", **stats_params}
    segment_options = dict(segment_options or {})
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    counts: dict[str, Any] = {}

    with _RunLog(out / "run.log"):
        log.info("=== pathxai run: manifest %s -> %s", manifest, out)
        stage_bar = tqdm(total=5, desc="stages", unit="stage", disable=not progress, position=0)

        # ---- 1. validate -----------------------------------------------------------------
        t = time.perf_counter()
        stage_bar.set_postfix_str("validate")
        cohort = load_cohort(manifest)
        prompts_list = _resolve_prompts(prompts, cohort)
        fingerprint = model_fingerprint(model)
        prompts_list, dropped = _supported_prompts(prompts_list, model, explicit=prompts is not None)
        if dropped:
            log.warning(
                "model %r cannot segment %s; these manifest prompts are skipped (use a model that "
                "answers them, e.g. --model default)", model, dropped,
            )
        hashes = FileHashCache(out / ".cache" / "file_hashes.json")
        slides = cohort.slides.reset_index(drop=True)
        slide_ids = [str(s) for s in slides["slide_id"]]
        for sid in slide_ids:
            slide_dir_for(out, sid)  # refuses ids that would leave out_dir, before any work
        log.info(
            "cohort: %d slides, %d patients; prompts %s; model %s (%s, sha256 %s)",
            len(slides), len(cohort.clinical), prompts_list, model, fingerprint["class"],
            fingerprint["sha256"][:12],
        )
        record_failure, record_outcome_failure, read_failures, clear_failures = _failures_api()
        failures_csv = out / "failures.csv"
        jobs, hash_failed = [], []
        for row in slides.itertuples(index=False):
            sid = str(row.slide_id)
            mpp = None if pd.isna(row.mpp) else float(row.mpp)
            try:
                sha = hashes.hash(row.path)
            except OSError as exc:
                hash_failed.append(sid)
                clear_failures(failures_csv, [sid])
                record_failure(
                    failures_csv, slide_id=sid, stage="hash", error_type=type(exc).__name__, message=str(exc)
                )
                log.error("slide %s: cannot read file for hashing: %s", sid, exc)
                continue
            seg_key = stage_key(
                "segment", slide_sha256=sha, mpp=mpp, model=fingerprint["sha256"], prompts=prompts_list,
                options=segment_options,
            )
            key = stage_key("features", segment=seg_key, qc_size=qc_size)
            jobs.append(
                SlideJob(
                    slide_id=sid, patient_id=str(row.patient_id), path=str(row.path), mpp=mpp,
                    out_dir=str(out), prompts=tuple(prompts_list), model=model, segment_key=seg_key,
                    key=key, qc_size=qc_size, segment_options=segment_options,
                )
            )
        hashes.save()
        timings["validate"] = time.perf_counter() - t
        stage_bar.update(1)

        # ---- 2. slides: segment + features + QC (one task each) -----------------------------
        t = time.perf_counter()
        stage_bar.set_postfix_str("slides")
        cached = [j for j in jobs if is_complete(slide_dir_for(out, j.slide_id), j.key)]
        known_failed = _known_failures(out, jobs, cached)
        skip = {j.slide_id for j in cached} | known_failed
        todo = [j for j in jobs if j.slide_id not in skip]
        log.info(
            "slides: %d cached, %d to compute, %d skipped (same content failed before)",
            len(cached), len(todo), len(known_failed),
        )
        clear_failures(failures_csv, [j.slide_id for j in todo] + [j.slide_id for j in cached])
        computed_ok: list[dict] = []
        newly_failed: list[str] = []

        def on_outcome(outcome: Any) -> None:
            if outcome.ok:
                computed_ok.append(outcome.value)
                log.info("slide %s done in %.1f s (%s)", outcome.key, outcome.seconds, outcome.worker)
            else:
                newly_failed.append(outcome.key)
                record_outcome_failure(failures_csv, outcome, stage="slide")
                job = next(j for j in todo if j.slide_id == outcome.key)
                atomic_write_json(
                    slide_dir_for(out, outcome.key) / "FAILED.json",
                    {"key": job.key, "error_type": outcome.error_type, "message": outcome.message},
                )
                log.error("slide %s failed: %s: %s", outcome.key, outcome.error_type, outcome.message)

        already = len(known_failed) + len(hash_failed)
        try:
            if max_failures is not None and already > max_failures:
                raise TooManyFailuresError(already, max_failures)
            if todo:
                from pathxai.pipeline.executors import Task, run_tasks

                run_tasks(
                    process_slide, [Task(key=j.slide_id, args=(j,)) for j in todo], executor=executor,
                    n_workers=n_workers, scheduler=scheduler,
                    max_failures=_remaining(max_failures, already),
                    on_outcome=on_outcome, progress=progress, desc="slides",
                )
        except TooManyFailuresError as exc:
            timings["slides"] = time.perf_counter() - t
            log.error("%s", exc)
            _write_run_json(out, manifest, cohort, prompts_list, model, fingerprint, executor,
                            n_workers, max_failures, stats_params, seed, segment_options, qc_size,
                            started, timings, counts, status="stopped: too many failures",
                            primary_features=stats_run["primary_features"])
            raise
        ok_ids = [j.slide_id for j in jobs if is_complete(slide_dir_for(out, j.slide_id), j.key)]
        counts["slides"] = {
            "total": len(slide_ids),
            "cached": len(cached),
            "computed": len(computed_ok),
            "segmented": int(sum(bool(v.get("segmented")) for v in computed_ok if isinstance(v, dict))),
            "failed": len(newly_failed),
            "failed_cached": len(known_failed),
            "failed_hash": len(hash_failed),
        }
        timings["slides"] = time.perf_counter() - t
        stage_bar.update(1)
        if not ok_ids:
            raise PipelineError(
                f"every slide failed ({len(slide_ids)}); see {failures_csv} for the reasons"
            )

        # ---- 3. aggregate to patients ------------------------------------------------------------
        t = time.perf_counter()
        stage_bar.set_postfix_str("aggregate")
        slide_table, area_table = collect_slide_tables(out, ok_ids)
        atomic_write_csv(out / "slide_features.csv", slide_table)
        qc_table = qc_area_table(area_table)
        atomic_write_csv(out / "qc_areas.csv", qc_table)
        job_key = {j.slide_id: j.key for j in jobs}
        slide_to_patient = {j.slide_id: j.patient_id for j in jobs if j.slide_id in ok_ids}
        agg_key = stage_key(
            "aggregate", slides=[[sid, job_key[sid]] for sid in ok_ids], mapping=slide_to_patient,
            patient_col=cohort.patient_col,
        )
        pdir = out / "patients"
        if _stage_done(pdir, agg_key) and (pdir / "patient_features.csv").is_file():
            patient_table = pd.read_csv(pdir / "patient_features.csv", dtype={cohort.patient_col: str})
            counts["aggregate"] = "cached"
        else:
            from pathxai.features import aggregate_patients

            patient_table = aggregate_patients(slide_table, slide_to_patient)
            patient_table = _ensure_patient_col(patient_table, cohort.patient_col)
            atomic_write_csv(pdir / "patient_features.csv", patient_table)
            atomic_write_parquet(pdir / "patient_features.parquet", patient_table)
            _mark_stage(pdir, agg_key, n_patients=len(patient_table))
            counts["aggregate"] = "computed"
        atomic_write_csv(out / "patient_features.csv", patient_table)
        timings["aggregate"] = time.perf_counter() - t
        stage_bar.update(1)
        log.info("aggregate: %d patients (%s)", len(patient_table), counts["aggregate"])

        # ---- 4. statistics --------------------------------------------------------------------
        t = time.perf_counter()
        stage_bar.set_postfix_str("stats")
        clinical = cohort.clinical.copy()
        outcome_cols = [c for c in (cohort.patient_col, cohort.time_col, cohort.event_col, cohort.label_col)
                        if c and c in clinical.columns]
        atomic_write_csv(pdir / "outcomes.csv", clinical[outcome_cols])
        stats_key = stage_key(
            "stats", aggregate=agg_key, clinical=hash_table(clinical.astype(str)),
            roles=[cohort.patient_col, cohort.time_col, cohort.event_col, cohort.label_col,
                   list(cohort.covariates or [])],
            params=stats_run, primary_panel=_panel_key(stats_run["primary_features"]),
        )
        sdir = out / "stats"
        analysis = None
        if _stage_done(sdir, stats_key):
            counts["stats"] = "cached"
        else:
            if sdir.exists():  # never mix tables of two analyses
                shutil.rmtree(sdir)
            try:
                analysis = run_statistics(patient_table, cohort, stats_run, sdir)
                _mark_stage(sdir, stats_key)
            except StatsInputError as exc:
                # too few patients/events etc.: keep the cohort, QC and features in the report
                log.error("statistics not run: %s: %s", type(exc).__name__, exc)
                _mark_stage(sdir, stats_key, error={"type": type(exc).__name__, "message": str(exc)})
            counts["stats"] = "computed"
        timings["stats"] = time.perf_counter() - t
        stage_bar.update(1)
        log.info("stats: %s in %.1f s", counts["stats"], timings["stats"])

        # ---- 5. report -------------------------------------------------------------------------
        t = time.perf_counter()
        stage_bar.set_postfix_str("report")
        failures = read_failures(failures_csv)
        flow = cohort_flow(cohort, failures, ok_ids, patient_table, _read_stats_exclusions(sdir, analysis))
        atomic_write_json(out / "cohort_flow.json", flow)
        report_key = stage_key(
            "report", stats=stats_key, flow=flow, qc=hash_table(qc_table.astype(str)), prompts=prompts_list,
        )
        report_path = out / "report.html"
        counts["report"] = "cached" if (_stage_done(out / ".cache" / "report", report_key) and report_path.is_file()) else "computed"
        timings["report"] = 0.0
        info = _write_run_json(
            out, manifest, cohort, prompts_list, model, fingerprint, executor, n_workers, max_failures,
            stats_params, seed, segment_options, qc_size, started, timings, counts, status="finished",
            prompts_skipped=dropped, primary_features=stats_run["primary_features"],
        )
        if counts["report"] == "computed":
            from pathxai.report import render_report

            render_report(out)
            _mark_stage(out / ".cache" / "report", report_key)
        timings["report"] = time.perf_counter() - t
        stage_bar.update(1)
        stage_bar.close()
        info = _write_run_json(
            out, manifest, cohort, prompts_list, model, fingerprint, executor, n_workers, max_failures,
            stats_params, seed, segment_options, qc_size, started, timings, counts, status="finished",
            prompts_skipped=dropped, primary_features=stats_run["primary_features"],
        )
        log.info(
            "finished: slides %d computed / %d cached / %d failed; aggregate %s; stats %s; report %s; "
            "timings %s",
            counts["slides"]["computed"], counts["slides"]["cached"],
            counts["slides"]["failed"] + counts["slides"]["failed_cached"] + counts["slides"]["failed_hash"],
            counts["aggregate"], counts["stats"], counts["report"],
            {k: round(v, 2) for k, v in timings.items()},
        )
    return RunResult(
        out_dir=out, report_path=report_path, slide_features=slide_table, patient_features=patient_table,
        failures=failures, counts=counts, timings=timings, analysis=analysis, info=info,
    )


def _panel_key(primary: Any) -> list[str] | None:
    """The established panel's patterns when the statistics use it (so editing the panel
    re-runs the statistics), else None."""
    items = [primary] if isinstance(primary, str) else list(primary or [])
    if "established" not in items:
        return None
    from pathxai.features.registry import established_panel_patterns

    return established_panel_patterns()


def _remaining(max_failures: int | None, already: int) -> int | None:
    """Failures still allowed after ``already`` known ones."""
    if max_failures is None:
        return None
    return max(0, int(max_failures) - already)


def _known_failures(out: Path, jobs: list[SlideJob], cached: list[SlideJob]) -> set[str]:
    """Slides that failed before with identical inputs and a non-transient error."""
    cached_ids = {j.slide_id for j in cached}
    known = set()
    for j in jobs:
        if j.slide_id in cached_ids:
            continue
        rec = read_json(slide_dir_for(out, j.slide_id) / "FAILED.json")
        if isinstance(rec, dict) and rec.get("key") == j.key and rec.get("error_type") not in _TRANSIENT_ERRORS:
            known.add(j.slide_id)
    return known


def _ensure_patient_col(table: pd.DataFrame, patient_col: str) -> pd.DataFrame:
    """Patient features with the cohort's patient id column as a string column."""
    if patient_col not in table.columns:
        if table.index.name in (patient_col, "patient_id") or table.index.name is None:
            table = table.reset_index().rename(columns={table.index.name or "index": patient_col})
        if "patient_id" in table.columns and patient_col not in table.columns:
            table = table.rename(columns={"patient_id": patient_col})
    if patient_col not in table.columns:
        raise PipelineError(
            f"aggregate_patients returned no {patient_col!r} column (columns: {list(table.columns)[:5]}...)"
        )
    table = table.copy()
    table[patient_col] = table[patient_col].astype(str)
    return table.reset_index(drop=True)


def _write_run_json(
    out: Path, manifest: Any, cohort: Any, prompts: list[str], model: str, fingerprint: dict,
    executor: str, n_workers: int, max_failures: int | None, stats_params: dict, seed: int,
    segment_options: dict, qc_size: int, started: datetime, timings: dict, counts: dict, *, status: str,
    prompts_skipped: list[str] | None = None, primary_features: Any = "established",
) -> dict[str, Any]:
    info = {
        "pathxai_version": package_versions().get("pathxai"),
        "status": status,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        "manifest": str(Path(manifest).resolve()),
        "parameters": {
            "prompts": prompts,
            "prompts_skipped": prompts_skipped,
            "model": model,
            "executor": executor,
            "n_workers": n_workers,
            "max_failures": max_failures,
            "stats": stats_params,
            "primary_features": primary_features,
            "segment_options": segment_options,
            "qc_size": qc_size,
            "time_col": cohort.time_col,
            "time_unit": getattr(cohort, "time_unit", None),
            "event_col": cohort.event_col,
            "label_col": cohort.label_col,
            "covariates": list(cohort.covariates or []),
        },
        "model": fingerprint,
        "seeds": {"stats": stats_params.get("seed", seed), "run": seed},
        "timings_s": {k: round(float(v), 3) for k, v in timings.items()},
        "counts": counts,
        "versions": package_versions(),
        "platform": {"system": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    atomic_write_json(out / "run.json", info)
    return info
