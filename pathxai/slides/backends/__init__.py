"""Slide reading backends, tried by :func:`pathxai.slides.open_slide` in this order."""

from pathxai.slides.backends.array_backend import ArrayReader
from pathxai.slides.backends.openslide_backend import OpenSlideReader, openslide_format
from pathxai.slides.backends.pillow_backend import PillowReader
from pathxai.slides.backends.tifffile_backend import TiffFileReader

__all__ = ["ArrayReader", "OpenSlideReader", "PillowReader", "TiffFileReader", "openslide_format"]
