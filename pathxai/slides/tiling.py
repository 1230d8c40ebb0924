"""A regular grid of square tiles at a target µm/px, kept where there is enough tissue.

Grid definition: tiles are ``tile_size`` output pixels at ``mpp`` µm/px, i.e.
``size0 = tile_size * mpp / slide_mpp`` level-0 pixels; column ``c`` starts at level-0
``x = round(c * stride0)`` with ``stride0 = (tile_size - overlap) * mpp / slide_mpp``
(rows likewise). The grid starts at the slide's top-left corner and has just enough
columns and rows to cover the slide; the last column/row may hang over the edge (that
part reads as white glass) unless ``include_partial=False``. A tile is kept when its
tissue fraction (area-weighted from a low-resolution :class:`TissueMask`) is at least
``min_tissue``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from pathxai.exceptions import MissingMPPError
from pathxai.slides.reader import SlideReader
from pathxai.slides.tissue import TissueMask, tissue_mask

__all__ = ["Tile", "TileGrid", "iter_tiles", "tile_grid", "plan_grid"]


@dataclass(frozen=True)
class Tile:
    """One square tile of the grid.

    Attributes
    ----------
    index : int
        Position in row-major grid order (counting tiles that were not kept too).
    row, col : int
        Grid row and column.
    x, y : int
        Top-left corner in level-0 pixels.
    size_px : int
        Side in output pixels at :attr:`mpp`.
    size0 : float
        Side in level-0 pixels.
    mpp : float
        µm per output pixel.
    slide_mpp : float
        µm per level-0 pixel of the slide.
    tissue_fraction : float
        Tissue fraction in [0, 1] (NaN when no tissue mask was used).
    """

    index: int
    row: int
    col: int
    x: int
    y: int
    size_px: int
    size0: float
    mpp: float
    slide_mpp: float
    tissue_fraction: float

    @property
    def x_um(self) -> float:
        """Left edge in µm from the slide's left edge."""
        return self.x * self.slide_mpp

    @property
    def y_um(self) -> float:
        """Top edge in µm from the slide's top edge."""
        return self.y * self.slide_mpp

    @property
    def size_um(self) -> float:
        """Side length in µm."""
        return self.size_px * self.mpp

    def read(self, reader: SlideReader) -> np.ndarray:
        """The tile's pixels, ``(size_px, size_px, 3)`` uint8 at :attr:`mpp`."""
        downsample = self.mpp / self.slide_mpp
        return reader.read_region_downsample(
            (self.x, self.y), (self.size_px, self.size_px), downsample=downsample
        )

    def to_dict(self) -> dict[str, float]:
        """Fields and µm coordinates as a flat dict."""
        d = asdict(self)
        d.update(x_um=self.x_um, y_um=self.y_um, size_um=self.size_um)
        return d


@dataclass(frozen=True)
class TileGrid:
    """The full grid geometry (before the tissue filter).

    Attributes
    ----------
    n_rows, n_cols : int
        Grid shape.
    size0, stride0 : float
        Tile side and step in level-0 pixels.
    tile_size, overlap : int
        In output pixels.
    mpp, slide_mpp : float
        Output and level-0 µm per pixel.
    """

    n_rows: int
    n_cols: int
    size0: float
    stride0: float
    tile_size: int
    overlap: int
    mpp: float
    slide_mpp: float

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Level-0 ``(x, y)`` of the tile at ``(row, col)``."""
        return int(round(col * self.stride0)), int(round(row * self.stride0))


def plan_grid(
    reader: SlideReader,
    *,
    mpp: float,
    tile_size: int,
    overlap: int = 0,
    include_partial: bool = True,
) -> TileGrid:
    """Compute the grid geometry for a slide (see the module docstring).

    Parameters
    ----------
    reader : SlideReader
        The slide (µm/px known).
    mpp : float
        Output µm per pixel of each tile.
    tile_size : int
        Tile side in output pixels.
    overlap : int
        Overlap between neighbours in output pixels, ``0 <= overlap < tile_size``.
    include_partial : bool
        Keep a last column/row that hangs over the slide's edge.

    Returns
    -------
    TileGrid
    """
    slide_mpp = reader.mpp
    if slide_mpp is None:
        raise MissingMPPError(
            f"tiling at a µm/px needs the slide's µm/px, unknown for {reader.path or 'this image'};"
            " open it with open_slide(path, mpp=...)"
        )
    if not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
    if not float(tile_size).is_integer() or tile_size < 1:
        raise ValueError(f"tile_size must be a positive whole number of pixels, got {tile_size!r}")
    if not float(overlap).is_integer() or not 0 <= overlap < tile_size:
        raise ValueError(
            f"overlap must be a whole number in [0, tile_size={tile_size}), got {overlap!r}"
        )
    tile_size, overlap = int(tile_size), int(overlap)
    ds = mpp / slide_mpp
    size0 = tile_size * ds
    stride0 = (tile_size - overlap) * ds
    w0, h0 = reader.dimensions

    def count(extent: int) -> int:
        if include_partial:
            # enough tiles that the last one reaches the edge
            return max(1, math.ceil(max(extent - size0, 0) / stride0 - 1e-9) + 1)
        if extent < size0 - 1e-6:
            return 0
        return int(math.floor((extent - size0) / stride0 + 1e-9)) + 1

    return TileGrid(count(h0), count(w0), size0, stride0, tile_size, overlap, float(mpp),
                    float(slide_mpp))


def iter_tiles(
    reader: SlideReader,
    *,
    mpp: float,
    tile_size: int,
    overlap: int = 0,
    min_tissue: float = 0.25,
    tissue: TissueMask | None | Literal[False] = None,
    include_partial: bool = True,
) -> Iterator[Tile]:
    """Yield the tiles of a regular grid that hold enough tissue (a generator).

    Only coordinates are produced; call ``tile.read(reader)`` for pixels, so memory
    stays bounded by the tiles the caller keeps.

    Parameters
    ----------
    reader : SlideReader
        The slide (µm/px known).
    mpp : float
        Output µm per pixel (e.g. 0.5).
    tile_size : int
        Tile side in output pixels.
    overlap : int
        Overlap in output pixels.
    min_tissue : float
        Keep tiles whose tissue fraction is at least this, in [0, 1].
    tissue : TissueMask, None or False
        A precomputed mask; None computes one with :func:`tissue_mask`; False skips
        tissue detection (every tile kept, ``tissue_fraction`` NaN).
    include_partial : bool
        Keep tiles hanging over the right/bottom edge.

    Yields
    ------
    Tile
        In row-major order.
    """
    if not (isinstance(min_tissue, (int, float)) and 0.0 <= min_tissue <= 1.0):
        raise ValueError(f"min_tissue must be a fraction in [0, 1], got {min_tissue!r}")
    grid = plan_grid(reader, mpp=mpp, tile_size=tile_size, overlap=overlap,
                     include_partial=include_partial)
    if tissue is None:
        tissue = tissue_mask(reader, mpp=max(8.0, reader.mpp or 8.0))
    for row in range(grid.n_rows):
        for col in range(grid.n_cols):
            x, y = grid.origin(row, col)
            if tissue is False:
                frac = float("nan")
            else:
                frac = tissue.fraction_in(x, y, grid.size0, grid.size0)
                if frac < min_tissue:
                    continue
            yield Tile(
                index=row * grid.n_cols + col, row=row, col=col, x=x, y=y,
                size_px=grid.tile_size, size0=grid.size0, mpp=grid.mpp,
                slide_mpp=grid.slide_mpp, tissue_fraction=frac,
            )


def tile_grid(
    reader: SlideReader,
    *,
    mpp: float,
    tile_size: int,
    overlap: int = 0,
    min_tissue: float = 0.25,
    tissue: TissueMask | None | Literal[False] = None,
    include_partial: bool = True,
) -> pd.DataFrame:
    """The kept tiles of :func:`iter_tiles` as a table (one row per tile).

    Returns
    -------
    pandas.DataFrame
        Columns ``index, row, col, x, y, size_px, size0, mpp, slide_mpp,
        tissue_fraction, x_um, y_um, size_um``; ``attrs["grid"]`` holds the
        :class:`TileGrid`.
    """
    rows = [t.to_dict() for t in iter_tiles(
        reader, mpp=mpp, tile_size=tile_size, overlap=overlap, min_tissue=min_tissue,
        tissue=tissue, include_partial=include_partial,
    )]
    columns = ["index", "row", "col", "x", "y", "size_px", "size0", "mpp", "slide_mpp",
               "tissue_fraction", "x_um", "y_um", "size_um"]
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["grid"] = plan_grid(reader, mpp=mpp, tile_size=tile_size, overlap=overlap,
                                 include_partial=include_partial)
    return df
