"""``pathxai validate MANIFEST``: check a cohort manifest and everything it names."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    p = subparsers.add_parser(
        "validate",
        help="validate a cohort manifest (tables, ids, slide files, outcomes)",
        description="Validate a cohort manifest and the tables and slide files it names. "
        "Exit 0 with a one-line summary, or exit 1 listing every problem with "
        "the file and line it came from.",
    )
    p.add_argument("manifest", help="path to the manifest YAML")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from pathxai.cohort.manifest import load_cohort
    from pathxai.exceptions import ManifestError

    try:
        cohort = load_cohort(args.manifest)
    except ManifestError as exc:
        print(f"INVALID {args.manifest}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(cohort.summary(), indent=2))
    else:
        print(f"OK {args.manifest}: {cohort.summary_line()}")
    for w in cohort.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    return 0
