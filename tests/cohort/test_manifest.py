"""load_cohort / pathxai validate: valid manifests load; every problem is reported at once."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from pathxai.cli import main
from pathxai.cohort import Cohort, json_schema, load_cohort
from pathxai.exceptions import ManifestError

MANIFEST = """\
name: toy
slides: slides.csv
clinical: clinical.csv
patient_id_column: case
slide_id_column: slide
slide_path_column: file
mpp_column: mpp
survival:
  time_column: os_months
  event_column: os_event
  time_unit: months
label_column: grade
covariates: [age]
prompts: [tumor, lymphocytes]
"""

SLIDES = """\
slide,case,file,mpp
S1,P1,img/s1.svs,
S2,P2,img/s2.svs,0.25
S3,P2,img/s3.svs,
S4,P3,img/s4.svs,
"""

CLINICAL = """\
case,age,os_months,os_event,grade
P1,60,12.5,1,high
P2,71,30,0,low
P3,55,4,1,high
"""


def write_cohort(root: Path, manifest: str = MANIFEST, slides: str = SLIDES,
                 clinical: str = CLINICAL) -> Path:
    """A small valid cohort with fake (non-empty) slide files."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(1, 5):
        (root / "img" / f"s{i}.svs").write_bytes(b"II*\x00fake slide bytes")
    (root / "slides.csv").write_text(slides)
    (root / "clinical.csv").write_text(clinical)
    (root / "manifest.yaml").write_text(manifest)
    return root / "manifest.yaml"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_cohort(path)
    return info.value.problems


def one(problems: list[str], *fragments: str) -> str:
    """The single problem containing every fragment."""
    hits = [p for p in problems if all(f in p for f in fragments)]
    assert len(hits) == 1, (fragments, problems)
    return hits[0]


# ---------------------------------------------------------------------------- valid


def test_valid_manifest_loads_with_resolved_paths_and_types(tmp_path):
    c = load_cohort(write_cohort(tmp_path))
    assert isinstance(c, Cohort)
    assert list(c.slides.columns) == ["slide_id", "patient_id", "path", "mpp"]
    assert c.slides["path"].tolist() == [str(tmp_path / "img" / f"s{i}.svs") for i in range(1, 5)]
    assert math.isnan(c.slides["mpp"].iloc[0]) and c.slides["mpp"].iloc[1] == 0.25
    assert c.clinical["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert c.clinical["os_event"].tolist() == [1, 0, 1]
    assert c.clinical["os_months"].tolist() == [12.5, 30.0, 4.0]
    assert c.clinical["age"].dtype.kind in "if"
    assert (c.time_col, c.event_col, c.time_unit, c.label_col) == ("os_months", "os_event",
                                                                   "months", "grade")
    assert c.covariates == ["age"] and c.prompts == ["tumor", "lymphocytes"]
    assert c.root == tmp_path.resolve() and c.manifest_path == (tmp_path / "manifest.yaml")
    assert c.slides_of("P2")["slide_id"].tolist() == ["S2", "S3"]
    s = c.summary()
    assert (s["n_patients"], s["n_slides"], s["n_events"]) == (3, 4, 2)
    # reverse Kaplan-Meier: the only censoring (t=30) happens after both events -> 30
    assert s["median_follow_up"] == 30.0
    assert s["n_label_positive"] == 1  # "low" sorts after "high"


def test_relative_paths_resolve_against_the_manifest_folder_not_the_cwd(tmp_path,
                                                                          monkeypatch):
    sub = tmp_path / "project" / "cohort"
    sub.mkdir(parents=True)
    manifest = write_cohort(sub)
    monkeypatch.chdir(tmp_path)
    c = load_cohort(os.path.relpath(manifest, tmp_path))
    assert Path(c.slides["path"].iloc[0]) == sub.resolve() / "img" / "s1.svs"


def test_slide_root_absolute_slide_paths_and_parquet_clinical(tmp_path):
    slides_dir = tmp_path / "elsewhere"
    slides_dir.mkdir()
    (slides_dir / "a.tiff").write_bytes(b"x" * 10)
    absolute = tmp_path / "abs.tiff"
    absolute.write_bytes(b"x" * 10)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "slides.csv").write_text(
        f"slide_id,patient_id,path\nA,001,a.tiff\nB,002,{absolute}\n")
    pd.DataFrame({"patient_id": ["001", "002"], "t": [1.5, 2.0], "e": [True, False]}).to_parquet(
        tmp_path / "m" / "clin.parquet")
    (tmp_path / "m" / "manifest.yaml").write_text(
        "slides: slides.csv\nclinical: clin.parquet\nslide_root: ../elsewhere\n"
        "survival: {time_column: t, event_column: e, time_unit: days}\n"
        "mpp_overrides: {A: 0.5}\n")
    c = load_cohort(tmp_path / "m" / "manifest.yaml")
    assert c.slides["path"].tolist() == [str(slides_dir / "a.tiff"), str(absolute)]
    assert c.slides["patient_id"].tolist() == ["001", "002"]  # ids stay text
    assert c.slides["mpp"].iloc[0] == 0.5
    assert c.clinical["e"].tolist() == [1, 0]
    assert c.label_col is None and c.prompts  # default prompts


# ---------------------------------------------------------------------------- broken


def test_many_problems_reported_together_with_rows(tmp_path):
    manifest = MANIFEST.replace("slide_id_column: slide", "slide_id_colum: slide")
    manifest = manifest.replace("time_unit: months", "time_unit: moons")
    slides = SLIDES.replace("S3,P2,img/s3.svs,", "S2,P9,img/missing.svs,-1")
    clinical = CLINICAL.replace("P2,71,30,0,low", "P2,71,-3,2,low") + "P4,50,abc,1,high\n" \
        + "P1,60,1,0,high\n"
    path = write_cohort(tmp_path, manifest, slides, clinical)
    # the typo'd key means the default slide id column 'slide_id' is looked for -> fix the
    # table so that the rest can be checked too
    (tmp_path / "slides.csv").write_text(slides.replace("slide,", "slide_id,", 1))
    probs = problems_of(path)
    one(probs, "manifest.yaml:5", "unknown key 'slide_id_colum'", "did you mean 'slide_id_column'")
    one(probs, "manifest.yaml:11", "time_unit 'moons'", "months")
    one(probs, "slides.csv:4", "duplicate slide id 'S2'", "first at slides.csv:3")
    one(probs, "slides.csv:4", "file not found", "missing.svs")
    one(probs, "slides.csv:4", "µm/px '-1'")
    one(probs, "slides.csv:4", "patient 'P9'", "not in the clinical table")
    one(probs, "clinical.csv:3", "time '-3'")
    one(probs, "clinical.csv:3", "event '2'")
    one(probs, "clinical.csv:5", "time 'abc'", "not a number")
    one(probs, "clinical.csv:5", "patient 'P4' has no slide")
    one(probs, "clinical.csv:6", "duplicate patient 'P1'", "first at clinical.csv:2")
    assert len(probs) == 11, probs


def test_error_message_lists_every_problem(tmp_path):
    path = write_cohort(tmp_path, clinical=CLINICAL.replace("12.5", "").replace("30,0", "30,x"))
    with pytest.raises(ManifestError) as info:
        load_cohort(path)
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "clinical.csv:2: patient 'P1': missing time" in text
    assert "clinical.csv:3: patient 'P2': event 'x'" in text


@pytest.mark.parametrize("mutate, fragments", [
    (lambda r: (r / "manifest.yaml").write_text("slides: [unclosed\n"),
     ("manifest.yaml:2", "invalid YAML")),
    (lambda r: (r / "manifest.yaml").write_text("- just\n- a list\n"),
     ("must be a mapping",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("clinical: clinical.csv\n", "")),
     ("missing required key 'clinical'",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("slides.csv", "nope.csv")),
     ("manifest.yaml:2", "slides table 'nope.csv' not found")),
    (lambda r: ((r / "slides.xlsx").write_bytes(b"PK"),
                (r / "manifest.yaml").write_text(MANIFEST.replace("slides.csv", "slides.xlsx"))),
     ("manifest.yaml:2", "unsupported table format '.xlsx'")),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("  event_column: os_event\n", "")),
     ("missing or empty 'survival.event_column'",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("  time_unit: months\n",
                                                                 "  time_unit: months\n  units: x\n")),
     ("unknown key 'survival.units'",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("covariates: [age]",
                                                                 "covariates: [age, bmi]")),
     ("column 'bmi'", "not found")),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("label_column: grade",
                                                                 "label_column: grde")),
     ("column 'grde'", "did you mean 'grade'")),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST.replace("prompts: [tumor, lymphocytes]",
                                                                 "prompts: {a: 1}")),
     ("'prompts' must be a list",)),
    (lambda r: (r / "manifest.yaml").write_text(
        "slides: slides.csv\nclinical: clinical.csv\npatient_id_column: case\n"
        "slide_id_column: slide\nslide_path_column: file\n"),
     ("no outcome",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST + "mpp_overrides: {S9: 0.5, S1: 0}\n"),
     ("unknown slide 'S9'",)),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST + "label_column: grade\n"),
     ("manifest.yaml:15", "'label_column' is given twice", "first at manifest.yaml:12")),
    (lambda r: (r / "manifest.yaml").write_text(MANIFEST + "mpp_overrides: {S1: 0}\n"),
     ("mpp_overrides['S1'] = 0",)),
    (lambda r: (r / "slides.csv").write_text(SLIDES.replace("file,", "filename,")),
     ("slides.csv:1", "column 'file'", "did you mean 'filename'")),
    (lambda r: (r / "slides.csv").write_text("slide,case,file,mpp\n"),
     ("has no data rows",)),
    (lambda r: (r / "img" / "s1.svs").write_bytes(b""),
     ("slides.csv:2", "empty (0 bytes)")),
    (lambda r: ((r / "img" / "s1.svs").unlink(), (r / "img" / "s1.svs").mkdir()),
     ("slides.csv:2", "empty folder")),
    (lambda r: (r / "slides.csv").write_text(SLIDES.replace("S1,P1,img/s1.svs,", ",P1,img/s1.svs,")),
     ("slides.csv:2", "empty slide id")),
    (lambda r: (r / "slides.csv").write_text(SLIDES.replace("S1,P1,img/s1.svs,", "S1,P1,,")),
     ("slides.csv:2", "empty path")),
    (lambda r: (r / "slides.csv").write_text(SLIDES.replace("0.25", "fast")),
     ("slides.csv:3", "µm/px 'fast'")),
    (lambda r: (r / "clinical.csv").write_text(CLINICAL.replace("P3,55,4,1,high", "P3,55,4,1,")),
     ("clinical.csv:4", "missing label")),
    (lambda r: (r / "clinical.csv").write_text(CLINICAL.replace("P3,55,4,1,high", "P3,55,4,1,mid")),
     ("must be binary",)),
    (lambda r: (r / "clinical.csv").write_text(CLINICAL.replace("12.5", "inf")),
     ("clinical.csv:2", "finite number")),
])
def test_each_problem_kind_is_detected(tmp_path, mutate, fragments):
    path = write_cohort(tmp_path)
    mutate(tmp_path)
    one(problems_of(path), *fragments)


def test_unreadable_slide_file(tmp_path, monkeypatch):
    path = write_cohort(tmp_path)
    target = str(tmp_path / "img" / "s1.svs")
    real_access = os.access
    # permission bits do not bind root (CI containers), so deny read access explicitly
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == target
                        else real_access(p, mode))
    one(problems_of(path), "slides.csv:2", "not readable")


def test_missing_manifest_and_parquet_row_references(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_cohort(tmp_path / "nope.yaml")
    write_cohort(tmp_path)
    pd.DataFrame({"case": ["P1", "P2", "P2", "P3"], "age": [1, 2, 3, 4],
                  "os_months": [1.0, -2.0, 3.0, 4.0], "os_event": [1, 0, 1, 1],
                  "grade": ["a", "b", "a", "b"]}).to_parquet(tmp_path / "clin.parquet")
    (tmp_path / "manifest.yaml").write_text(MANIFEST.replace("clinical.csv", "clin.parquet"))
    probs = problems_of(tmp_path / "manifest.yaml")
    one(probs, "clin.parquet row 2", "time '-2.0'")
    one(probs, "clin.parquet row 3", "duplicate patient 'P2'", "first at clin.parquet row 2")


def test_problem_lists_are_capped_per_kind(tmp_path):
    rows = "".join(f"X{i},P1,img/none{i}.svs,\n" for i in range(30))
    path = write_cohort(tmp_path, slides=SLIDES + rows)
    probs = problems_of(path)
    assert sum("file not found" in p for p in probs) == 20
    one(probs, "and 10 more of this kind")


# ---------------------------------------------------------------------------- CLI and schema


def test_cli_validate_exit_codes(tmp_path, capsys):
    path = write_cohort(tmp_path)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "3 patients, 4 slides, 2 events" in out
    assert len(out.strip().splitlines()) == 1
    (tmp_path / "img" / "s2.svs").unlink()
    (tmp_path / "clinical.csv").write_text(CLINICAL.replace("30,0", "30,5"))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "Traceback" not in err
    assert "slides.csv:3" in err and "clinical.csv:3" in err


def test_json_schema_matches_the_documented_file():
    import json

    doc = Path(__file__).resolve().parents[2] / "data_manifests" / "manifest.schema.json"
    assert json.loads(doc.read_text()) == json_schema()


def test_example_manifest_validates(shared_data):
    example = Path(__file__).resolve().parents[2] / "data_manifests" / "example" / "manifest.yaml"
    if not (shared_data / "slides" / "cmu-1-small-region.svs").is_file():
        pytest.skip("example slides not in shared data")
    c = load_cohort(example)
    assert c.n_slides == 2 and c.slides["mpp"].iloc[1] == 0.2525
