"""Tissue detection at low resolution: stained tissue vs glass, with pen ink removed.

Definition used here (documented so results can be compared):

1. The slide is read at ``mpp`` µm/px (default 8 µm/px; a 0.25 µm/px scan is read from
   its pyramid level closest to 32x downsampling).
2. A pixel is a *tissue candidate* when its HSV saturation exceeds a threshold (Otsu on
   the saturation histogram, clipped to ``[0.05, 0.10]`` so that an all-glass or an
   all-tissue image is not split in two) and its mean optical density
   ``OD = -log10((I + 1) / 256)`` exceeds ``min_od`` (glass is ~0.03).
3. Pen ink is removed (:func:`pen_mask`): on the image smoothed over ~8 µm, pixels
   matching the red, green and blue marker colour rules of the deep-histopath filters
   (IBM CODAIT, Apache-2.0, also used by histolab), saturated pure red (eosin is
   magenta-pink) and very dark ink; they are dilated by ``pen_margin_um`` and excluded.
4. Morphological clean-up in physical units: closing with a disk of radius
   ``closing_um``, removal of objects smaller than ``min_object_um2`` and filling of
   enclosed holes smaller than ``max_hole_um2`` (fat vacuoles, lumina) inside tissue.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology
from skimage.filters import threshold_otsu

from pathxai.exceptions import MissingMPPError
from pathxai.slides.reader import SlideReader

# rows processed at once by the per-pixel stages
_BAND_ROWS = 256

__all__ = ["TissueMask", "tissue_mask", "tissue_mask_from_rgb", "pen_mask"]

# (R, G, B) limits from deep-histopath's filter_red_pen / filter_green_pen / filter_blue_pen.
# red: R > r and G < g and B < b
_RED_PEN = [(150, 80, 90), (110, 20, 30), (185, 65, 105), (195, 85, 125), (220, 115, 145),
            (125, 40, 70), (200, 120, 150), (100, 50, 65), (85, 25, 45)]
# green: R < r and G > g and B > b
_GREEN_PEN = [(150, 160, 140), (70, 110, 110), (45, 115, 100), (30, 75, 60), (195, 220, 210),
              (225, 230, 225), (170, 210, 200), (20, 30, 20), (50, 60, 40), (30, 50, 35),
              (65, 70, 60), (100, 110, 105), (165, 180, 180), (140, 140, 150), (185, 195, 195)]
# blue: R < r and G < g and B > b
_BLUE_PEN = [(60, 120, 190), (120, 170, 200), (175, 210, 230), (145, 180, 210), (37, 95, 160),
             (30, 65, 130), (130, 155, 180), (40, 35, 85), (30, 20, 65), (90, 90, 140),
             (60, 60, 120), (110, 110, 175)]


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask of a whole slide at low resolution.

    Attributes
    ----------
    mask : numpy.ndarray
        ``(rows, cols)`` bool, True = tissue. Pixel ``(r, c)`` covers level-0 pixels
        ``[c * downsample, (c + 1) * downsample)`` horizontally (same for rows).
    mpp : float or None
        µm per mask pixel (None when the slide's µm/px is unknown).
    downsample : float
        Level-0 pixels per mask pixel.
    pen : numpy.ndarray or None
        ``(rows, cols)`` bool, pen ink found (already excluded from ``mask``).
    threshold : float
        The saturation threshold used.
    """

    mask: np.ndarray
    mpp: float | None
    downsample: float
    pen: np.ndarray | None = field(default=None, repr=False)
    threshold: float = float("nan")

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the mask."""
        return self.mask.shape

    @property
    def fraction(self) -> float:
        """Fraction of the slide area that is tissue, in [0, 1]."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def area_mm2(self) -> float:
        """Tissue area in mm² (needs a known mpp)."""
        if self.mpp is None:
            raise MissingMPPError("the tissue area needs the slide's µm/px; open it with mpp=...")
        return float(self.mask.sum()) * (self.mpp / 1000.0) ** 2

    def fraction_in(self, x: float, y: float, w: float, h: float) -> float:
        """Tissue fraction inside a level-0 box, weighting partly covered mask pixels.

        Parameters
        ----------
        x, y : float
            Top-left corner in level-0 pixels.
        w, h : float
            Box size in level-0 pixels.

        Returns
        -------
        float
            Area-weighted tissue fraction in [0, 1]; outside the mask counts as glass.
        """
        d = self.downsample
        c0, c1 = x / d, (x + w) / d
        r0, r1 = y / d, (y + h) / d
        rows, cols = self.mask.shape
        ic0, ic1 = max(math.floor(c0), 0), min(math.ceil(c1), cols)
        ir0, ir1 = max(math.floor(r0), 0), min(math.ceil(r1), rows)
        if ic1 <= ic0 or ir1 <= ir0:
            return 0.0
        sub = self.mask[ir0:ir1, ic0:ic1].astype(np.float64)
        wx = np.minimum(np.arange(ic0, ic1) + 1, c1) - np.maximum(np.arange(ic0, ic1), c0)
        wy = np.minimum(np.arange(ir0, ir1) + 1, r1) - np.maximum(np.arange(ir0, ir1), r0)
        covered = float(wy @ sub @ wx)
        return covered / ((c1 - c0) * (r1 - r0))


def _hsv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (degrees), saturation and value (0-1) as float32, like skimage's rgb2hsv but
    without float64 temporaries (masks of large slides stay light)."""
    img = np.asarray(img, dtype=np.float32)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    vmax = np.maximum(np.maximum(r, g), b)
    vmin = np.minimum(np.minimum(r, g), b)
    delta = vmax - vmin
    with np.errstate(invalid="ignore", divide="ignore"):
        sat = np.where(vmax > 0, delta / vmax, 0.0).astype(np.float32)
        safe = np.where(delta > 0, delta, 1.0)
        hue = np.where(vmax == r, ((g - b) / safe) % 6.0,
                       np.where(vmax == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = np.where(delta > 0, hue * 60.0, 0.0).astype(np.float32)
    return hue, sat, (vmax / 255.0).astype(np.float32)


def _ink_rules(img: np.ndarray) -> np.ndarray:
    """The per-pixel ink colour rules of :func:`pen_mask` on a float32 RGB band."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    hue, sat, val = _hsv(np.clip(img, 0, 255))
    red = np.zeros(img.shape[:2], dtype=bool)
    for rt, gt, bt in _RED_PEN:
        red |= (r > rt) & (g < gt) & (b < bt)
    green = np.zeros_like(red)
    for rt, gt, bt in _GREEN_PEN:
        green |= (r < rt) & (g > gt) & (b > bt)
    blue = np.zeros_like(red)
    for rt, gt, bt in _BLUE_PEN:
        blue |= (r < rt) & (g < gt) & (b > bt)
    # hue guards keep strongly stained H&E out: eosin is magenta-pink (~300-340 deg),
    # haematoxylin violet (~250-300 deg)
    pure_red = (hue >= 340.0) | (hue <= 20.0)
    out = red & pure_red
    out |= green & (hue >= 80.0) & (hue <= 200.0)
    out |= blue & (hue >= 190.0) & (hue <= 250.0)
    out |= ((hue >= 345.0) | (hue <= 20.0)) & (sat > 0.3)
    out |= val < 0.3
    return out


def pen_mask(rgb: np.ndarray, *, mpp: float | None = None, smooth_um: float = 8.0,
             min_area_um2: float = 2_000.0) -> np.ndarray:
    """Pixels that look like marker ink (red, green, blue, blue-black).

    Rules, applied to the image smoothed with a Gaussian of ``smooth_um`` (so single
    nuclei or red cells do not match; ink covers large smooth areas):

    * the deep-histopath RGB limits for red, green and blue pens, each restricted to
      its ink's hue (red 340-20, green 80-200, blue 190-250 degrees) so strongly
      stained eosin (~300-340) and haematoxylin (~250-300) are not taken for ink;
    * saturated pure red (hue 345-20 degrees, saturation > 0.3): eosin is magenta-pink
      (hue ~ 320-340 degrees), so red ink is told apart by its hue (haemorrhage, which is
      also pure red, can be flagged too);
    * very dark blue-black ink (HSV value < 0.3 after smoothing).

    Ink areas smaller than ``min_area_um2`` are dropped.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(h, w, 3)`` uint8.
    mpp : float, optional
        µm per pixel of ``rgb``; without it no smoothing or area filter is applied.
    smooth_um, min_area_um2 : float
        Smoothing scale (µm) and smallest ink area (µm²).

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` bool.
    """
    rgb = np.asarray(rgb)
    sigma = smooth_um / mpp if (mpp is not None and smooth_um > 0) else 0.0
    halo = int(math.ceil(4.0 * sigma))  # gaussian_filter truncates at 4 sigma: bands are exact
    out = np.zeros(rgb.shape[:2], dtype=bool)
    n_rows = rgb.shape[0]
    for r0 in range(0, n_rows, _BAND_ROWS):
        r1 = min(n_rows, r0 + _BAND_ROWS)
        a0, a1 = max(0, r0 - halo), min(n_rows, r1 + halo)
        img = rgb[a0:a1].astype(np.float32)
        if sigma > 0:
            img = ndi.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest")
        out[r0:r1] = _ink_rules(img[r0 - a0 : r1 - a0])
    if mpp is not None and min_area_um2 > 0:
        out = morphology.remove_small_objects(out, max_size=max(1, int(min_area_um2 / mpp**2)))
    return out


def _fill_enclosed_holes(mask: np.ndarray, max_area_px: int) -> np.ndarray:
    """Fill holes that do not touch the image border and are at most ``max_area_px``."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    labels, n = ndi.label(holes)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes <= max_area_px
    small[0] = False
    return mask | small[labels]


def _disk(radius_px: float) -> np.ndarray:
    return morphology.disk(max(1, int(round(radius_px))))


def tissue_mask_from_rgb(
    rgb: np.ndarray,
    *,
    mpp: float,
    min_od: float = 0.05,
    saturation_range: tuple[float, float] = (0.05, 0.10),
    remove_pen: bool = True,
    pen_margin_um: float = 24.0,
    closing_um: float = 16.0,
    min_object_um2: float = 20_000.0,
    max_hole_um2: float = 200_000.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Tissue mask of an RGB image at ``mpp`` µm/px (see the module docstring).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(h, w, 3)`` uint8.
    mpp : float
        µm per pixel of ``rgb`` (sets the morphology sizes).
    min_od : float
        Minimum mean optical density of tissue.
    saturation_range : (float, float)
        Bounds the Otsu saturation threshold is clipped to.
    remove_pen : bool
        Exclude marker ink.
    pen_margin_um, closing_um : float
        Dilation of the ink mask and closing radius, µm.
    min_object_um2, max_hole_um2 : float
        Smallest tissue piece kept and largest hole filled, µm².

    Returns
    -------
    mask : numpy.ndarray
        ``(h, w)`` bool tissue.
    pen : numpy.ndarray
        ``(h, w)`` bool ink (zeros when ``remove_pen`` is False).
    threshold : float
        Saturation threshold used.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    px_area = mpp * mpp
    # per-pixel maps in row bands (1 byte per pixel kept), so big masks stay light
    lut = -np.log10((np.arange(256, dtype=np.float32) + 1.0) / 256.0)  # OD per grey value
    sat_q = np.empty(rgb.shape[:2], dtype=np.uint8)  # saturation * 255
    od_ok = np.empty(rgb.shape[:2], dtype=bool)
    for r0 in range(0, rgb.shape[0], _BAND_ROWS):
        band = rgb[r0 : r0 + _BAND_ROWS]
        _, sat, _ = _hsv(band)
        sat_q[r0 : r0 + _BAND_ROWS] = np.round(sat * 255.0).astype(np.uint8)
        od = (lut[band[..., 0]] + lut[band[..., 1]] + lut[band[..., 2]]) / 3.0
        od_ok[r0 : r0 + _BAND_ROWS] = od > min_od
    lo, hi = saturation_range
    hist = np.bincount(sat_q.ravel(), minlength=256)
    if np.count_nonzero(hist) > 1:
        otsu = float(threshold_otsu(hist=(hist, np.arange(256) / 255.0)))
    else:
        otsu = hi
    thr = float(np.clip(otsu, lo, hi))
    cand = (sat_q > thr * 255.0) & od_ok
    pen = np.zeros_like(cand)
    if remove_pen:
        pen = pen_mask(rgb, mpp=mpp)
        if pen.any():
            pen = ndi.binary_dilation(pen, structure=_disk(pen_margin_um / mpp))
        cand &= ~pen
    mask = ndi.binary_closing(cand, structure=_disk(closing_um / mpp), border_value=0)
    # binary_closing with border 0 erodes at the image edge; restore candidates there
    mask |= cand
    if remove_pen:
        mask &= ~pen
    mask = morphology.remove_small_objects(mask, max_size=max(1, int(min_object_um2 / px_area)))
    mask = _fill_enclosed_holes(mask, max(1, int(max_hole_um2 / px_area)))
    if remove_pen:
        mask &= ~pen
    return mask, pen, thr


def tissue_mask(
    reader: SlideReader,
    *,
    mpp: float = 8.0,
    remove_pen: bool = True,
    **kwargs: float,
) -> TissueMask:
    """Detect tissue on a whole slide at low resolution.

    Parameters
    ----------
    reader : SlideReader
        An open slide (its µm/px must be known: ``open_slide(path, mpp=...)``).
    mpp : float
        µm per mask pixel (default 8: a 40 000 px wide 0.25 µm/px slide gives a
        1 250 px wide mask). Never finer than the slide itself.
    remove_pen : bool
        Exclude marker ink.
    **kwargs
        Passed to :func:`tissue_mask_from_rgb` (``min_od``, ``closing_um``,
        ``min_object_um2``, ``max_hole_um2``, ...).

    Returns
    -------
    TissueMask

    Raises
    ------
    MissingMPPError
        The slide's µm/px is unknown.
    """
    base = reader.mpp
    if base is None:
        raise MissingMPPError(
            f"tissue detection works in µm but the µm/px of {reader.path or 'this image'} is "
            "unknown; open it with open_slide(path, mpp=...)"
        )
    if not (math.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
    if mpp < base:
        warnings.warn(
            f"tissue mask mpp {mpp:g} is finer than the slide ({base:g} µm/px); using {base:g}",
            UserWarning,
            stacklevel=2,
        )
        mpp = base
    downsample = mpp / base
    w0, h0 = reader.dimensions
    out_w, out_h = max(1, math.ceil(w0 / downsample)), max(1, math.ceil(h0 / downsample))
    rgb = reader.read_region_downsample((0, 0), (out_w, out_h), downsample=downsample)
    mask, pen, thr = tissue_mask_from_rgb(rgb, mpp=mpp, remove_pen=remove_pen, **kwargs)
    return TissueMask(mask=mask, mpp=mpp, downsample=downsample,
                      pen=pen if remove_pen else None, threshold=thr)
