"""Whole-slide image I/O, tissue detection and tiling at a physical resolution.

Main entry points
-----------------
open_slide(path_or_array, mpp=None)
    A :class:`SlideReader` for OpenSlide formats, (OME-)TIFF, PNG/JPEG or numpy arrays.
tissue_mask(reader, mpp=8.0)
    Tissue vs glass (pen ink removed) at low resolution, as a :class:`TissueMask`.
iter_tiles(reader, mpp=..., tile_size=...)
    A generator of :class:`Tile` on tissue; ``tile_grid`` summarises it as a DataFrame.
write_pyramidal_tiff(path, render, ...)
    Write a tiled pyramidal TIFF tile by tile (synthetic test and benchmark slides).
"""

from pathxai.slides.opening import BACKENDS, open_slide
from pathxai.slides.reader import MPP_PLAUSIBLE_RANGE, SlideReader
from pathxai.slides.synthetic_tiff import write_pyramidal_tiff
from pathxai.slides.tiling import Tile, TileGrid, iter_tiles, plan_grid, tile_grid
from pathxai.slides.tissue import TissueMask, pen_mask, tissue_mask, tissue_mask_from_rgb

__all__ = [
    "BACKENDS",
    "MPP_PLAUSIBLE_RANGE",
    "SlideReader",
    "Tile",
    "TileGrid",
    "TissueMask",
    "iter_tiles",
    "open_slide",
    "pen_mask",
    "plan_grid",
    "tile_grid",
    "tissue_mask",
    "tissue_mask_from_rgb",
    "write_pyramidal_tiff",
]
