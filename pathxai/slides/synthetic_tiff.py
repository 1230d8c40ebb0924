"""Write small or very large pyramidal tiled TIFFs with known content (tests, benchmarks).

Content comes from a ``render(x, y, w, h, downsample)`` callback, evaluated tile by tile
for every level, so writing a 40 000 x 40 000 slide needs memory for a few tiles only.
µm/px is stored in the resolution tags (pixels per centimetre, read by OpenSlide and
tifffile) and as JSON in the ImageDescription.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["write_pyramidal_tiff", "array_renderer", "checker_renderer", "downsample_box"]

Renderer = Callable[[int, int, int, int, float], np.ndarray]


def array_renderer(image: np.ndarray) -> Renderer:
    """Render levels from an in-memory ``(H, W, 3)`` uint8 image (box-filter downsampling).

    Level ``k`` pixel ``(r, c)`` is the mean of the level-0 block
    ``[r*d:(r+1)*d, c*d:(c+1)*d]`` for integer ``d = 2**k`` (edges clipped).
    """
    img = np.ascontiguousarray(image, dtype=np.uint8)
    cache: dict[int, np.ndarray] = {}

    def level_image(d: int) -> np.ndarray:
        if d not in cache:
            h, w = img.shape[:2]
            lh, lw = math.ceil(h / d), math.ceil(w / d)
            pad = np.pad(img.astype(np.float64), ((0, lh * d - h), (0, lw * d - w), (0, 0)))
            weight = np.pad(np.ones((h, w)), ((0, lh * d - h), (0, lw * d - w)))
            s = pad.reshape(lh, d, lw, d, 3).sum(axis=(1, 3))
            n = weight.reshape(lh, d, lw, d).sum(axis=(1, 3))[..., None]
            cache[d] = np.round(s / n).astype(np.uint8)
        return cache[d]

    def render(x: int, y: int, w: int, h: int, downsample: float) -> np.ndarray:
        lvl = level_image(int(round(downsample)))
        out = np.full((h, w, 3), 255, np.uint8)
        part = lvl[y : y + h, x : x + w]
        out[: part.shape[0], : part.shape[1]] = part
        return out

    return render


def checker_renderer(period_um: float, mpp: float, *, seed: int = 0) -> Renderer:
    """A procedural H&E-coloured pattern: pink/purple checkerboard of ``period_um`` squares
    with a fixed random texture, on a white background outside a central ellipse.

    Cheap to evaluate at any level, so huge slides can be generated tile by tile.
    """
    rng = np.random.default_rng(seed)
    noise = rng.integers(-12, 13, size=(64, 64, 3)).astype(np.int16)
    pink = np.array([232, 160, 200], np.int16)
    purple = np.array([120, 80, 170], np.int16)

    def render(x: int, y: int, w: int, h: int, downsample: float) -> np.ndarray:
        # pixel centres in level-0 coordinates, then µm
        xs = (x + np.arange(w) + 0.5) * downsample * mpp
        ys = (y + np.arange(h) + 0.5) * downsample * mpp
        cx = ((xs // period_um).astype(np.int64) % 2)[None, :]
        cy = ((ys // period_um).astype(np.int64) % 2)[:, None]
        color = np.where(((cx + cy) % 2 == 0)[..., None], pink, purple)
        tex = noise[(y + np.arange(h))[:, None] % 64, (x + np.arange(w))[None, :] % 64]
        img = np.clip(color + tex, 0, 255).astype(np.uint8)
        return img

    return render


def write_pyramidal_tiff(
    path: str | Path,
    render: Renderer,
    *,
    width: int,
    height: int,
    mpp: float,
    tile: int = 256,
    n_levels: int | None = None,
    compression: Literal["jpeg", "deflate", "none"] = "deflate",
    subifds: bool = False,
    tissue_box: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write a tiled pyramidal RGB TIFF, tile by tile.

    Parameters
    ----------
    path : str or Path
        Output file.
    render : callable
        ``render(x, y, w, h, downsample) -> (h, w, 3) uint8`` for the box at level
        pixel ``(x, y)`` of the level with integer ``downsample`` (1, 2, 4, ...).
    width, height : int
        Level-0 size in pixels.
    mpp : float
        µm per level-0 pixel (written to the resolution tags and the description).
    tile : int
        Tile side (multiple of 16).
    n_levels : int, optional
        Levels (each half the previous); default until the level fits in one tile.
    compression : {"jpeg", "deflate", "none"}
        Tile compression (JPEG quality 90).
    subifds : bool
        Store reduced levels as SubIFDs of level 0 (OME-style) instead of as following
        pages (the layout OpenSlide's generic-tiff reader understands).
    tissue_box : (x0, y0, x1, y1), optional
        Level-0 box outside which pixels are white (glass).

    Returns
    -------
    Path
    """
    import tifffile

    path = Path(path)
    if n_levels is None:
        n_levels = 1
        while max(width, height) / 2 ** (n_levels - 1) > tile:
            n_levels += 1
    comp = {"jpeg": ("jpeg", 90), "deflate": ("zlib", 6), "none": (None, None)}[compression]
    sizes = [(math.ceil(width / 2**k), math.ceil(height / 2**k)) for k in range(n_levels)]

    def tiles(level: int) -> Iterator[np.ndarray]:
        d = 2**level
        lw, lh = sizes[level]
        for ty in range(0, lh, tile):
            for tx in range(0, lw, tile):
                arr = np.full((tile, tile, 3), 255, np.uint8)
                bw, bh = min(tile, lw - tx), min(tile, lh - ty)
                if tissue_box is not None:
                    x0, y0, x1, y1 = (v / d for v in tissue_box)
                    if tx >= x1 or ty >= y1 or tx + bw <= x0 or ty + bh <= y0:
                        yield arr  # all glass: nothing to render
                        continue
                arr[:bh, :bw] = render(tx, ty, bw, bh, float(d))
                if tissue_box is not None:
                    cols = tx + np.arange(tile) + 0.5
                    rws = ty + np.arange(tile) + 0.5
                    inside = ((rws >= y0) & (rws < y1))[:, None] & ((cols >= x0) & (cols < x1))
                    arr[~inside] = 255
                yield arr

    res = (1e4 / mpp, 1e4 / mpp)
    desc = json.dumps({"mpp": mpp, "generator": "pathxai.slides.synthetic_tiff"})
    common = dict(
        dtype=np.uint8, tile=(tile, tile), photometric="rgb", compression=comp[0],
        compressionargs=None if comp[1] is None else {"level": comp[1]},
        resolution=res, resolutionunit="CENTIMETER", metadata=None,
    )
    with tifffile.TiffWriter(path, bigtiff=width * height * 3 > 2**31) as tif:
        tif.write(tiles(0), shape=(sizes[0][1], sizes[0][0], 3), description=desc,
                  subifds=n_levels - 1 if subifds else None, **common)
        for k in range(1, n_levels):
            lw, lh = sizes[k]
            tif.write(tiles(k), shape=(lh, lw, 3),
                      subfiletype=1, resolution=(res[0] / 2**k, res[1] / 2**k),
                      **{key: v for key, v in common.items() if key != "resolution"})
    return path


def downsample_box(image: np.ndarray, d: int) -> np.ndarray:
    """Mean of ``d x d`` blocks (reference for tests); partial edge blocks averaged."""
    return array_renderer(image)(0, 0, math.ceil(image.shape[1] / d),
                                 math.ceil(image.shape[0] / d), float(d))
