"""``failures.csv``: one row per slide that failed, with the stage, error type and message.

Columns: ``slide_id, stage, error_type, message, time`` (``time`` in UTC, ISO 8601).
Every change rewrites the whole file to a temporary name and renames it over the
old one (see :func:`pathxai.pipeline.io.atomic_write_bytes`) while holding
an exclusive lock on ``failures.csv.lock``, so concurrent writers never lose rows
and a killed run never leaves a half-written line.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pathxai.pipeline.io import atomic_write_bytes

__all__ = [
    "FAILURE_COLUMNS",
    "clear_failures",
    "read_failures",
    "record_failure",
    "record_outcome_failure",
]

#: Columns of ``failures.csv``, in order.
FAILURE_COLUMNS: tuple[str, ...] = ("slide_id", "stage", "error_type", "message", "time")

_MAX_MESSAGE = 2000  # characters kept of an error message


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<path>.lock`` (no-op where fcntl is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_failures(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``failures.csv``; an empty table with :data:`FAILURE_COLUMNS` when absent.

    Every column is a string (``slide_id`` ``"007"`` stays ``"007"``).
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in FAILURE_COLUMNS})
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FAILURE_COLUMNS if c not in table.columns]
    for c in missing:
        table[c] = ""
    return table[list(FAILURE_COLUMNS)]


def _write(path: Path, table: pd.DataFrame) -> None:
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n")
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _clean(text: object) -> str:
    """One line, bounded length: messages may hold newlines and huge reprs."""
    line = " ".join(str(text if text is not None else "").split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def record_failure(
    path: str | os.PathLike,
    *,
    slide_id: str,
    stage: str,
    error_type: str,
    message: str,
    time: datetime | None = None,
) -> Path:
    """Append one failure row to ``failures.csv`` atomically.

    A previous row for the same ``(slide_id, stage)`` is replaced, so rerunning a
    broken slide does not duplicate it.

    Parameters
    ----------
    path : path-like
        The ``failures.csv`` file (created with its header when absent).
    slide_id, stage, error_type, message : str
        What failed, where (``"segment"``, ``"features"``, ...), the exception class
        name and its message (made one line, at most 2000 characters).
    time : datetime, optional
        When; default now (UTC).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    when = (time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    row = {
        "slide_id": str(slide_id),
        "stage": str(stage),
        "error_type": _clean(error_type),
        "message": _clean(message),
        "time": when.isoformat(timespec="seconds"),
    }
    with _locked(path):
        table = read_failures(path)
        keep = ~((table["slide_id"] == row["slide_id"]) & (table["stage"] == row["stage"]))
        table = pd.concat([table[keep], pd.DataFrame([row])], ignore_index=True)
        _write(path, table)
    return path


def record_outcome_failure(path: str | os.PathLike, outcome: object, *, stage: str) -> Path | None:
    """Record a failed :class:`~pathxai.pipeline.executors.TaskOutcome`; ignore a success.

    Returns
    -------
    pathlib.Path or None
        ``path`` when a row was written, None for a successful outcome.
    """
    if getattr(outcome, "ok", True):
        return None
    return record_failure(
        path,
        slide_id=outcome.key,
        stage=stage,
        error_type=outcome.error_type or "Error",
        message=outcome.message or "",
    )


def clear_failures(path: str | os.PathLike, slide_ids: Iterable[str]) -> int:
    """Drop the rows of ``slide_ids`` (e.g. slides that succeeded on a rerun).

    Returns
    -------
    int
        How many rows were removed (0 when the file is absent).
    """
    path = Path(path)
    ids = {str(s) for s in slide_ids}
    if not path.is_file() or not ids:
        return 0
    with _locked(path):
        table = read_failures(path)
        drop = table["slide_id"].isin(ids)
        if drop.any():
            _write(path, table[~drop])
        return int(drop.sum())
