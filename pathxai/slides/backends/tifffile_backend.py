"""tifffile backend: pyramidal TIFF (OME-TIFF, SubIFD and multi-page pyramids, SVS) and plain TIFF.

Only the tiles (or strips) a read touches are fetched from disk and decoded, through
tifffile's per-segment ``TiffPage.decode`` (no zarr needed); uncompressed contiguous
images are memory-mapped. A small LRU cache (32 MiB) keeps recently decoded tiles, so
memory stays bounded whatever the slide size.
"""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pathxai.exceptions import SlideReadError
from pathxai.slides.reader import SlideReader, check_mpp, to_rgb_uint8

__all__ = ["TiffFileReader"]

_CACHE_BYTES = 32 * 1024 * 1024
# Whole-page decode is allowed only for pages this small (uncommon layouts).
_WHOLE_PAGE_LIMIT = 256 * 1024 * 1024
_SVS_AUX = {"thumbnail", "label", "macro"}
_OME_UNIT_TO_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _mpp_from_metadata(tif: Any, page: Any, path: Path) -> tuple[float | None, float | None, str]:
    """Return (mpp, objective power, source) from SVS/OME/JSON descriptions or resolution tags."""
    import tifffile

    desc = page.description or ""
    power = None
    m = re.search(r"AppMag\s*=\s*([0-9.]+)", desc)
    if m:
        power = float(m.group(1))
    if tif.is_svs or "Aperio" in desc:
        m = re.search(r"MPP\s*=\s*([0-9.eE+-]+)", desc)
        if m:
            return check_mpp(m.group(1), source="SVS description MPP", path=path), power, "svs"
    if tif.is_ome and tif.ome_metadata:
        xml = tif.ome_metadata
        m = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
        if m:
            tag = m.group(0)
            sx = re.search(r'PhysicalSizeX="([^"]+)"', tag)
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tag)
            if sx:
                factor = _OME_UNIT_TO_UM.get(unit.group(1) if unit else "µm", None)
                if factor is not None:
                    value = float(sx.group(1)) * factor
                    return check_mpp(value, source="OME PhysicalSizeX", path=path), power, "ome"
        m = re.search(r'NominalMagnification="([0-9.]+)"', xml)
        if m:
            power = float(m.group(1))
    if desc.lstrip().startswith("{"):
        try:
            meta = json.loads(desc)
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            for key in ("mpp", "mpp_x", "microns_per_pixel"):
                if key in meta:
                    return check_mpp(meta[key], source=f"JSON description {key!r}", path=path), \
                        power, "json"
    try:
        xres = page.get_resolution(tifffile.RESUNIT.MICROMETER)[0]
    except Exception:  # noqa: BLE001 - missing or unitless resolution
        xres = None
    unit = page.resolutionunit
    res = page.resolution
    unset = unit == tifffile.RESUNIT.NONE or tuple(res) == (1.0, 1.0)
    if xres and not unset and xres > 0:
        return check_mpp(1.0 / xres, source="TIFF resolution tags", path=path), power, "tiff"
    return None, power, "none"


class _Level:
    """One pyramid level: a TIFF page and how to read boxes from it."""

    def __init__(self, page: Any, reader: TiffFileReader):
        self.page = page
        self.reader = reader
        shaped = page.shaped  # (separate samples, depth, length, width, contig samples)
        self.sep, self.depth, self.height, self.width, self.contig = (int(v) for v in shaped)
        self.tiled = bool(page.is_tiled)
        self.tw = int(page.tilewidth) if self.tiled else self.width
        self.th = int(page.tilelength) if self.tiled else int(min(page.rowsperstrip, self.height))
        self.ntx = math.ceil(self.width / self.tw)
        self.memmap: np.ndarray | None = None
        self.whole: np.ndarray | None = None
        plain = page.photometric in (0, 1, 2, 6)  # MINISWHITE, MINISBLACK, RGB, YCbCr
        if page.compression == 1 and page.is_contiguous and not self.tiled and self.sep == 1 \
                and plain:
            self.mode = "memmap"
            try:
                self.memmap = np.memmap(
                    reader.path, dtype=page.dtype.newbyteorder(page.parent.byteorder),
                    mode="r", offset=int(page.dataoffsets[0]),
                    shape=(self.height, self.width, self.contig),
                )
            except (OSError, ValueError) as exc:
                raise SlideReadError(reader.path, f"truncated image data ({exc})") from None
        elif self.sep == 1 and self.depth == 1 and page.dtype is not None and plain:
            self.mode = "segments"
        else:
            self.mode = "whole"  # decoded once on first use (small uncommon layouts only)
            if page.nbytes > _WHOLE_PAGE_LIMIT:
                raise SlideReadError(
                    reader.path,
                    f"unsupported TIFF layout for a large image (planar={page.planarconfig}, "
                    f"photometric={page.photometric}, depth={self.depth}); convert it to a "
                    "tiled RGB TIFF",
                )

    def _decode_whole(self) -> np.ndarray:
        if self.whole is None:
            try:
                arr = self.page.asrgb() if self.page.photometric == 3 else self.page.asarray()
            except Exception as exc:  # noqa: BLE001 - tifffile/imagecodecs raise many types
                raise SlideReadError(self.reader.path, f"cannot decode image data: {exc}") from None
            arr = np.asarray(arr)
            while arr.ndim > 3:
                arr = arr[0]
            if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
                arr = np.moveaxis(arr, 0, -1)  # planar separate -> contig
            self.whole = self._normalize(arr)
        return self.whole

    def _normalize(self, arr: np.ndarray) -> np.ndarray:
        photometric = self.page.photometric
        if photometric == 0:  # MINISWHITE
            info = np.iinfo(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else None
            arr = (info.max - arr) if info else (1.0 - arr)
        if arr.ndim == 3 and arr.shape[2] > 4:
            arr = arr[:, :, :3]
        return to_rgb_uint8(arr)

    def read_segment(self, index: int) -> np.ndarray:
        """Decoded tile/strip ``index`` as ``(th, tw, 3)`` uint8 (edge segments full size)."""
        reader = self.reader
        key = (id(self), index)
        cached = reader._cache.get(key)
        if cached is not None:
            reader._cache.move_to_end(key)
            return cached
        page = self.page
        offset = int(page.dataoffsets[index])
        count = int(page.databytecounts[index])
        if count == 0 or offset == 0:
            seg = np.full((self.th, self.tw, 3), 255, dtype=np.uint8)
        else:
            if offset + count > reader._filesize:
                raise SlideReadError(
                    reader.path,
                    f"truncated file: tile {index} of a {self.width}x{self.height} level ends at "
                    f"byte {offset + count} but the file has {reader._filesize} bytes",
                )
            with reader._lock:
                fh = page.parent.filehandle
                fh.seek(offset)
                data = fh.read(count)
            try:
                decoded, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
            except Exception as exc:  # noqa: BLE001 - codec errors come in many types
                if _codec_missing(page.compression):
                    raise SlideReadError(
                        reader.path,
                        f"unsupported TIFF compression {int(page.compression)} "
                        f"(no decoder available: {exc})",
                    ) from None
                raise SlideReadError(
                    reader.path,
                    f"corrupt tile {index} in the {self.width}x{self.height} level "
                    f"(compression {int(page.compression)}): {exc}",
                ) from None
            if decoded is None:
                seg = np.full((self.th, self.tw, 3), 255, dtype=np.uint8)
            else:
                arr = np.asarray(decoded).reshape(decoded.shape[-3:])  # (rows, cols, samples)
                seg = self._normalize(arr)
        reader._cache[key] = seg
        reader._cache_bytes += seg.nbytes
        while reader._cache_bytes > reader.cache_bytes and len(reader._cache) > 1:
            _, old = reader._cache.popitem(last=False)
            reader._cache_bytes -= old.nbytes
        return seg

    def read_box(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        if self.memmap is not None:
            try:
                return self._normalize(np.array(self.memmap[y : y + h, x : x + w]))
            except (OSError, ValueError) as exc:
                raise SlideReadError(self.reader.path, f"cannot read image data: {exc}") from None
        if self.mode == "whole":
            return self._decode_whole()[y : y + h, x : x + w]
        out = np.empty((h, w, 3), dtype=np.uint8)
        ty0, ty1 = y // self.th, (y + h - 1) // self.th
        tx0, tx1 = x // self.tw, (x + w - 1) // self.tw
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                index = ty * self.ntx + tx if self.tiled else ty
                seg = self.read_segment(index)
                gx, gy = tx * self.tw, ty * self.th  # segment origin
                sx0, sy0 = max(x, gx), max(y, gy)
                sx1 = min(x + w, gx + self.tw, gx + seg.shape[1])
                sy1 = min(y + h, gy + self.th, gy + seg.shape[0])
                out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = seg[sy0 - gy : sy1 - gy,
                                                                sx0 - gx : sx1 - gx]
        return out


class TiffFileReader(SlideReader):
    """A TIFF read with ``tifffile`` (+ ``imagecodecs`` for JPEG, JPEG 2000, deflate, ...)."""

    backend = "tifffile"
    #: Upper bound of the decoded-tile LRU cache in bytes (set per reader to tune).
    cache_bytes: int = _CACHE_BYTES

    def __init__(self, path: str | Path, *, mpp: float | None = None):
        super().__init__(path, mpp=mpp)
        import tifffile

        self._lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        try:
            self._filesize = self.path.stat().st_size
            with _TiffLogCapture() as log:
                self._tif = tifffile.TiffFile(str(self.path))
                _ = self._tif.series  # parses every IFD; problems are logged, not raised
        except FileNotFoundError:
            raise SlideReadError(self.path, "file not found") from None
        except tifffile.TiffFileError as exc:
            raise SlideReadError(self.path, f"not a readable TIFF ({exc})") from None
        except (OSError, ValueError, IndexError, KeyError, struct.error) as exc:
            raise SlideReadError(self.path, f"corrupt or truncated TIFF ({exc})") from None
        self._structure_problems = log.messages
        try:
            self._setup(tifffile)
        except SlideReadError:
            self._tif.close()
            raise
        except Exception as exc:  # noqa: BLE001 - malformed files raise anything
            self._tif.close()
            raise SlideReadError(self.path, f"corrupt TIFF structure ({exc})") from None

    def _setup(self, tifffile: Any) -> None:
        tif = self._tif
        series = [s for s in tif.series if (s.name or "").lower() not in _SVS_AUX]
        if not series:
            detail = f" ({self._structure_problems[0]})" if self._structure_problems else ""
            raise SlideReadError(
                self.path, f"no readable image in the TIFF; the file is truncated or corrupt{detail}"
            )
        if self._structure_problems:
            warnings.warn(
                f"{self.path}: damaged TIFF structure ({self._structure_problems[0]}); the file "
                "may be truncated, some images (label, macro, levels) may be missing",
                UserWarning,
                stacklevel=4,
            )
        main = series[0]
        pages = []
        for lvl in main.levels:
            page = lvl.pages[0] if lvl.pages else None
            if page is None:
                continue
            if not isinstance(page, tifffile.TiffPage):
                page = page.aspage()
            pages.append(page)
        if len(pages) == 1:
            # generic pyramids sometimes come as one series per level: accept following
            # series that shrink by a consistent factor and keep the samples
            p0 = pages[0]
            for s in series[1:]:
                page = s.pages[0] if s.pages else None
                if page is None or not isinstance(page, tifffile.TiffPage):
                    continue
                last = pages[-1]
                if (page.imagewidth < last.imagewidth and page.imagelength < last.imagelength
                        and page.samplesperpixel == p0.samplesperpixel):
                    rx = p0.imagewidth / page.imagewidth
                    ry = p0.imagelength / page.imagelength
                    if abs(rx - ry) / rx < 0.05:
                        pages.append(page)
        self._levels = [_Level(p, self) for p in pages]
        self._level_dimensions = [(lv.width, lv.height) for lv in self._levels]
        if min(min(d) for d in self._level_dimensions) <= 0:
            raise SlideReadError(self.path, "the TIFF has an empty image")
        # decode one segment of the smallest level now, so an unsupported codec or a
        # corrupt file fails at open time rather than at the first read
        smallest = self._levels[-1]
        if smallest.mode == "segments":
            smallest.read_segment(0)
        page0 = pages[0]
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            mpp, power, source = _mpp_from_metadata(tif, page0, self.path)
        self._mpp_meta = mpp
        self._objective_power = power
        if tif.is_svs:
            self._vendor = "aperio"
        elif tif.is_ome:
            self._vendor = "ome"
        elif len(self._levels) > 1:
            self._vendor = "generic-tiff"
        else:
            self._vendor = "tiff"
        self._properties = {
            "tifffile.series": str(main.kind),
            "tifffile.compression": str(int(page0.compression)),
            "tifffile.photometric": str(int(page0.photometric)),
            "tifffile.tiled": str(bool(page0.is_tiled)),
            "tifffile.mpp-source": source,
        }
        if page0.description:
            self._properties["tiff.ImageDescription"] = page0.description[:2000]

    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._levels[level].read_box(x, y, w, h)

    def close(self) -> None:
        tif = getattr(self, "_tif", None)
        if not self._closed and tif is not None:
            tif.close()
            self._cache.clear()
            self._cache_bytes = 0
        super().close()


class _TiffLogCapture(logging.Handler):
    """Collect tifffile's logged warnings (damaged IFDs) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _TiffLogCapture:
        self._logger = logging.getLogger("tifffile")
        self._propagate = self._logger.propagate
        self._logger.addHandler(self)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate


def _codec_missing(compression: int) -> bool:
    """True when tifffile has no decoder for this TIFF compression code."""
    import tifffile

    try:
        tifffile.TIFF.DECOMPRESSORS[compression]
    except (KeyError, ValueError, NotImplementedError, ImportError):
        return True
    return False

