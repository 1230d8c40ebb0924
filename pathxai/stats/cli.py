"""``pathxai analyze``: feature table + clinical table -> ranked candidate biomarkers."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathxai.stats.analyze import analyze
    from pathxai.stats.families import parse_primary_option

    covs = [c.strip() for c in args.covariates.split(",") if c.strip()] if args.covariates else []
    horizons = ([float(h) for h in args.horizons.split(",")] if args.horizons else None)
    res = analyze(args.features, args.clinical, id_col=args.id, time_col=args.time,
                  event_col=args.event, label_col=args.label, covariates=covs, seed=args.seed,
                  n_bootstrap=args.n_bootstrap, horizons=horizons, out_dir=args.out,
                  on_unmatched=args.on_unmatched, time_unit=args.time_unit,
                  n_threads=args.threads, primary_features=parse_primary_option(args.primary))
    mv = res.multivariable
    print(f"{res.params['n_patients']} patients, {res.params['n_events']} events, "
          f"{res.params['n_features']} features")
    for key, label in (("primary", "pre-specified model (primary family; headline)"),
                       ("all_features", "all-feature model" + (" (exploratory)" if
                                                               mv.get("primary") else ""))):
        block = mv.get(key)
        if block:
            c = block["harrell_c"]
            print(f"{label}: {block['n_features']} features, out-of-fold Harrell C "
                  f"{c['estimate']:.3f} (95% CI {c['ci_low']:.3f}-{c['ci_high']:.3f})")
    if mv.get("primary_note"):
        print(f"note: {mv['primary_note']}")
    if len(res.exclusions):
        print(f"{len(res.exclusions)} exclusion(s) recorded in {args.out}/exclusions.csv")
    if res.params.get("primary_features") is not None:
        print(f"primary family: {res.params['n_primary']} pre-specified feature(s); "
              f"{res.params['multiple_testing']}")
        for note in res.params.get("primary_notes") or []:
            print(f"note: {note}")
    cols = [k for k in ("rank", "feature", "family", "hr", "q", "shap_top_k_frequency", "tier")
            if k in res.biomarkers]
    print(res.biomarkers[cols].head(10).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"wrote {args.out}/biomarkers.csv and figures")
    return 0


def register(subparsers) -> None:
    """Add the ``analyze`` sub-command."""
    p = subparsers.add_parser(
        "analyze", help="survival/diagnostic statistics and ranked candidate biomarkers",
        description="Univariable Cox screen (BH q), nested-CV elastic-net Cox with held-out "
                    "SHAP, optional diagnostic models, ranked biomarker table and figures.")
    p.add_argument("--features", required=True, help="patient-level feature table (.csv/.parquet)")
    p.add_argument("--clinical", required=True, help="clinical table (.csv/.parquet)")
    p.add_argument("--id", required=True, help="patient id column (both tables)")
    p.add_argument("--time", required=True, help="follow-up time column")
    p.add_argument("--event", required=True, help="event column (1 event, 0 censored)")
    p.add_argument("--label", default=None, help="binary label column for diagnostic models")
    p.add_argument("--covariates", default="", help="comma-separated adjustment covariates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-bootstrap", type=int, default=200)
    p.add_argument("--horizons", default="", help="comma-separated times for AUC(t)")
    p.add_argument("--time-unit", default="", help="unit of the time column (for figures)")
    p.add_argument("--on-unmatched", choices=["exclude", "error"], default="exclude")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    p.add_argument("--primary", default="none", metavar="NAMES",
                   help="pre-specified primary features: comma-separated names and/or fnmatch "
                        "patterns (e.g. 'ratio__tumor__to__stroma,density_per_mm2__lymphocyte__in__*'),"
                        " 'established' for the built-in literature panel, or 'none' (default): "
                        "BH is applied within the primary and the exploratory family separately")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_run)
