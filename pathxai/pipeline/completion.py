"""Safe per-slide output folders and per-slide completion records.

A slide is *finished* when its folder holds a ``DONE.json`` whose ``key`` is the
slide's current cache key. The per-slide task writes every artifact atomically
(:mod:`pathxai.pipeline.io`: temporary name in the same folder, ``fsync``,
:func:`os.replace`) and calls :func:`mark_complete` **last**, so a run killed at any
moment leaves either a complete, recorded slide or one that the next run
recomputes, never a half-written file under its final name. (A killed run may
leave hidden ``.<name>.*.tmp`` files behind; they are never read and are
overwritten by nothing: delete them at leisure.)
"""

from __future__ import annotations

import json
import os
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from pathxai.exceptions import PipelineError
from pathxai.pipeline.io import atomic_write_json

__all__ = [
    "DONE_NAME",
    "check_slide_id",
    "is_complete",
    "mark_complete",
    "read_completion",
    "safe_slide_dir",
]

#: File name of the per-slide completion record.
DONE_NAME = "DONE.json"


def check_slide_id(slide_id: object) -> str:
    """Return ``slide_id`` if it is safe as one folder name, else raise.

    Refused: non-strings, empty or blank ids, ids starting with ``.`` (hidden files,
    ``.`` and ``..``), containing ``/`` or ``\\``, ``..``, NUL or any other control
    character, a drive letter (``C:``), or longer than 255 bytes.

    Raises
    ------
    PipelineError
        Naming the id and the rule it breaks.
    """
    if not isinstance(slide_id, str):
        raise PipelineError(f"slide id must be a string, got {type(slide_id).__name__} {slide_id!r}")
    problem = None
    if not slide_id.strip():
        problem = "it is empty"
    elif slide_id != slide_id.strip():
        problem = "it has leading or trailing spaces"
    elif "/" in slide_id or "\\" in slide_id:
        problem = "it contains a path separator"
    elif ".." in slide_id:
        problem = "it contains '..'"
    elif slide_id.startswith("."):
        problem = "it starts with '.'"
    elif any(unicodedata.category(c) == "Cc" for c in slide_id):
        problem = "it contains a control character (e.g. NUL or newline)"
    elif len(slide_id) >= 2 and slide_id[1] == ":":
        problem = "it looks like a drive letter"
    elif len(slide_id.encode("utf-8")) > 255:
        problem = "it is longer than 255 bytes"
    if problem:
        raise PipelineError(
            f"slide id {slide_id!r} cannot be used as an output folder name: {problem}. "
            "Rename it in the manifest (letters, digits, '-', '_' and single '.' are safe)."
        )
    return slide_id


def safe_slide_dir(out_dir: str | os.PathLike, slide_id: str) -> Path:
    """The output folder of one slide, guaranteed to lie inside ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        The run's output folder.
    slide_id : str
        The slide's id from the manifest (checked with :func:`check_slide_id`).

    Returns
    -------
    pathlib.Path
        ``out_dir / "slides" / slide_id`` (not created).

    Raises
    ------
    PipelineError
        When the id is unsafe or the folder would resolve outside ``out_dir`` (e.g.
        through a symbolic link).
    """
    check_slide_id(slide_id)
    root = Path(out_dir).resolve()
    path = root / "slides" / slide_id
    resolved = path.resolve()
    if root not in resolved.parents:
        raise PipelineError(
            f"output folder of slide {slide_id!r} resolves to {resolved}, outside {root}; "
            "remove the symbolic link or rename the slide."
        )
    return path


def read_completion(slide_dir: str | os.PathLike) -> dict | None:
    """The slide's completion record, or None when absent or unreadable."""
    path = Path(slide_dir) / DONE_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_complete(slide_dir: str | os.PathLike, key: str) -> bool:
    """True when ``slide_dir`` holds a completion record made with cache key ``key``."""
    record = read_completion(slide_dir)
    return record is not None and record.get("key") == key


def mark_complete(
    slide_dir: str | os.PathLike, key: str, payload: dict | None = None
) -> Path:
    """Record that a slide finished with cache key ``key``; call it after every artifact.

    Parameters
    ----------
    slide_dir : path-like
        The slide's output folder.
    key : str
        The cache key (content hash of the slide file, checkpoint and parameters).
    payload : dict, optional
        Extra JSON-serialisable fields (e.g. artifact names, timings). ``key`` and
        ``finished`` (UTC ISO 8601) are set by this function.

    Returns
    -------
    pathlib.Path
        The ``DONE.json`` written.
    """
    if not isinstance(key, str) or not key:
        raise PipelineError(f"completion key must be a non-empty string, got {key!r}")
    record = dict(payload or {})
    record["key"] = key
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return atomic_write_json(Path(slide_dir) / DONE_NAME, record)
