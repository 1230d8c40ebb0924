"""The ``pathxai`` command line. Thin: parses arguments and calls the API.

Each stage contributes its sub-commands from its own ``<stage>/cli.py`` module,
which defines ``register(subparsers)``; every sub-command sets ``func(args) -> int``.
Errors pathxai knows about (:class:`pathxai.exceptions.PathXAIError`) are printed as
one readable line and exit with code 2; no traceback is shown unless
``PATHXAI_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pathxai import __version__
from pathxai.exceptions import PathXAIError

# modules that contribute sub-commands, in help order
_COMMAND_MODULES = (
    "pathxai.slides.cli",
    "pathxai.cohort.cli",
    "pathxai.datasets.cli",
    "pathxai.segment.cli",
    "pathxai.features.cli",
    "pathxai.stats.cli",
    "pathxai.pipeline.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="pathxai",
        description="Text-prompted pathology segmentation, morphometry and biomarker statistics.",
    )
    parser.add_argument("--version", action="version", version=f"pathxai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a stage not installed in this build
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except PathXAIError as exc:
        if os.environ.get("PATHXAI_DEBUG"):
            raise
        print(f"pathxai {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
