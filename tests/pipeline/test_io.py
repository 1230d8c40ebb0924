"""Atomic writes and output-path safety (pathxai.pipeline.io)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pathxai.exceptions import PipelineError
from pathxai.pipeline.io import (
    atomic_open,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_png,
    atomic_write_text,
    read_json,
    safe_join,
    safe_name,
)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_json_roundtrip_with_numpy_values(tmp_path):
    target = tmp_path / "sub" / "x.json"
    atomic_write_json(target, {"b": np.float64(1.5), "a": np.arange(3), "n": np.int32(4)})
    assert json.loads(target.read_text()) == {"a": [0, 1, 2], "b": 1.5, "n": 4}
    assert _leftovers(target.parent) == []


def test_written_files_get_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    path = atomic_write_text(tmp_path / "r.html", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_tables_and_png_roundtrip(tmp_path):
    df = pd.DataFrame({"slide_id": ["s1", "s2"], "x": [0.1, 1 / 3]})
    atomic_write_csv(tmp_path / "t.csv", df)
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["x"].tolist() == [0.1, 1 / 3]  # full float precision
    atomic_write_parquet(tmp_path / "t.parquet", df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)
    img = np.zeros((5, 7, 3), np.uint8)
    img[2, 3] = (255, 10, 20)
    atomic_write_png(tmp_path / "i.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "i.png")), img)


def test_read_json_default_on_missing_or_corrupt(tmp_path):
    assert read_json(tmp_path / "missing.json", {"d": 1}) == {"d": 1}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_json(tmp_path / "bad.json") is None


@pytest.mark.parametrize("part", ["../escape", "/etc/passwd", "a/../../b"])
def test_safe_join_refuses_paths_outside_root(tmp_path, part):
    with pytest.raises(PipelineError, match="output folder"):
        safe_join(tmp_path, "slides", part)


def test_safe_join_refuses_symlink_escape(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "run"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(PipelineError):
        safe_join(root, "link", "x.csv")


def test_safe_join_accepts_plain_names(tmp_path):
    assert safe_join(tmp_path, "slides", "S-01", "features.csv") == (
        tmp_path.resolve() / "slides" / "S-01" / "features.csv"
    )


def test_safe_name():
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert "/" not in safe_name("../../etc/passwd")
    assert not safe_name("..hidden").startswith(".")
    assert safe_name("slide <1>.svs") == "slide_1_.svs"
    with pytest.raises(PipelineError, match="no letters or digits"):
        safe_name("///")
