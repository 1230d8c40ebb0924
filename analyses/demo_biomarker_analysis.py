"""Does pathxai recover the biomarkers planted in the synthetic demo cohort?

Generates (or reuses) the demo cohort, runs the whole pipeline on it (cached: reruns
are instant), and reports where each planted effect of ``ground_truth.json`` lands in
the candidate-biomarker table, with the estimated versus planted effect size. Writes
into ``results/demo_biomarker_analysis/``:

    planted_effect_ranks.csv   feature, outcome, planted HR/OR per SD, rank, family
                               (primary = pre-specified panel, exploratory), cluster_rank,
                               redundant_with, table row
    oracle_ranks.csv           (--oracle) the same with features from the exact ground-truth
                               masks: separates segmentation error from statistics
    summary.json               the same plus run counts and timings, and the C-indices
                               (``c_index``, ``oracle_c_index``): the pre-specified model
                               (primary family only; headline) and the all-feature model,
                               each with its 95 % CI and whether the CI covers the C-index of
                               the planted linear predictor on the same patients
    report.png                 screenshot of report.html from headless Chromium (if installed)

Usage::

    .venv/bin/python analyses/demo_biomarker_analysis.py [--out results/demo_biomarker_analysis]
        [--demo-dir demo_out] [--patients N] [--seed S] [--model default|stain] [--oracle]
        [--oracle-only] [--oracle-features PATH] [--primary established|none|a,b,pattern*]

``--oracle-features PATH`` caches the ground-truth feature table (read when the file
exists, else computed once and written there; .parquet or .csv), so iterating on the
statistics costs one ``analyze`` call (~20-30 s on 2 shared cores). ``--oracle-only``
skips the segmentation pipeline run and reads the column roles from the manifest.
``--primary`` is the pre-specified family of both analyses (default: the pipeline's,
``established``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 2600) -> bool:
    """Screenshot ``html`` with headless Chromium; False when Chromium is not installed."""
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={png}", html.resolve().as_uri()],
            capture_output=True, timeout=180, check=False,
        )
    return png.is_file()


def planted_ranks(biomarkers: pd.DataFrame, truth: dict) -> pd.DataFrame:
    """Rank (1 = top) of every planted feature in the biomarker table, with its family.

    ``rank`` is the table's ``rank`` column (its row position when there is none);
    ``cluster_rank`` ranks the feature's correlation cluster among the distinct markers
    and ``redundant_with`` names the cluster's lead when the feature is not the lead.
    """
    table = biomarkers.reset_index(drop=True)
    feats = table["feature"].astype(str).tolist() if "feature" in table else list(map(str, table.index))
    rows = []
    for eff in truth["planted_effects"]:
        f = eff["feature"]
        hits = [i for i, name in enumerate(feats) if name == f]
        hit = table.iloc[hits[0]] if hits else None

        def get(col, default=None, hit=hit):
            return hit[col] if hit is not None and col in table.columns else default

        row = {
            "feature": f,
            "outcome": eff["outcome"],
            "direction": eff["direction"],
            "planted_hr_per_sd": eff.get("hr_per_sd"),
            "planted_or_per_sd": eff.get("or_per_sd"),
            "rank": int(get("rank", hits[0] + 1)) if hits else None,
            "family": get("family", "exploratory") if hits else None,
            "cluster_rank": get("cluster_rank"),
            "redundant_with": get("redundant_with"),
            "tier": get("tier"),
            "n_candidates": len(feats),
        }
        if hits:
            for col in table.columns:
                if col != "feature":
                    row[f"table_{col}"] = table.iloc[hits[0]][col]
        rows.append(row)
    return pd.DataFrame(rows)


def oracle_features(cohort_dir: Path, cache: Path | None = None) -> pd.DataFrame:
    """Patient features of the exact ground-truth masks (read from/written to ``cache``)."""
    if cache is not None and cache.is_file():
        return pd.read_parquet(cache) if cache.suffix == ".parquet" else pd.read_csv(cache)
    from pathxai.features import aggregate_patients, features_table

    slides = pd.read_csv(cohort_dir / "slides.csv", dtype=str)
    table = aggregate_patients(
        features_table(cohort_dir / "ground_truth" / "masks"),
        dict(zip(slides["slide_id"], slides["patient_id"])),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.suffix == ".parquet":
            table.to_parquet(cache)
        else:
            table.to_csv(cache, index=False)
    return table


def planted_c_index(truth: dict, clinical: pd.DataFrame, id_col: str, time_col: str,
                    event_col: str) -> float | None:
    """Harrell's C of the planted linear predictor on the patients of ``clinical``.

    The planted linear predictor (``ground_truth.json`` ``patients[].linear_predictor``)
    is the generative model's log hazard: the two planted features *and* age and stage,
    which the analysis enters as unpenalised covariates, so it is the right comparator
    for the models' C. Computed with :func:`pathxai.stats.harrell_c` (the models' tie
    convention); ``survival.c_index_true_lp`` of ``ground_truth.json`` is the same with
    lifelines' convention (tied times count as comparable pairs), a few 1e-4 apart.
    """
    from pathxai.stats import harrell_c

    lp = {str(p["patient_id"]): p.get("linear_predictor") for p in truth.get("patients", [])}
    ids = clinical[id_col].astype(str)
    if not lp or ids.map(lp).isna().any():
        return None
    return harrell_c(clinical[time_col], clinical[event_col], ids.map(lp).to_numpy(float))


def c_index_summary(multivariable: dict, planted: float | None) -> dict:
    """Out-of-fold Harrell C (95 % CI) of each multivariable model, and CI coverage of
    ``planted`` (the C of the planted model), from a ``multivariable.json`` dict."""
    out: dict = {"headline": multivariable.get("headline", "all_features"),
                 "planted_c_index": planted}
    blocks = {"pre_specified": multivariable.get("primary"),
              "all_features": multivariable.get("all_features", multivariable)}
    for name, block in blocks.items():
        if not block:
            out[name] = None
            continue
        c = block["harrell_c"]
        oc = block.get("harrell_c_optimism_corrected") or {}
        out[name] = {
            "n_features": block.get("n_features"),
            "harrell_c": c["estimate"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
            "optimism_corrected": oc.get("estimate"),
            "ci_covers_planted": (None if planted is None
                                  else bool(c["ci_low"] <= planted <= c["ci_high"])),
        }
    comp = (multivariable.get("comparison") or {}).get("primary_minus_all_features")
    if comp:
        out["pre_specified_minus_all_features"] = comp["harrell_c"]
    return out


def auroc_summary(diagnostic: dict | None, planted: float | None) -> dict | None:
    """Out-of-fold AUROC (95 % CI) of the diagnostic models from a ``diagnostic.json`` dict
    and whether each CI covers ``planted`` (AUROC of the planted logit on these patients)."""
    if not diagnostic:
        return None

    def entry(row: dict) -> dict:
        return {"auroc": row["auroc"], "ci_low": row["auroc_ci_low"], "ci_high": row["auroc_ci_high"],
                "ci_covers_planted": (None if planted is None
                                      else bool(row["auroc_ci_low"] <= planted <= row["auroc_ci_high"]))}

    models = diagnostic.get("models")
    rows = models.to_dict(orient="records") if isinstance(models, pd.DataFrame) else list(models or [])
    out = {"headline": diagnostic.get("headline", "all_features"), "planted_auroc": planted,
           "pre_specified_logistic": entry(diagnostic["primary"]) if diagnostic.get("primary") else None}
    out.update({f"all_features_{r['model']}": entry(r) for r in rows})
    return out


def c_index_lines(summary: dict) -> list[str]:
    """Human-readable lines of :func:`c_index_summary`."""
    lines = []
    for name, label in (("pre_specified", "pre-specified (primary family)"),
                        ("all_features", "all features (exploratory)")):
        b = summary.get(name)
        if not b:
            continue
        cover = ("" if b["ci_covers_planted"] is None else
                 "; CI covers the planted C" if b["ci_covers_planted"] else
                 "; CI does NOT cover the planted C")
        head = " [headline]" if summary["headline"] == ("primary" if name == "pre_specified"
                                                        else "all_features") else ""
        lines.append(f"  {label}{head}: {b['n_features']} features, out-of-fold Harrell C "
                     f"{b['harrell_c']:.3f} (95% CI {b['ci_low']:.3f}-{b['ci_high']:.3f}), "
                     f"optimism-corrected {b['optimism_corrected']:.3f}{cover}")
    d = summary.get("pre_specified_minus_all_features")
    if d:
        lines.append(f"  difference pre-specified - all features {d['estimate']:+.3f} "
                     f"(paired 95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f})")
    if summary.get("planted_c_index") is not None:
        lines.append(f"  C of the planted linear predictor (features + age + stage) on the "
                     f"same patients: {summary['planted_c_index']:.3f}")
    return lines


RANK_COLUMNS = ["feature", "outcome", "family", "rank", "cluster_rank", "redundant_with", "tier",
                "n_candidates"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "results" / "demo_biomarker_analysis"))
    ap.add_argument("--demo-dir", default=str(REPO / "demo_out"), help="where the demo cohort and run live")
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="default")
    ap.add_argument("--oracle", action="store_true",
                    help="also rank the planted effects using features of the ground-truth masks")
    ap.add_argument("--oracle-only", action="store_true",
                    help="only the ground-truth-mask analysis (no segmentation run); implies --oracle")
    ap.add_argument("--oracle-features", default=None, metavar="PATH",
                    help="cache of the ground-truth patient feature table (.parquet/.csv)")
    ap.add_argument("--primary", default=None,
                    help="primary family: 'established' (pipeline default), 'none' or names/patterns")
    args = ap.parse_args(argv)

    from pathxai.cohort import load_cohort
    from pathxai.pipeline import run
    from pathxai.pipeline.cli import demo_model, prepare_demo_cohort
    from pathxai.stats.families import parse_primary_option

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = Path(args.demo_dir)
    manifest = prepare_demo_cohort(demo / "cohort", n_patients=args.patients, seed=args.seed)
    truth = json.loads((demo / "cohort" / "ground_truth.json").read_text())
    cohort = load_cohort(manifest)
    stats_params = {} if args.primary is None else {"primary_features": parse_primary_option(args.primary)}
    summary: dict = {}
    if args.oracle_only and (out / "summary.json").is_file():  # keep the last pipeline results
        summary = json.loads((out / "summary.json").read_text())
    ranks = None
    result = None
    if not args.oracle_only:
        model = demo_model(args.model)
        result = run(manifest, demo / "run", model=model, seed=args.seed, stats_params=stats_params)
        ranks = planted_ranks(result.biomarkers, truth)
        ranks.to_csv(out / "planted_effect_ranks.csv", index=False)
        mv_path = Path(result.out_dir) / "stats" / "multivariable.json"
        summary = {
            "c_index": (c_index_summary(json.loads(mv_path.read_text()), planted_c_index(
                truth, cohort.clinical, cohort.patient_col, cohort.time_col, cohort.event_col))
                if mv_path.is_file() else None),
            "model": model,
            "run_dir": str(result.out_dir),
            "report": str(result.report_path),
            "counts": result.counts,
            "timings_s": result.info.get("timings_s"),
            "primary_features": result.info.get("parameters", {}).get("stats", {}).get("primary_features"),
            "planted": ranks.to_dict(orient="records"),
            "all_planted_in_top": int(ranks["rank"].max()) if ranks["rank"].notna().all() else None,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if args.oracle or args.oracle_only:
        from pathxai.stats import analyze

        cache = Path(args.oracle_features) if args.oracle_features else None
        truth_features = oracle_features(demo / "cohort", cache)
        primary = (result.info.get("parameters", {}).get("stats", {}).get("primary_features", "established")
                   if result is not None else stats_params.get("primary_features", "established"))
        oracle = analyze(
            truth_features, cohort.clinical, id_col=cohort.patient_col, time_col=cohort.time_col,
            event_col=cohort.event_col, label_col=cohort.label_col,
            covariates=list(cohort.covariates or []) or None, seed=args.seed,
            primary_features=primary, figures=False,
        )
        oracle_ranks = planted_ranks(oracle.biomarkers, truth)
        oracle_ranks.to_csv(out / "oracle_ranks.csv", index=False)
        oracle.clusters.to_csv(out / "oracle_clusters.csv", index=False)
        c = oracle.multivariable["harrell_c"]
        gone = set(oracle.exclusions.loc[oracle.exclusions["kind"] == "patient", "id"].astype(str))
        analysed = cohort.clinical[~cohort.clinical[cohort.patient_col].astype(str).isin(gone)]
        oracle_c = c_index_summary(oracle.multivariable, planted_c_index(
            truth, analysed, cohort.patient_col, cohort.time_col, cohort.event_col))
        summary["oracle_c_index"] = oracle_c
        summary["oracle_auroc"] = auroc_summary(oracle.diagnostic,
                                                truth.get("diagnostic", {}).get("auc_true_logit"))
        summary["oracle_planted"] = oracle_ranks.to_dict(orient="records")
        summary["oracle_primary_features"] = primary
        summary["oracle_multiple_testing"] = oracle.params.get("multiple_testing")
        summary["oracle_harrell_c"] = c
        summary["c_index_true_lp"] = truth.get("survival", {}).get("c_index_true_lp")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"with ground-truth masks (primary family: {primary!r}; {oracle.params.get('multiple_testing')}):")
        with pd.option_context("display.width", 200, "display.max_columns", 12):
            print(oracle_ranks[RANK_COLUMNS].to_string(index=False))
        print("C-index with ground-truth masks:")
        print("\n".join(c_index_lines(oracle_c)))
        for name, a in (summary["oracle_auroc"] or {}).items():
            if isinstance(a, dict):
                print(f"  AUROC {name}: {a['auroc']:.3f} (95% CI {a['ci_low']:.3f}-{a['ci_high']:.3f})")
        if summary["oracle_auroc"] and summary["oracle_auroc"]["planted_auroc"] is not None:
            print(f"  AUROC of the planted logit: {summary['oracle_auroc']['planted_auroc']:.3f}")
    if ranks is not None:
        shot = screenshot(Path(result.report_path), out / "report.png")
        with pd.option_context("display.width", 200, "display.max_columns", 12):
            print(ranks[RANK_COLUMNS].to_string(index=False))
        if summary.get("c_index"):
            print("C-index with the segmentation pipeline's features:")
            print("\n".join(c_index_lines(summary["c_index"])))
        print(f"results: {out}" + ("" if shot else " (no screenshot: chromium not installed)"))
    return 0

if __name__ == "__main__":
    sys.exit(main())
