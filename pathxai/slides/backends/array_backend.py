"""In-memory numpy array backend (an image already loaded, e.g. in a notebook)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pathxai.exceptions import SlideReadError
from pathxai.slides.reader import SlideReader, to_rgb_uint8

__all__ = ["ArrayReader"]


class ArrayReader(SlideReader):
    """Wraps an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array as a one-level slide.

    RGBA is composited on white; 16-bit and float ``[0, 1]`` data are converted to uint8.
    """

    backend = "array"

    def __init__(self, array: Any, *, mpp: float | None = None):
        super().__init__(None, mpp=mpp)
        arr = np.asarray(array)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) \
                or min(arr.shape[:2], default=0) == 0:
            raise SlideReadError(
                "<array>",
                f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {arr.shape}",
            )
        try:
            self._array = to_rgb_uint8(arr)
        except ValueError as exc:
            raise SlideReadError("<array>", str(exc)) from None
        h, w = self._array.shape[:2]
        self._level_dimensions = [(w, h)]
        self._vendor = "numpy"

    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._array[y : y + h, x : x + w].copy()

    def __getstate__(self) -> dict[str, Any]:
        return {"array": self._array, "mpp": self._mpp_override}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fresh = ArrayReader(state["array"], mpp=state["mpp"])
        self.__dict__.update(fresh.__dict__)
