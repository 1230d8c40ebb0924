"""Atomic file writes and output-path safety for cohort runs.

Every artifact of a run is first written to a temporary file in the *same* folder,
flushed and ``fsync``-ed, then moved over its final name with :func:`os.replace`
(atomic on POSIX and Windows for paths on one file system). A run killed at any
moment therefore leaves either the old file or the new one, never half a file.

Output paths are built with :func:`safe_join`, which refuses any component that
would escape the run folder (``..``, absolute paths, path separators in ids), so a
manifest cannot make pathxai write outside ``out_dir``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.exceptions import PipelineError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "atomic_write_parquet",
    "atomic_write_png",
    "atomic_write_jpeg",
    "atomic_save_figure",
    "read_json",
    "safe_join",
    "safe_name",
]

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._\-]+")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry to disk (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Final destination. Its parent folder is created if missing.
    mode : {"wb", "w"}
        Binary or text mode.
    **kwargs
        Passed to :func:`open` (e.g. ``encoding``, ``newline``).

    Yields
    ------
    file object
        Write to it; if the block raises, the temporary file is removed and ``path``
        is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the final file the usual 0666 & ~umask
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys, numpy scalars converted) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default, allow_nan=True)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file, or return ``default`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def atomic_write_csv(path: str | os.PathLike, table: pd.DataFrame, *, index: bool = False) -> Path:
    """Write a table as CSV atomically (full float precision, ``\\n`` line ends)."""
    buf = io.StringIO()
    table.to_csv(buf, index=index, lineterminator="\n")
    return atomic_write_text(path, buf.getvalue())


def atomic_write_parquet(path: str | os.PathLike, table: pd.DataFrame, *, index: bool = False) -> Path:
    """Write a table as Parquet (pyarrow) atomically."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=index, engine="pyarrow")
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an ``(H, W)`` or ``(H, W, 3|4)`` uint8 array as PNG atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", optimize=False)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_jpeg(path: str | os.PathLike, image: np.ndarray, *, quality: int = 85) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB array as JPEG atomically (for photographic QC images)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).convert("RGB").save(buf, format="JPEG", quality=quality)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_save_figure(path: str | os.PathLike, fig: Any, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (``bbox_inches='tight'``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def safe_name(text: object, *, max_len: int = 120) -> str:
    """A file-name-safe version of an id: letters, digits, ``.``, ``_`` and ``-`` only.

    Other characters become ``_``; leading dots are removed so the name can never be
    ``.`` or ``..`` or a hidden file. Distinct ids that collide after cleaning are the
    caller's concern (the pipeline checks slide ids are unique after cleaning).

    Raises
    ------
    PipelineError
        If nothing usable is left (e.g. the id is empty or only punctuation).
    """
    cleaned = _UNSAFE_CHARS.sub("_", str(text)).lstrip(".")[:max_len]
    if not cleaned.strip("_"):
        raise PipelineError(
            f"id {text!r} has no letters or digits to build a file name from; "
            "rename it in the manifest"
        )
    return cleaned


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result outside ``root``.

    Parameters
    ----------
    root : path-like
        The run's output folder.
    *parts : str
        Relative components (e.g. ``"slides"``, a slide id, ``"features.csv"``).

    Returns
    -------
    pathlib.Path
        The joined path (not required to exist).

    Raises
    ------
    PipelineError
        If a part is absolute, contains ``..`` or otherwise resolves outside ``root``.
    """
    root_resolved = Path(root).resolve()
    for part in parts:
        p = Path(part)
        if p.is_absolute() or ".." in p.parts:
            raise PipelineError(
                f"output path component {part!r} would leave the output folder {str(root)!r}; "
                "ids used in file names must be plain names"
            )
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise PipelineError(
            f"output path {str(candidate)!r} is outside the output folder {str(root_resolved)!r}"
        )
    return candidate
