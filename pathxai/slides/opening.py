"""``open_slide``: one entry point that picks the backend able to read a file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pathxai.exceptions import SlideReadError
from pathxai.slides.backends import (
    ArrayReader,
    OpenSlideReader,
    PillowReader,
    TiffFileReader,
    openslide_format,
)
from pathxai.slides.reader import SlideReader

__all__ = ["open_slide", "BACKENDS"]

BACKENDS: dict[str, type[SlideReader]] = {
    "openslide": OpenSlideReader,
    "tifffile": TiffFileReader,
    "pillow": PillowReader,
    "array": ArrayReader,
}

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _is_tiff(head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def open_slide(
    path_or_array: str | os.PathLike | np.ndarray | SlideReader,
    *,
    mpp: float | None = None,
    backend: str | None = None,
) -> SlideReader:
    """Open a whole-slide image, a plain image or an array for region reads.

    Backends are tried in order: OpenSlide (SVS, NDPI, VMS, MRXS, SCN, BIF, generic tiled
    TIFF, DICOM), tifffile (pyramidal/OME/SubIFD TIFF and plain TIFF; also used when it
    sees more pyramid levels than OpenSlide), Pillow (PNG, JPEG, ...), numpy arrays.

    Parameters
    ----------
    path_or_array : str, os.PathLike, numpy.ndarray or SlideReader
        A file, an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array, or an open reader
        (returned as is unless ``mpp`` is given).
    mpp : float, optional
        µm per pixel at level 0. Overrides the file's metadata; needed for physical-unit
        reads when the metadata has none (or an implausible value, which is ignored with
        a warning).
    backend : {"openslide", "tifffile", "pillow", "array"}, optional
        Force one backend instead of trying them in order.

    Returns
    -------
    SlideReader
        Use as a context manager or call ``close()``.

    Raises
    ------
    SlideReadError
        Missing file, unsupported format, truncated or corrupt data; the message names
        the file and what every backend said.
    """
    if isinstance(path_or_array, SlideReader):
        if mpp is None:
            return path_or_array
        if path_or_array.path is None:
            return ArrayReader(path_or_array._read_level_px(0, 0, 0, *path_or_array.dimensions),
                               mpp=mpp)
        path_or_array = path_or_array.path
    if isinstance(path_or_array, np.ndarray) or (
        hasattr(path_or_array, "__array__") and not isinstance(path_or_array, (str, os.PathLike))
    ):
        return ArrayReader(path_or_array, mpp=mpp)
    if not isinstance(path_or_array, (str, os.PathLike)):
        raise TypeError(
            f"open_slide expects a path or an image array, got {type(path_or_array).__name__}"
        )
    path = Path(path_or_array).expanduser()
    if backend is not None:
        if backend not in BACKENDS or backend == "array":
            raise ValueError(
                f"backend must be one of 'openslide', 'tifffile', 'pillow', got {backend!r}"
            )
        _check_file(path)
        return BACKENDS[backend](path, mpp=mpp)
    head = _check_file(path)
    errors: list[str] = []
    vendor = openslide_format(path)
    if vendor is not None:
        try:
            reader: SlideReader = OpenSlideReader(path, mpp=mpp)
        except SlideReadError as exc:
            hint = ("; this DICOM variant is not supported (convert it to a tiled TIFF, "
                    "e.g. with wsidicomizer or bfconvert)") if vendor == "dicom" else ""
            errors.append(f"OpenSlide ({vendor}): {exc.reason}{hint}")
        else:
            if vendor == "generic-tiff" and _is_tiff(head):
                reader = _prefer_deeper_pyramid(reader, path, mpp)
            return reader
    if _is_tiff(head):
        try:
            return TiffFileReader(path, mpp=mpp)
        except SlideReadError as exc:
            errors.append(f"tifffile: {exc.reason}")
    elif vendor is None:
        try:
            return PillowReader(path, mpp=mpp)
        except SlideReadError as exc:
            errors.append(f"Pillow: {exc.reason}")
    if vendor is None and not _is_tiff(head) and all(e.startswith("Pillow: unsupported")
                                                      for e in errors):
        raise SlideReadError(
            path,
            f"unsupported format: not a slide OpenSlide recognises, not a TIFF and not an "
            f"image Pillow reads (file starts with {head[:8]!r})",
        )
    raise SlideReadError(path, "; ".join(errors))


def _check_file(path: Path) -> bytes:
    if not path.exists():
        raise SlideReadError(path, "file not found")
    if path.is_dir():
        raise SlideReadError(
            path,
            "is a folder; give one slide file (for MIRAX the .mrxs file, for a DICOM series "
            "one of its .dcm files)",
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise SlideReadError(path, f"cannot open the file ({exc.strerror})") from None
    if not head:
        raise SlideReadError(path, "empty file (0 bytes)")
    return head


def _prefer_deeper_pyramid(reader: SlideReader, path: Path, mpp: float | None) -> SlideReader:
    """Use tifffile when OpenSlide misses pyramid levels (e.g. SubIFD pyramids)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alt = TiffFileReader(path, mpp=mpp)
    except SlideReadError:
        return reader
    if alt.level_count > reader.level_count and alt.dimensions == reader.dimensions:
        reader.close()
        return alt
    alt.close()
    return reader


