"""``pathxai slide-info`` and ``pathxai tiles``: inspect a slide and plan its tile grid."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pathxai.exceptions import PathXAIError, SlideReadError

__all__ = ["register", "cmd_slide_info", "cmd_tiles", "draw_grid"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``slide-info`` and ``tiles`` sub-commands."""
    p = subparsers.add_parser(
        "slide-info",
        help="print a slide's dimensions, levels, µm/px and vendor as JSON",
        description="Open a slide, check that pixels decode, print its metadata as JSON. "
        "A file that cannot be read gives one error line and exit code 2.",
    )
    p.add_argument("path", help="slide or image file")
    p.add_argument("--mpp", type=float, default=None,
                   help="µm per pixel at level 0 (overrides the file's metadata)")
    p.add_argument("--no-check", action="store_true",
                   help="do not decode a test region (metadata only)")
    p.set_defaults(func=cmd_slide_info)

    t = subparsers.add_parser(
        "tiles",
        help="tile grid on tissue at a µm/px: JSON summary, thumbnail with the grid, CSV",
        description="Detect tissue, lay a tile grid at --mpp, keep tiles with enough tissue; "
        "print a JSON summary and write <stem>_tiles.png (thumbnail with the grid) and "
        "<stem>_tiles.csv to --out.",
    )
    t.add_argument("path", help="slide or image file")
    t.add_argument("--mpp", type=float, required=True, help="tile resolution, µm per pixel")
    t.add_argument("--size", type=int, required=True, help="tile side in pixels at --mpp")
    t.add_argument("--overlap", type=int, default=0, help="overlap in pixels at --mpp")
    t.add_argument("--min-tissue", type=float, default=0.25,
                   help="keep tiles with at least this tissue fraction (default 0.25)")
    t.add_argument("--slide-mpp", type=float, default=None,
                   help="µm per pixel at level 0 when the file does not record it")
    t.add_argument("--out", type=Path, default=Path("."),
                   help="folder for the thumbnail PNG and tiles CSV (default: .)")
    t.set_defaults(func=cmd_tiles)


def _open(path: str, mpp: float | None) -> tuple[Any, list[str]]:
    from pathxai.slides import open_slide

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reader = open_slide(path, mpp=mpp)
        except PathXAIError:
            raise
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            raise SlideReadError(path, f"unexpected error while opening: {exc}") from None
    return reader, [str(w.message) for w in caught]


def _probe(reader: Any) -> None:
    """Decode a small region at the lowest level's centre (finds corrupt tiles early)."""
    level = reader.level_count - 1
    lw, lh = reader.level_dimensions[level]
    w, h = min(lw, 256), min(lh, 256)
    ds = reader.level_downsamples[level]
    x0 = int(((lw - w) // 2) * ds)
    y0 = int(((lh - h) // 2) * ds)
    try:
        reader.read_region((x0, y0), (w, h), level=level)
    except PathXAIError:
        raise
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        raise SlideReadError(reader.path, f"cannot decode pixels: {exc}") from None


def cmd_slide_info(args: argparse.Namespace) -> int:
    """``pathxai slide-info PATH [--mpp X]``."""
    reader, notes = _open(args.path, args.mpp)
    with reader:
        if not args.no_check:
            _probe(reader)
        info = reader.info()
    info["warnings"] = notes
    print(json.dumps(info, indent=2))
    return 0


def draw_grid(thumb: np.ndarray, scale: float, tiles: Any, tissue: Any = None) -> np.ndarray:
    """Draw tile squares (and the tissue mask tint) on a thumbnail.

    Parameters
    ----------
    thumb : numpy.ndarray
        ``(h, w, 3)`` uint8 thumbnail.
    scale : float
        Thumbnail pixels per level-0 pixel.
    tiles : pandas.DataFrame
        With columns ``x, y, size0`` (level-0 px).
    tissue : TissueMask, optional
        Tinted green where tissue, blue where pen ink.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 3)`` uint8.
    """
    from PIL import Image, ImageDraw

    img = thumb.astype(np.float32)
    if tissue is not None:
        h, w = thumb.shape[:2]
        m = np.asarray(Image.fromarray(tissue.mask.astype(np.uint8) * 255).resize(
            (w, h), Image.Resampling.NEAREST)) > 0
        img[m] = img[m] * 0.75 + np.array([0, 255, 0]) * 0.25
        if tissue.pen is not None and tissue.pen.any():
            p = np.asarray(Image.fromarray(tissue.pen.astype(np.uint8) * 255).resize(
                (w, h), Image.Resampling.NEAREST)) > 0
            img[p] = img[p] * 0.5 + np.array([0, 0, 255]) * 0.5
    pil = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for x, y, s in zip(tiles["x"], tiles["y"], tiles["size0"]):
        draw.rectangle([x * scale, y * scale, (x + s) * scale - 1, (y + s) * scale - 1],
                       outline=(20, 20, 20))
    return np.asarray(pil)


def cmd_tiles(args: argparse.Namespace) -> int:
    """``pathxai tiles PATH --mpp X --size N [--overlap N] [--min-tissue F] [--out DIR]``."""
    from PIL import Image

    from pathxai.slides.tiling import plan_grid, tile_grid
    from pathxai.slides.tissue import tissue_mask

    reader, notes = _open(args.path, args.slide_mpp)
    with reader:
        if reader.mpp is None:
            raise SlideReadError(
                args.path,
                "its µm/px is unknown (no usable metadata); give it with --slide-mpp "
                "(e.g. 0.25 at 40x, 0.5 at 20x)",
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                grid = plan_grid(reader, mpp=args.mpp, tile_size=args.size, overlap=args.overlap)
                tissue = tissue_mask(reader, mpp=max(8.0, reader.mpp))
                table = tile_grid(reader, mpp=args.mpp, tile_size=args.size,
                                  overlap=args.overlap, min_tissue=args.min_tissue,
                                  tissue=tissue)
                thumb = reader.thumbnail(1024)
            except ValueError as exc:
                print(f"pathxai tiles: error: {exc}", file=sys.stderr)
                return 2
        notes += [str(w.message) for w in caught]
        w0, _ = reader.dimensions
        scale = thumb.shape[1] / w0
        out_dir = Path(args.out)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"pathxai tiles: error: cannot create --out {out_dir}: {exc}", file=sys.stderr)
            return 2
        stem = Path(args.path).name.split(".")[0]
        png = out_dir / f"{stem}_tiles.png"
        csv = out_dir / f"{stem}_tiles.csv"
        Image.fromarray(draw_grid(thumb, scale, table, tissue)).save(png)
        table.to_csv(csv, index=False)
        tile_um = args.size * args.mpp
        summary = {
            "path": str(reader.path),
            "slide_mpp": reader.mpp,
            "tile_mpp": args.mpp,
            "tile_size_px": args.size,
            "tile_size_um": tile_um,
            "overlap_px": args.overlap,
            "min_tissue": args.min_tissue,
            "grid": {"n_rows": grid.n_rows, "n_cols": grid.n_cols,
                     "n_positions": grid.n_rows * grid.n_cols,
                     "stride_level0_px": grid.stride0, "tile_level0_px": grid.size0},
            "n_tiles": int(len(table)),
            "tissue_area_mm2": round(tissue.area_mm2, 4),
            "tissue_fraction": round(tissue.fraction, 4),
            "tiled_area_mm2": round(len(table) * (tile_um / 1000.0) ** 2, 4),
            "mean_tile_tissue_fraction": (
                None if table.empty or math.isnan(table["tissue_fraction"].mean())
                else round(float(table["tissue_fraction"].mean()), 4)),
            "thumbnail": str(png),
            "tiles_csv": str(csv),
            "warnings": notes,
        }
    print(json.dumps(summary, indent=2))
    return 0
