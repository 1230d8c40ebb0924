"""The slide reader interface shared by every backend, and resampling to a target µm/px.

Coordinates follow OpenSlide: ``location`` is ``(x, y)`` in level-0 pixels, ``size`` is
``(width, height)`` in pixels of the level read. Arrays come back as ``(rows, cols, 3)``
RGB ``uint8``. Areas outside the slide are white (glass), never black.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pathxai.exceptions import MissingMPPError, SlideReadError

__all__ = ["SlideReader", "MPP_PLAUSIBLE_RANGE", "check_mpp", "to_rgb_uint8"]

#: Physically plausible µm per pixel at level 0 for a microscope slide scan. Values
#: outside (e.g. 352.78 µm/px = 72 dpi, a TIFF writer's default) are treated as unknown.
MPP_PLAUSIBLE_RANGE: tuple[float, float] = (0.05, 20.0)

# Largest source block (level pixels per side) decoded at once while resampling; keeps
# memory bounded (a 2048 x 2048 RGB block is 12 MiB) whatever the requested size.
_SRC_BLOCK = 2048


def check_mpp(value: Any, *, source: str, path: object = None) -> float | None:
    """Validate a µm/px value from metadata: a positive finite float in the plausible range.

    Parameters
    ----------
    value : Any
        The raw value (str, float, None).
    source : str
        Where it came from, for the warning (e.g. ``"openslide.mpp-x"``).
    path : object, optional
        The slide, for the warning.

    Returns
    -------
    float or None
        The mpp, or None (with a ``UserWarning``) when missing or implausible.
    """
    if value is None or value == "":
        return None
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        warnings.warn(
            f"{path}: ignoring non-numeric mpp {value!r} from {source}; pass mpp= to set it",
            UserWarning,
            stacklevel=3,
        )
        return None
    lo, hi = MPP_PLAUSIBLE_RANGE
    if not (math.isfinite(mpp) and lo <= mpp <= hi):
        warnings.warn(
            f"{path}: ignoring implausible mpp {mpp:g} µm/px from {source} (expected "
            f"{lo:g}-{hi:g} µm/px); treating mpp as unknown, pass mpp= to set it",
            UserWarning,
            stacklevel=3,
        )
        return None
    return mpp


def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a gray, gray+alpha, RGB or RGBA array (any integer/float dtype) to RGB uint8.

    Alpha is composited onto white (glass). 16-bit data are scaled by 1/257; floats are
    assumed to be in [0, 1].

    Parameters
    ----------
    arr : numpy.ndarray
        ``(h, w)``, ``(h, w, 1)``, ``(h, w, 2)``, ``(h, w, 3)`` or ``(h, w, 4)``.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 3)`` uint8.
    """
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (h, w[, 1-4]) image array, got shape {a.shape}")
    if a.dtype == np.uint8:
        a8 = a
    elif a.dtype == bool:
        a8 = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a8 = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.uint16:
        a8 = (a.astype(np.uint32) * 255 + 32767) // 65535
        a8 = a8.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        a8 = np.clip(a, 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")
    c = a8.shape[2]
    if c in (2, 4):
        color = a8[:, :, : c - 1].astype(np.uint16)
        alpha = a8[:, :, c - 1 :].astype(np.uint16)
        if c == 2:
            color = np.repeat(color, 3, axis=2)
        # composite on white: rgb * a + 255 * (1 - a), rounded
        out = (color * alpha + 255 * (255 - alpha) + 127) // 255
        return np.ascontiguousarray(out.astype(np.uint8))
    if c == 1:
        return np.ascontiguousarray(np.repeat(a8, 3, axis=2))
    return np.ascontiguousarray(a8)


def _pair(value: Sequence[float], name: str, *, integer: bool, positive: bool) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (x, y) / (w, h), got {value!r}") from None
    if integer:
        if not all(float(v).is_integer() for v in (a, b)):
            raise ValueError(f"{name} must hold whole pixel numbers, got {value!r}")
        a, b = int(a), int(b)
    else:
        a, b = float(a), float(b)
    if positive and (a <= 0 or b <= 0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return a, b


class SlideReader(ABC):
    """A whole-slide image (or plain image) opened for region reads.

    Use :func:`pathxai.slides.open_slide` to get one. Readers are context managers and
    picklable (a pickle stores the path and reopens it), so they can be passed to worker
    processes (multiprocessing, Dask).

    Attributes
    ----------
    path : pathlib.Path or None
        The file (None for an in-memory array).
    backend : str
        ``"openslide"``, ``"tifffile"``, ``"pillow"`` or ``"array"``.
    """

    backend: str = "base"

    def __init__(self, path: str | Path | None, *, mpp: float | None = None):
        self.path = None if path is None else Path(path)
        self._mpp_override = None if mpp is None else self._check_user_mpp(mpp)
        self._level_dimensions: list[tuple[int, int]] = []
        self._properties: dict[str, str] = {}
        self._vendor: str | None = None
        self._mpp_meta: float | None = None
        self._objective_power: float | None = None
        self._closed = False

    # ----------------------------------------------------------------- metadata
    @staticmethod
    def _check_user_mpp(mpp: float) -> float:
        try:
            value = float(mpp)
        except (TypeError, ValueError):
            raise ValueError(f"mpp must be a number (µm per pixel), got {mpp!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
        lo, hi = MPP_PLAUSIBLE_RANGE
        if not lo <= value <= hi:
            warnings.warn(
                f"mpp={value:g} µm/px is outside the usual range {lo:g}-{hi:g}; using it anyway",
                UserWarning,
                stacklevel=4,
            )
        return value

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0 in pixels."""
        return self._level_dimensions[0]

    @property
    def level_count(self) -> int:
        """Number of pyramid levels (1 for a plain image)."""
        return len(self._level_dimensions)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of every level, level 0 first."""
        return tuple(self._level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample factor of every level against level 0 (mean of the x and y ratios)."""
        w0, h0 = self._level_dimensions[0]
        return tuple((w0 / w + h0 / h) / 2.0 for w, h in self._level_dimensions)

    @property
    def mpp(self) -> float | None:
        """µm per pixel at level 0: the ``mpp=`` argument if given, else the metadata, else None."""
        return self._mpp_override if self._mpp_override is not None else self._mpp_meta

    @property
    def mpp_source(self) -> str:
        """Where :attr:`mpp` comes from: ``"argument"``, ``"metadata"`` or ``"unknown"``."""
        if self._mpp_override is not None:
            return "argument"
        return "metadata" if self._mpp_meta is not None else "unknown"

    @property
    def vendor(self) -> str | None:
        """Scanner format as reported by the backend (``aperio``, ``generic-tiff``, ``ome``...)."""
        return self._vendor

    @property
    def objective_power(self) -> float | None:
        """Objective magnification from the metadata, if recorded."""
        return self._objective_power

    @property
    def properties(self) -> dict[str, str]:
        """Backend metadata as a flat ``{name: value}`` dict (copy)."""
        return dict(self._properties)

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``pathxai slide-info`` prints)."""
        return {
            "path": None if self.path is None else str(self.path),
            "backend": self.backend,
            "vendor": self.vendor,
            "dimensions": list(self.dimensions),
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": [round(d, 6) for d in self.level_downsamples],
            "mpp": self.mpp,
            "mpp_source": self.mpp_source,
            "objective_power": self.objective_power,
        }

    # ---------------------------------------------------------------- backends
    @abstractmethod
    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Read a box lying fully inside ``level`` (level pixels) as ``(h, w, 3)`` uint8."""

    def _read_level_px(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Read ``(h, w, 3)`` uint8 at ``level`` from level-pixel ``(x, y)``; white outside."""
        lw, lh = self._level_dimensions[level]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, lw), min(y + h, lh)
        if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
            return self._read_box(level, x, y, w, h)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self._read_box(level, x0, y0, x1 - x0, y1 - y0)
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise SlideReadError(self.path or "<array>", "the reader is closed; open it again")

    def _check_level(self, level: int) -> int:
        if not float(level).is_integer() or not 0 <= int(level) < self.level_count:
            raise ValueError(
                f"level {level!r} does not exist; this slide has levels 0..{self.level_count - 1}"
            )
        return int(level)

    # ------------------------------------------------------------------ reading
    def read_region(
        self, location: Sequence[int], size: Sequence[int], *, level: int = 0
    ) -> np.ndarray:
        """Read a region at a pyramid level.

        Parameters
        ----------
        location : (int, int)
            ``(x, y)`` of the top-left corner in **level-0** pixels (as OpenSlide).
        size : (int, int)
            ``(width, height)`` in pixels of ``level``.
        level : int
            Pyramid level (0 = full resolution).

        Returns
        -------
        numpy.ndarray
            ``(height, width, 3)`` RGB uint8; areas outside the slide are white.

        Raises
        ------
        SlideReadError
            The file's data cannot be decoded (e.g. a corrupt tile).
        """
        self._check_open()
        x0, y0 = _pair(location, "location", integer=True, positive=False)
        w, h = _pair(size, "size", integer=True, positive=True)
        level = self._check_level(level)
        ds = self.level_downsamples[level]
        return self._read_level_px(level, math.floor(x0 / ds), math.floor(y0 / ds), w, h)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (0.1 % slack)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * 1.001 and d >= self.level_downsamples[best]:
                best = i
        return best

    def _require_mpp(self) -> float:
        if self.mpp is None:
            raise MissingMPPError(
                f"the µm/px of {self.path or 'this array'} is unknown (no usable metadata); "
                "open it with open_slide(path, mpp=...) giving the scan's µm per pixel "
                "(e.g. 0.25 at 40x, 0.5 at 20x)"
            )
        return self.mpp

    def read_region_mpp(
        self, location: Sequence[float], size: Sequence[int], *, mpp: float
    ) -> np.ndarray:
        """Read a region resampled to a physical resolution.

        The coarsest pyramid level at least as fine as ``mpp`` is read and resampled with
        an antialiasing Lanczos filter (no resampling when the level already matches).
        Large requests are processed in blocks, so memory stays bounded.

        Parameters
        ----------
        location : (float, float)
            ``(x, y)`` of the top-left corner in level-0 pixels.
        size : (int, int)
            ``(width, height)`` of the output in pixels at ``mpp``.
        mpp : float
            Output µm per pixel (e.g. 0.5 for "20x"). Finer than the scan is allowed
            (upsampled with a warning).

        Returns
        -------
        numpy.ndarray
            ``(height, width, 3)`` RGB uint8; the output covers
            ``width * mpp / self.mpp`` level-0 pixels horizontally.

        Raises
        ------
        MissingMPPError
            The slide's µm/px is unknown; reopen with ``open_slide(path, mpp=...)``.
        """
        self._check_open()
        base = self._require_mpp()
        target = self._check_user_mpp(mpp)
        return self.read_region_downsample(location, size, downsample=target / base)

    def read_region_downsample(
        self, location: Sequence[float], size: Sequence[int], *, downsample: float
    ) -> np.ndarray:
        """Like :meth:`read_region_mpp` with the scale given as a downsample of level 0.

        Parameters
        ----------
        location : (float, float)
            Top-left corner in level-0 pixels.
        size : (int, int)
            Output ``(width, height)``.
        downsample : float
            Level-0 pixels per output pixel (> 0).

        Returns
        -------
        numpy.ndarray
            ``(height, width, 3)`` uint8.
        """
        self._check_open()
        x0, y0 = _pair(location, "location", integer=False, positive=False)
        out_w, out_h = _pair(size, "size", integer=True, positive=True)
        if not (math.isfinite(downsample) and downsample > 0):
            raise ValueError(f"downsample must be a positive number, got {downsample!r}")
        if downsample < 0.999:
            warnings.warn(
                f"requested resolution is {1 / downsample:.2f}x finer than level 0; upsampling",
                UserWarning,
                stacklevel=3,
            )
        level = self.best_level_for_downsample(downsample)
        ds = self.level_downsamples[level]
        scale = downsample / ds  # level pixels per output pixel
        sx0, sy0 = x0 / ds, y0 / ds
        # fast path: no resampling needed
        if (
            abs(scale - 1.0) < 1e-6
            and abs(sx0 - round(sx0)) < 1e-6
            and abs(sy0 - round(sy0)) < 1e-6
        ):
            return self._read_level_px(level, round(sx0), round(sy0), out_w, out_h)
        out = np.empty((out_h, out_w, 3), dtype=np.uint8)
        block = max(16, int(_SRC_BLOCK / max(scale, 1.0)) - 16)
        margin = int(math.ceil(3 * max(scale, 1.0))) + 2  # Lanczos-3 support
        for oy in range(0, out_h, block):
            bh = min(block, out_h - oy)
            by0, by1 = sy0 + oy * scale, sy0 + (oy + bh) * scale
            iy0, iy1 = math.floor(by0) - margin, math.ceil(by1) + margin
            for ox in range(0, out_w, block):
                bw = min(block, out_w - ox)
                bx0, bx1 = sx0 + ox * scale, sx0 + (ox + bw) * scale
                ix0, ix1 = math.floor(bx0) - margin, math.ceil(bx1) + margin
                src = self._read_level_px(level, ix0, iy0, ix1 - ix0, iy1 - iy0)
                img = Image.fromarray(src).resize(
                    (bw, bh),
                    resample=Image.Resampling.LANCZOS,
                    box=(bx0 - ix0, by0 - iy0, bx1 - ix0, by1 - iy0),
                )
                out[oy : oy + bh, ox : ox + bw] = np.asarray(img)
        return out

    def thumbnail(self, max_size: int | Sequence[int] = 1024) -> np.ndarray:
        """The whole slide, downsampled to fit ``max_size`` and keeping its aspect ratio.

        Parameters
        ----------
        max_size : int or (int, int)
            Largest output side, or the ``(width, height)`` box to fit into.

        Returns
        -------
        numpy.ndarray
            ``(h, w, 3)`` uint8 with ``w <= max_w`` and ``h <= max_h``.
        """
        if isinstance(max_size, (int, np.integer)):
            mw = mh = int(max_size)
        else:
            mw, mh = _pair(max_size, "max_size", integer=True, positive=True)
        if mw <= 0 or mh <= 0:
            raise ValueError(f"max_size must be positive, got {max_size!r}")
        w0, h0 = self.dimensions
        ds = max(w0 / mw, h0 / mh, 1.0)
        out_w, out_h = max(1, round(w0 / ds)), max(1, round(h0 / ds))
        return self.read_region_downsample((0, 0), (out_w, out_h), downsample=ds)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Release the file handle (reading afterwards raises SlideReadError)."""
        self._closed = True

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "mpp": self._mpp_override}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fresh = type(self)(state["path"], mpp=state["mpp"])
        self.__dict__.update(fresh.__dict__)
        fresh.__dict__ = {}

    def __repr__(self) -> str:
        w, h = self.dimensions if self._level_dimensions else (0, 0)
        mpp = "unknown" if self.mpp is None else f"{self.mpp:g}"
        where = "<array>" if self.path is None else str(self.path)
        return (
            f"{type(self).__name__}({where!r}, backend={self.backend!r}, vendor={self.vendor!r}, "
            f"dimensions=({w}, {h}), levels={self.level_count}, mpp={mpp})"
        )
