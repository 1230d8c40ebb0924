"""``pathxai synthetic``: write the synthetic demo cohort (slides, ground truth, outcomes)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synthetic`` sub-command."""
    p = subparsers.add_parser(
        "synthetic",
        help="generate the synthetic H&E cohort with exact ground truth and planted effects",
        description="Write pyramidal TIFF slides, ground-truth masks, a clinical table with "
        "planted effects, ground_truth.json and a manifest into DIR; prints the manifest path.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--patients", type=_positive_int, default=60, metavar="N",
                   help="number of patients (default 60, at least 8)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--slide-size", type=_positive_int, nargs=2, default=(1536, 1536),
                   metavar=("W", "H"), help="level-0 slide size in pixels (default 1536 1536)")
    p.add_argument("--mpp", type=float, default=0.5, help="µm per pixel (default 0.5)")
    p.add_argument("--jobs", type=_positive_int, default=None,
                   help="worker processes (default: up to 4)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different cohort already in DIR")
    p.set_defaults(func=_synthetic)


def _synthetic(args: argparse.Namespace) -> int:
    from pathxai.datasets.synthetic import make_synthetic_cohort

    try:
        manifest = make_synthetic_cohort(
            args.out, n_patients=args.patients, seed=args.seed,
            slide_size=tuple(args.slide_size), mpp=args.mpp, n_jobs=args.jobs,
            overwrite=args.overwrite, progress=True,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"pathxai synthetic: error: {exc}", file=sys.stderr)
        return 2
    print(manifest)
    return 0
