"""Content-addressed cache keys for cohort runs.

Each stage's output is labelled with a key: the SHA-256 of everything it depends on
(the slide file's *content*, the model checkpoint's hash, the stage parameters and
the keys of upstream stages). A stage whose stored key equals the key it would have
now is skipped; change one parameter and only the stages that depend on it get a
new key and run again.

Hashing a multi-gigabyte slide takes seconds, so :class:`FileHashCache` remembers the
hash of each file by ``(absolute path, size, mtime_ns)`` in a small JSON file; a file
is only read again when one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pathxai.pipeline.io import atomic_write_json, read_json

__all__ = [
    "CHUNK_BYTES",
    "STAGE_VERSIONS",
    "hash_file",
    "hash_bytes",
    "hash_params",
    "hash_table",
    "stage_key",
    "FileHashCache",
]

#: bytes read per chunk when hashing files (8 MiB keeps memory flat for any slide size)
CHUNK_BYTES = 8 * 1024 * 1024

#: bump a stage's version when its code changes what it writes; old results then re-run
STAGE_VERSIONS: dict[str, int] = {
    "segment": 2,    # 2: region masks closed/hole-filled, cell masks = union of instances
    "features": 1,
    "aggregate": 1,
    "stats": 2,      # 2: primary family, cluster-aware ranking, pre-specified model
    "report": 2,     # 2: multivariable-models section
}


def hash_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """SHA-256 hex digest of a file's content, read in chunks of ``chunk_bytes``.

    Parameters
    ----------
    path : path-like
        The file.
    chunk_bytes : int
        Bytes per read; memory use is bounded by this, not by the file size.

    Returns
    -------
    str
        64 hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk_bytes)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into plain JSON types with a stable representation."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_canonical(v) for v in obj)
    if isinstance(obj, np.generic):
        return _canonical(obj.item())
    if isinstance(obj, np.ndarray):
        return _canonical(obj.tolist())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Inf" if obj > 0 else "-Inf"
        return obj + 0.0  # -0.0 and 0.0 hash the same
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return repr(obj)


def hash_params(params: Any) -> str:
    """SHA-256 of a parameter structure (dicts, lists, numbers, strings, numpy values).

    Key order of dicts does not matter; NaN hashes as NaN; numpy scalars hash like the
    equal Python number.
    """
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hash_bytes(text.encode("utf-8"))


def hash_table(table: pd.DataFrame) -> str:
    """SHA-256 of a table's content: column names, dtypes and values, row order kept.

    Uses :func:`pandas.util.hash_pandas_object` per column, so equal tables hash
    equally whatever their memory layout.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in table.columns]).encode())
    digest.update(json.dumps([str(t) for t in table.dtypes]).encode())
    for col in table.columns:
        values = pd.util.hash_pandas_object(table[col], index=False).to_numpy()
        digest.update(values.tobytes())
    return digest.hexdigest()


def stage_key(stage: str, **inputs: Any) -> str:
    """The cache key of one stage: hash of its name, code version and ``inputs``.

    Parameters
    ----------
    stage : str
        One of :data:`STAGE_VERSIONS`.
    **inputs
        Upstream keys and parameters, any JSON-like values.
    """
    if stage not in STAGE_VERSIONS:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_VERSIONS)}")
    return hash_params({"stage": stage, "version": STAGE_VERSIONS[stage], "inputs": inputs})


class FileHashCache:
    """Content hashes of files, remembered by ``(path, size, mtime_ns)``.

    Parameters
    ----------
    store : path-like or None
        JSON file holding the remembered hashes (created on :meth:`save`); ``None``
        keeps them in memory only.

    Attributes
    ----------
    n_hashed : int
        Files whose content was read (cache misses) since construction.
    n_reused : int
        Files whose hash came from the store (cache hits).
    """

    def __init__(self, store: str | os.PathLike | None = None):
        self.store = None if store is None else Path(store)
        loaded = read_json(self.store, {}) if self.store is not None else {}
        self._entries: dict[str, dict[str, Any]] = loaded if isinstance(loaded, dict) else {}
        self._lock = threading.Lock()
        self.n_hashed = 0
        self.n_reused = 0

    def hash(self, path: str | os.PathLike) -> str:
        """SHA-256 of the file's content, read only if size or mtime changed.

        Raises
        ------
        OSError
            If the file is missing or unreadable.
        """
        p = Path(path).resolve()
        st = p.stat()
        key = str(p)
        with self._lock:
            entry = self._entries.get(key)
            if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
                self.n_reused += 1
                return str(entry["sha256"])
        digest = hash_file(p)
        with self._lock:
            self._entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            self.n_hashed += 1
        return digest

    def save(self) -> None:
        """Write the remembered hashes to the store (atomically); no-op without a store."""
        if self.store is not None:
            with self._lock:
                atomic_write_json(self.store, self._entries)
