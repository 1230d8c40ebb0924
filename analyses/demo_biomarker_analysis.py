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
    summary.json               the same plus run counts and timings
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

    from pathxai.pipeline import run
    from pathxai.pipeline.cli import demo_model, prepare_demo_cohort
    from pathxai.stats.families import parse_primary_option

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = Path(args.demo_dir)
    manifest = prepare_demo_cohort(demo / "cohort", n_patients=args.patients, seed=args.seed)
    truth = json.loads((demo / "cohort" / "ground_truth.json").read_text())
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
        summary = {
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
        from pathxai.cohort import load_cohort
        from pathxai.stats import analyze

        cohort = load_cohort(manifest)
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
        summary["oracle_planted"] = oracle_ranks.to_dict(orient="records")
        summary["oracle_primary_features"] = primary
        summary["oracle_multiple_testing"] = oracle.params.get("multiple_testing")
        summary["oracle_harrell_c"] = c
        summary["c_index_true_lp"] = truth.get("survival", {}).get("c_index_true_lp")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"with ground-truth masks (primary family: {primary!r}; {oracle.params.get('multiple_testing')}):")
        with pd.option_context("display.width", 200, "display.max_columns", 12):
            print(oracle_ranks[RANK_COLUMNS].to_string(index=False))
        print(f"out-of-fold Harrell C {c['estimate']:.3f} (95% CI {c['ci_low']:.3f}-{c['ci_high']:.3f}); "
              f"C of the planted linear predictor {summary['c_index_true_lp']}")
    if ranks is not None:
        shot = screenshot(Path(result.report_path), out / "report.png")
        with pd.option_context("display.width", 200, "display.max_columns", 12):
            print(ranks[RANK_COLUMNS].to_string(index=False))
        print(f"results: {out}" + ("" if shot else " (no screenshot: chromium not installed)"))
    return 0

if __name__ == "__main__":
    sys.exit(main())
