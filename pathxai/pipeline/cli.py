"""``pathxai run`` and ``pathxai demo``: the cohort pipeline from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pathxai.exceptions import CheckpointError, PipelineError

__all__ = ["register", "cmd_run", "cmd_demo", "prepare_demo_cohort"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _add_run_options(
    p: argparse.ArgumentParser, *, default_model: str, default_executor: str = "local", default_workers: int = 1
) -> None:
    p.add_argument(
        "--prompts", nargs="+", metavar="PROMPT",
        help="what to segment, e.g. --prompts tumor stroma 'tumor-infiltrating lymphocytes' "
             "(default: the manifest's prompts)",
    )
    p.add_argument(
        "--model", default=default_model, metavar="NAME|stain",
        help=f"segmentation model: 'default' (shipped checkpoint), a checkpoint folder, or 'stain' "
             f"(classical baseline); default {default_model!r}",
    )
    p.add_argument("--executor", choices=("local", "processes", "dask"), default=default_executor,
                   help=f"where slide tasks run (default: {default_executor})")
    p.add_argument("--workers", type=_positive_int, default=default_workers,
                   help=f"worker processes (default {default_workers})")
    p.add_argument("--scheduler", metavar="ADDR", help="address of an existing Dask scheduler")
    p.add_argument("--max-failures", type=_nonneg_int, default=None, metavar="N",
                   help="stop once more than N slides failed (default: never stop)")
    p.add_argument("--seed", type=int, default=0, help="seed of the statistics (default 0)")
    p.add_argument("--n-bootstrap", type=_nonneg_int, default=None, metavar="N",
                   help="bootstrap resamples for confidence intervals (default: the stats default)")
    p.add_argument("--primary", default=None, metavar="NAMES",
                   help="pre-specified primary biomarkers (BH within them, separately from the "
                        "exploratory rest): 'established' (default: the literature panel "
                        "pathxai.features.registry.ESTABLISHED_PANEL), comma-separated feature "
                        "names / fnmatch patterns (may include 'established'), or 'none'")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: Any) -> None:
    """Add ``run`` and ``demo`` to the ``pathxai`` command."""
    p = subparsers.add_parser(
        "run", help="run the whole pipeline on a cohort manifest and write report.html",
        description="Segment every slide, compute features, aggregate to patients, run the "
                    "statistics and write DIR/report.html. Cached by content: a second run "
                    "recomputes nothing; a changed parameter recomputes only what depends on it.",
    )
    p.add_argument("manifest", help="cohort manifest (YAML)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_run_options(p, default_model="default")
    p.set_defaults(func=cmd_run)

    d = subparsers.add_parser(
        "demo", help="generate the synthetic demo cohort and run everything on it",
        description="Generate the synthetic cohort into DIR/cohort (reused when present with the "
                    "same parameters), run the pipeline into DIR/run and print the report path.",
    )
    d.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    d.add_argument("--patients", type=_positive_int, default=None, metavar="N",
                   help="number of synthetic patients (default: the generator's default)")
    n_cpu = os.cpu_count() or 1
    _add_run_options(
        d, default_model="default", default_executor="processes" if n_cpu > 1 else "local",
        default_workers=min(2, n_cpu),
    )
    d.set_defaults(func=cmd_demo)


def _stats_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"seed": args.seed}
    if args.n_bootstrap is not None:
        params["n_bootstrap"] = args.n_bootstrap
    if getattr(args, "primary", None) is not None:
        from pathxai.stats.families import parse_primary_option

        params["primary_features"] = parse_primary_option(args.primary)
    return params


def _print_summary(result: Any) -> None:
    c = result.counts
    s = c["slides"]
    print(
        f"slides: {s['computed']} computed, {s['cached']} cached, "
        f"{s['failed'] + s['failed_cached'] + s['failed_hash']} failed; "
        f"patients: {c['aggregate']}; statistics: {c['stats']}; report: {c['report']}"
    )
    if len(result.failures):
        print(f"failures: {result.out_dir / 'failures.csv'}")
    print(f"report: {result.report_path}")


def cmd_run(args: argparse.Namespace) -> int:
    """``pathxai run``: returns 0 on success (failed slides are listed, not fatal)."""
    from pathxai.pipeline.run import run

    result = run(
        args.manifest, args.out, prompts=args.prompts, model=args.model, executor=args.executor,
        n_workers=args.workers, scheduler=args.scheduler, max_failures=args.max_failures,
        stats_params=_stats_params(args), seed=args.seed, progress=not args.quiet,
    )
    _print_summary(result)
    return 0


def prepare_demo_cohort(out_dir: str | Path, *, n_patients: int | None = None, seed: int = 0) -> Path:
    """Generate the synthetic cohort into ``out_dir``; reused when present with these parameters.

    :func:`pathxai.datasets.make_synthetic_cohort` itself recognises a cohort made
    with the same parameters and returns at once; a cohort made with other parameters
    is replaced.

    Returns
    -------
    Path
        The cohort's ``manifest.yaml``.
    """
    from pathxai.datasets import make_synthetic_cohort

    kwargs: dict[str, Any] = {"seed": seed, "overwrite": True}
    if n_patients is not None:
        kwargs["n_patients"] = n_patients
    return Path(make_synthetic_cohort(Path(out_dir), **kwargs))


def demo_model(model: str) -> str:
    """The model the demo runs: ``model``, or the stain baseline when ``model`` is
    ``"default"`` and the shipped checkpoint cannot be loaded (a warning says so)."""
    if model != "default":
        return model
    from pathxai.pipeline.stages import get_predictor

    try:
        get_predictor("default")
    except (CheckpointError, FileNotFoundError) as exc:
        print(
            f"warning: the shipped segmentation checkpoint could not be loaded ({exc}); "
            "the demo uses the classical stain baseline (--model stain) instead",
            file=sys.stderr,
        )
        return "stain"
    return model


def cmd_demo(args: argparse.Namespace) -> int:
    """``pathxai demo``: synthetic cohort + full run; prints the report path."""
    from pathxai.pipeline.run import run

    out = Path(args.out)
    print(f"synthetic cohort -> {out / 'cohort'}")
    manifest = prepare_demo_cohort(out / "cohort", n_patients=args.patients, seed=args.seed)
    model = demo_model(args.model)
    result = run(
        manifest, out / "run", prompts=args.prompts, model=model, executor=args.executor,
        n_workers=args.workers, scheduler=args.scheduler, max_failures=args.max_failures,
        stats_params=_stats_params(args), seed=args.seed, progress=not args.quiet,
    )
    _print_summary(result)
    if result.report_path is None:
        raise PipelineError("the demo run finished without a report; see run.log")
    return 0
