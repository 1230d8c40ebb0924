"""``pathxai slide-info`` answers every shared slide with JSON or one error line (exit 2),
never a traceback; ``pathxai tiles`` writes its summary, thumbnail and CSV."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from pathxai.cli import main

pytestmark = pytest.mark.shared

BAD = {"broken.svs", "unopenable.tiff", "unreadable.svs", "small_dicom.dcm"}


def _slide_files(shared_slides):
    files = sorted(p for p in shared_slides.rglob("*") if p.is_file() and p.suffix != ".csv")
    assert len(files) == 11  # the README's table: 11 slide files
    return files


def test_slide_info_every_shared_file(shared_slides, capsys):
    manifest = pd.read_csv(shared_slides / "manifest.csv", dtype=str, keep_default_na=False)
    known = manifest.set_index("file")
    for path in _slide_files(shared_slides):
        rel = path.relative_to(shared_slides).as_posix()
        code = main(["slide-info", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        if path.name in BAD:
            assert code == 2, rel
            assert out == ""
            lines = err.strip().splitlines()
            assert len(lines) == 1 and path.name in lines[0] and "error" in lines[0]
        else:
            assert code == 0, (rel, err)
            info = json.loads(out)
            assert info["path"] == str(path)
            if rel in known.index and known.loc[rel, "level0_width"]:
                row = known.loc[rel]
                assert info["dimensions"] == [int(row.level0_width), int(row.level0_height)]
                assert info["level_count"] == int(row.levels)
            for key in ("backend", "vendor", "level_dimensions", "level_downsamples", "mpp",
                        "objective_power"):
                assert key in info


def test_slide_info_mpp_override(shared_slides, capsys):
    code = main(["slide-info", str(shared_slides / "tcga-cr-7395-01a-01-ts1.svs"),
                 "--mpp", "0.5"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0 and info["mpp"] == 0.5 and info["mpp_source"] == "argument"


def test_slide_info_subprocess_has_no_traceback(shared_slides):
    for name, expected in (("unreadable.svs", 2), ("small.svs", 0)):
        proc = subprocess.run(
            [sys.executable, "-m", "pathxai", "slide-info", str(shared_slides / name)],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == expected
        assert "Traceback" not in proc.stderr
        if expected:
            assert "Bogus marker length" in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1


def test_tiles_command(shared_slides, tmp_path, capsys):
    path = shared_slides / "cmu-1-small-region.svs"
    code = main(["tiles", str(path), "--mpp", "1.0", "--size", "128", "--overlap", "16",
                 "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    # hand computation: 2220 x 2967 px at 0.499 µm/px; tiles 128 px at 1 µm/px are
    # 256.51 level-0 px, stride 112 px at 1 µm/px = 224.45 level-0 px
    assert summary["grid"]["n_cols"] == 10  # ceil((2220 - 256.51) / 224.45) + 1 = 9 + 1
    assert summary["grid"]["n_rows"] == 14  # ceil((2967 - 256.51) / 224.45) + 1 = 13 + 1
    table = pd.read_csv(summary["tiles_csv"])
    assert len(table) == summary["n_tiles"] > 0
    assert (table["tissue_fraction"] >= 0.25).all()
    thumb = Image.open(summary["thumbnail"])
    assert max(thumb.size) == 1024
    assert 0 < summary["tissue_area_mm2"] < 2220 * 2967 * 0.499**2 / 1e6


def test_tiles_without_mpp_is_one_line_error(shared_slides, tmp_path, capsys):
    code = main(["tiles", str(shared_slides / "tcga-cr-7395-01a-01-ts1.svs"), "--mpp", "1",
                 "--size", "64", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--slide-mpp" in err and len(err.strip().splitlines()) == 1
