"""``pathxai features``: masks in the plain layout -> slide feature table (and object table);
``pathxai list-features``: the declared feature table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["cmd_features", "cmd_list_features", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``features`` and ``list-features`` sub-commands."""
    p = subparsers.add_parser(
        "features",
        help="morphometric features (physical units) from masks: one row per slide",
        description="Read <masks>/<slide_id>/<category>.png|.tif (binary regions), "
        "<category>.instances.png|.tif (instance labels), optional tissue.png and meta.json "
        "({\"mpp\": ...}); write one row per slide and one column per feature (plus slide_id). "
        "CSV or Parquet by the suffix of --out.",
    )
    p.add_argument("--masks", type=Path, required=True, help="folder holding one sub-folder per slide")
    p.add_argument("--mpp", type=float, default=None,
                   help="µm per pixel of the masks (default: each slide's meta.json; required if absent)")
    p.add_argument("--out", type=Path, required=True, help="features.csv or features.parquet")
    p.add_argument("--objects", type=Path, default=None,
                   help="also write the per-object table (objects.parquet or .csv)")
    p.add_argument("--image-dir", type=Path, default=None,
                   help="folder of <slide_id>.png|.jpg|.tif RGB images at the masks' resolution "
                   "(adds haematoxylin/eosin intensity and GLCM texture features)")
    p.add_argument("--tile-size", type=int, default=None,
                   help="process slides in tiles of this many pixels (bounded memory; same results)")
    p.add_argument("--category", action="append", default=[], metavar="NAME",
                   help="accept this extra category name (repeatable)")
    p.set_defaults(func=cmd_features)

    q = subparsers.add_parser("list-features", help="print the declared feature table (name, unit, definition)")
    q.add_argument("--out", type=Path, default=None, help="write it as CSV instead of printing")
    q.set_defaults(func=cmd_list_features)


def cmd_features(args: argparse.Namespace) -> int:
    """Run ``pathxai features``."""
    from pathxai.features.compute import features_table, write_table

    if args.out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        from pathxai.exceptions import FeatureError

        raise FeatureError(f"--out {args.out}: use a .csv or .parquet file name")
    table = features_table(args.masks, mpp=args.mpp, image_dir=args.image_dir,
                           categories=args.category, tile_size=args.tile_size,
                           objects_out=args.objects)
    write_table(table, args.out)
    print(f"wrote {len(table)} slide(s) x {table.shape[1] - 1} features to {args.out}", file=sys.stderr)
    if args.objects is not None:
        print(f"wrote the per-object table to {args.objects}", file=sys.stderr)
    return 0


def cmd_list_features(args: argparse.Namespace) -> int:
    """Run ``pathxai list-features``."""
    from pathxai.features.registry import list_features

    table = list_features()
    if args.out is not None:
        table.to_csv(args.out, index=False)
    else:
        with_pd = table[["name", "unit", "level", "definition"]]
        print(with_pd.to_string(index=False, max_colwidth=90))
    return 0
