"""Content-addressed cache keys (pathxai.pipeline.cache)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest

from pathxai.pipeline.cache import FileHashCache, hash_file, hash_params, hash_table, stage_key


def test_hash_file_matches_hashlib_across_chunk_boundaries(tmp_path):
    data = os.urandom(1000)
    f = tmp_path / "slide.bin"
    f.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    for chunk in (1, 7, 999, 1000, 1001, 1 << 20):
        assert hash_file(f, chunk_bytes=chunk) == expected


def test_file_hash_cache_reuses_until_content_changes(tmp_path):
    f = tmp_path / "slide.tiff"
    f.write_bytes(b"version one")
    store = tmp_path / "hashes.json"
    cache = FileHashCache(store)
    h1 = cache.hash(f)
    assert h1 == hashlib.sha256(b"version one").hexdigest()
    assert cache.hash(f) == h1
    assert (cache.n_hashed, cache.n_reused) == (1, 1)
    cache.save()

    again = FileHashCache(store)  # a new run reads the stored hashes
    assert again.hash(f) == h1
    assert (again.n_hashed, again.n_reused) == (0, 1)

    f.write_bytes(b"version two, longer")  # size and mtime change
    assert again.hash(f) == hashlib.sha256(b"version two, longer").hexdigest()
    assert again.n_hashed == 1


def test_file_hash_cache_rehashes_same_size_new_mtime(tmp_path):
    f = tmp_path / "s.bin"
    f.write_bytes(b"aaaa")
    cache = FileHashCache()
    cache.hash(f)
    f.write_bytes(b"bbbb")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert cache.hash(f) == hashlib.sha256(b"bbbb").hexdigest()


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        FileHashCache().hash(tmp_path / "nope.svs")


def test_hash_params_is_order_free_and_value_sensitive():
    a = hash_params({"n_bootstrap": 200, "seed": 0, "prompts": ["tumor", "stroma"]})
    b = hash_params({"prompts": ["tumor", "stroma"], "seed": 0, "n_bootstrap": 200})
    assert a == b
    assert a != hash_params({"n_bootstrap": 201, "seed": 0, "prompts": ["tumor", "stroma"]})
    assert a != hash_params({"n_bootstrap": 200, "seed": 0, "prompts": ["stroma", "tumor"]})
    assert hash_params({"x": np.float64(0.5), "k": np.int64(3)}) == hash_params({"x": 0.5, "k": 3})
    assert hash_params({"x": float("nan")}) == hash_params({"x": np.nan})
    assert hash_params(-0.0) == hash_params(0.0)


def test_stage_key_depends_on_stage_and_inputs():
    k = stage_key("stats", aggregate="abc", params={"seed": 0})
    assert k == stage_key("stats", params={"seed": 0}, aggregate="abc")
    assert k != stage_key("report", aggregate="abc", params={"seed": 0})
    assert k != stage_key("stats", aggregate="abd", params={"seed": 0})
    with pytest.raises(KeyError, match="unknown stage"):
        stage_key("nope")


def test_hash_table_content_not_layout():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    same = pd.DataFrame({"a": np.array([1.0, 2.0, 3.0]), "b": ["x", "y", "z"]}, index=[7, 8, 9])
    assert hash_table(df) == hash_table(same)
    changed = df.copy()
    changed.loc[1, "a"] = 2.0000001
    assert hash_table(df) != hash_table(changed)
    assert hash_table(df) != hash_table(df.rename(columns={"a": "c"}))
