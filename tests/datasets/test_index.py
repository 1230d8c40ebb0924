"""Reader/validator of the shared/data/index.csv format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pathxai.datasets.index import INDEX_COLUMNS, load_pair, read_index
from pathxai.exceptions import IndexFormatError


def test_read_shared_index(shared_data):
    df = read_index(shared_data / "index.csv")
    assert len(df) == 198  # documented in shared/data/README.md
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["image"])
    assert df["mpp"].dtype == float and df.loc[df.dataset == "glas", "mpp"].eq(0.62).all()
    assert df.loc[df.dataset == "cpm15", "mpp"].isna().all()
    test = read_index(shared_data / "index.csv", split="test")
    assert set(test["dataset"]) == {"glas", "biomedparse_demo"} and len(test) == 65
    two = read_index(shared_data / "index.csv", datasets=["ocdc", "bcss_mini"])
    assert two.groupby("dataset").size().to_dict() == {"bcss_mini": 4, "ocdc": 7}


def test_load_pair_cpm15_counts(shared_data):
    df = read_index(shared_data / "index.csv", datasets="cpm15")
    total = 0
    for _, r in df.iterrows():
        image, mask, mpp = load_pair(r)
        assert image.dtype == np.uint8 and image.shape == mask.shape + (3,)
        assert mask.dtype == np.int32 and mpp is None
        total += len(np.unique(mask[mask > 0]))
    assert total == 2905  # README: 2,905 nuclei in the 15 tiles


def test_load_pair_binary(shared_data):
    row = read_index(shared_data / "index.csv", datasets="kather2016").iloc[0]
    image, mask, mpp = load_pair(row)
    assert mask.dtype == bool and mask.all() and mpp == pytest.approx(0.495)
    assert image.shape == (150, 150, 3)


def _write(tmp_path, rows, *, files=True):
    if files:
        (tmp_path / "d").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "d" / "a.png")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "d" / "m.png")
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    return tmp_path / "index.csv"


def _row(**kw):
    r = {"dataset": "d", "image": "d/a.png", "mask": "d/m.png", "category": "gland",
         "structure": "tissue", "region": "colon", "mask_kind": "binary", "mpp": "0.5",
         "magnification": "", "split": "train"}
    r.update(kw)
    return r


def test_validation_errors(tmp_path):
    ok = read_index(_write(tmp_path, [_row()]))
    assert len(ok) == 1 and ok["image_id"].iloc[0] == "a"
    path = _write(tmp_path, [_row(structure="organ", mpp="-1", image="d/missing.png")])
    with pytest.raises(IndexFormatError) as info:
        read_index(path)
    msg = str(info.value)
    assert "organ" in msg and "'-1'" in msg and "missing.png" in msg
    with pytest.raises(IndexFormatError, match="filter"):
        read_index(_write(tmp_path, [_row()]), split="validation")
    bad_cols = tmp_path / "bad.csv"
    pd.DataFrame([{"image": "x"}]).to_csv(bad_cols, index=False)
    with pytest.raises(IndexFormatError, match="lacks column"):
        read_index(bad_cols)
    with pytest.raises(IndexFormatError, match="does not exist"):
        read_index(tmp_path / "nope.csv")
    assert "split" in INDEX_COLUMNS


def test_size_mismatch(tmp_path):
    path = _write(tmp_path, [_row()])
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "d" / "m.png")
    row = read_index(path).iloc[0]
    with pytest.raises(IndexFormatError, match="mask"):
        load_pair(row)
