"""Pillow backend: PNG, JPEG, BMP and other single images (decoded once; meant for tiles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathxai.exceptions import SlideReadError
from pathxai.slides.reader import SlideReader, check_mpp, to_rgb_uint8

__all__ = ["PillowReader"]

# Pillow's own guard against decompression bombs is kept; 1 Gpx is far beyond a tile.
_MAX_PIXELS = 1 << 30


class PillowReader(SlideReader):
    """A single-level image read with Pillow (RGBA composited on white).

    The whole image is decoded on open, so this backend is for tiles and overviews;
    whole-slide formats go through OpenSlide or tifffile.
    """

    backend = "pillow"

    def __init__(self, path: str | Path, *, mpp: float | None = None):
        super().__init__(path, mpp=mpp)
        from PIL import Image, UnidentifiedImageError

        if not self.path.is_file():
            raise SlideReadError(self.path, "file not found")
        try:
            with Image.open(self.path) as img:
                if img.width * img.height > _MAX_PIXELS:
                    raise SlideReadError(
                        self.path,
                        f"{img.width}x{img.height} is too large for a plain image; "
                        "store it as a tiled pyramidal TIFF",
                    )
                fmt = img.format
                info = dict(img.info)
                if img.mode in ("P", "PA", "LA", "La", "I;16", "I;16B", "I", "F", "CMYK", "YCbCr",
                                "1", "L"):
                    img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
                arr = np.asarray(img)
        except SlideReadError:
            raise
        except UnidentifiedImageError:
            raise SlideReadError(self.path, "unsupported format (not an image Pillow reads)") \
                from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise SlideReadError(self.path, f"truncated or corrupt image ({exc})") from None
        self._array = to_rgb_uint8(arr)
        h, w = self._array.shape[:2]
        self._level_dimensions = [(w, h)]
        self._vendor = (fmt or "image").lower()
        self._properties = {f"pillow.{k}": str(v)[:200] for k, v in info.items()
                            if isinstance(v, (str, int, float, tuple))}
        dpi = info.get("dpi")
        if dpi and float(dpi[0]) > 1 and tuple(map(float, dpi)) not in ((72.0, 72.0), (96.0, 96.0)):
            self._mpp_meta = check_mpp(25400.0 / float(dpi[0]), source="image dpi", path=self.path)

    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._array[y : y + h, x : x + w].copy()

    def close(self) -> None:
        self._array = np.zeros((0, 0, 3), np.uint8)
        super().close()
