"""OpenSlide backend: Aperio SVS, Hamamatsu NDPI/VMS, MIRAX, Leica SCN, generic tiled TIFF, DICOM."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pathxai.exceptions import SlideReadError
from pathxai.slides.reader import SlideReader, _pair, check_mpp, to_rgb_uint8

__all__ = ["OpenSlideReader", "openslide_format"]


def _openslide():
    import openslide  # imported lazily: loads the C library

    return openslide


def openslide_format(path: str | Path) -> str | None:
    """The OpenSlide vendor name for ``path`` (``"aperio"``, ...) or None if not recognised."""
    try:
        return _openslide().OpenSlide.detect_format(str(path))
    except Exception:  # noqa: BLE001 - detection must never raise
        return None


class OpenSlideReader(SlideReader):
    """A slide read through OpenSlide (``openslide-python`` + ``openslide-bin``)."""

    backend = "openslide"

    def __init__(self, path: str | Path, *, mpp: float | None = None):
        super().__init__(path, mpp=mpp)
        openslide = _openslide()
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise SlideReadError(self.path, "unsupported format (OpenSlide)") from None
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise SlideReadError(self.path, f"OpenSlide cannot open it: {exc}") from None
        try:
            props = dict(self._osr.properties)
            self._level_dimensions = [tuple(map(int, d)) for d in self._osr.level_dimensions]
            self._downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        except openslide.OpenSlideError as exc:
            raise SlideReadError(self.path, f"OpenSlide cannot read its metadata: {exc}") from None
        if not self._level_dimensions or min(min(d) for d in self._level_dimensions) <= 0:
            raise SlideReadError(self.path, "OpenSlide reports no image levels")
        self._properties = props
        self._vendor = props.get(openslide.PROPERTY_NAME_VENDOR)
        mx = check_mpp(props.get(openslide.PROPERTY_NAME_MPP_X), source="openslide.mpp-x",
                       path=self.path)
        my = None
        if mx is not None:
            my = check_mpp(props.get(openslide.PROPERTY_NAME_MPP_Y), source="openslide.mpp-y",
                           path=self.path)
        self._mpp_meta = None if mx is None else (mx if my is None else (mx + my) / 2.0)
        power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
        try:
            self._objective_power = float(power) if power not in (None, "") else None
        except ValueError:
            self._objective_power = None

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """OpenSlide's own downsample factors (level 0 = 1)."""
        return self._downsamples

    def _os_read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        openslide = _openslide()
        try:
            img = self._osr.read_region(location, level, size)
        except openslide.OpenSlideError as exc:
            raise SlideReadError(
                self.path,
                f"corrupt or unreadable tile data in level {level} at {location} "
                f"(OpenSlide: {exc})",
            ) from None
        except (OSError, ValueError) as exc:
            raise SlideReadError(self.path, f"region read failed: {exc}") from None
        # OpenSlide returns un-premultiplied RGBA; outside the slide alpha = 0 -> white
        rgba = np.asarray(img)
        if rgba[..., 3].min() == 255:  # fully inside: no compositing needed
            return np.ascontiguousarray(rgba[..., :3])
        return to_rgb_uint8(rgba)

    def read_region(
        self, location: Sequence[int], size: Sequence[int], *, level: int = 0
    ) -> np.ndarray:
        """Read a region exactly as ``openslide.OpenSlide.read_region`` (RGB on white)."""
        self._check_open()
        x0, y0 = _pair(location, "location", integer=True, positive=False)
        w, h = _pair(size, "size", integer=True, positive=True)
        level = self._check_level(level)
        return self._os_read((x0, y0), level, (w, h))

    def _read_level_px(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        # OpenSlide converts level-0 to level coordinates by dividing by ds; ceil keeps
        # x0 / ds in [x, x + 1/ds), i.e. the intended level pixel for ds = 1 or ds >= 2
        x0 = x if level == 0 else int(np.ceil(x * ds - 1e-9))
        y0 = y if level == 0 else int(np.ceil(y * ds - 1e-9))
        return self._os_read((x0, y0), level, (w, h))

    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._read_level_px(level, x, y, w, h)

    def close(self) -> None:
        if not self._closed and getattr(self, "_osr", None) is not None:
            try:
                self._osr.close()
            except Exception:  # noqa: BLE001
                pass
        super().close()
