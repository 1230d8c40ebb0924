"""Fault tolerance: atomic outputs, completion records, failures.csv, safe paths,
and (when the pipeline exists) SIGKILL-resume and broken slides in a real cohort."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from pathxai.exceptions import PipelineError
from pathxai.pipeline.completion import (
    DONE_NAME,
    check_slide_id,
    is_complete,
    mark_complete,
    read_completion,
    safe_slide_dir,
)
from pathxai.pipeline.executors import Task, run_tasks
from pathxai.pipeline.failures import (
    FAILURE_COLUMNS,
    clear_failures,
    read_failures,
    record_failure,
    record_outcome_failure,
)


def append_failures(path: str, worker: int, n: int) -> int:
    """Task for the concurrency test: ``n`` failure rows from one worker process."""
    for i in range(n):
        record_failure(path, slide_id=f"w{worker}_s{i}", stage="segment",
                       error_type="SlideReadError", message=f"row {i}")
    return n


# --------------------------------------------------------------------------- completion
def test_completion_record_round_trip(tmp_path):
    slide_dir = tmp_path / "slides" / "s1"
    assert not is_complete(slide_dir, "abc") and read_completion(slide_dir) is None
    mark_complete(slide_dir, "abc", {"n_masks": 3})
    record = read_completion(slide_dir)
    assert record["key"] == "abc" and record["n_masks"] == 3
    assert datetime.fromisoformat(record["finished"]).tzinfo is not None
    assert is_complete(slide_dir, "abc")
    assert not is_complete(slide_dir, "changed-parameters")
    (slide_dir / DONE_NAME).write_text('{"key": "abc"')  # truncated by a crash mid-write
    assert not is_complete(slide_dir, "abc")
    with pytest.raises(PipelineError, match="non-empty string"):
        mark_complete(slide_dir, "")


@pytest.mark.parametrize(
    ("slide_id", "reason"),
    [
        ("../evil", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("/etc/passwd", "path separator"),
        ("a\\b", "path separator"),
        ("x\x00y", "control character"),
        ("line\nbreak", "control character"),
        (".hidden", "starts with '.'"),
        ("", "empty"),
        (" s1", "spaces"),
        ("C:evil", "drive letter"),
        ("s" * 256, "255 bytes"),
    ],
)
def test_unsafe_slide_ids_are_refused(tmp_path, slide_id, reason):
    with pytest.raises(PipelineError, match="cannot be used as an output folder") as info:
        safe_slide_dir(tmp_path, slide_id)
    assert reason in str(info.value)


def test_safe_slide_dir_stays_inside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    for ok in ["TCGA-AA-3518-01Z-00-DX1.svs", "slide_001", "s.1", "patient 7 slide 2"]:
        path = safe_slide_dir(out, ok)
        assert path == out.resolve() / "slides" / ok
        assert check_slide_id(ok) == ok
    # a symbolic link placed in the slides folder cannot lead outside
    (out / "slides").mkdir(parents=True)
    (out / "slides" / "linked").symlink_to(tmp_path)
    with pytest.raises(PipelineError, match="outside"):
        safe_slide_dir(out, "linked")
    with pytest.raises(PipelineError, match="must be a string"):
        safe_slide_dir(out, 7)


# --------------------------------------------------------------------------- failures.csv
def test_failures_csv_record_replace_clear(tmp_path):
    path = tmp_path / "failures.csv"
    assert list(read_failures(path).columns) == list(FAILURE_COLUMNS)
    assert read_failures(path).empty
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    record_failure(path, slide_id="007", stage="segment", error_type="SlideReadError",
                   message="cannot read\nslide", time=t)
    record_failure(path, slide_id="b", stage="segment", error_type="MemoryError", message="")
    record_failure(path, slide_id="007", stage="segment", error_type="SlideReadError",
                   message="second try", time=t)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(table.columns) == list(FAILURE_COLUMNS)
    assert table["slide_id"].tolist() == ["b", "007"]  # replaced, id kept as text
    assert table.loc[1, "message"] == "second try"
    assert table.loc[1, "time"] == "2024-01-02T03:04:05+00:00"
    assert clear_failures(path, ["007", "zzz"]) == 1
    assert read_failures(path)["slide_id"].tolist() == ["b"]
    assert clear_failures(tmp_path / "absent.csv", ["b"]) == 0


def test_failed_outcomes_go_to_failures_csv(tmp_path):
    path = tmp_path / "failures.csv"

    outcomes = run_tasks(
        append_failures, [Task("bad", (str(path), 0, "not-an-int"))],
        on_outcome=lambda o: record_outcome_failure(path, o, stage="segment"), progress=False,
    )
    assert outcomes[0].error_type == "TypeError"
    good = run_tasks(append_failures, [Task("good", (str(tmp_path / "other.csv"), 1, 1))],
                     progress=False)
    assert record_outcome_failure(path, good[0], stage="segment") is None
    row = read_failures(path).iloc[0]
    assert (row.slide_id, row.stage, row.error_type) == ("bad", "segment", "TypeError")
    assert "str" in row.message


def test_concurrent_writers_lose_no_rows(tmp_path):
    path = str(tmp_path / "failures.csv")
    run_tasks(append_failures, [Task(f"w{i}", (path, i, 15)) for i in range(2)],
              executor="processes", n_workers=2, progress=False)
    table = read_failures(path)
    assert sorted(table["slide_id"]) == sorted(f"w{w}_s{i}" for w in range(2) for i in range(15))
    assert not [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- checkpoints
class _Payload:
    """Unpickling this writes a marker file: proof that pickle code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


def test_pickle_checkpoints_are_refused_and_never_unpickled(tmp_path):
    import pickle

    build = pytest.importorskip("pathxai.segment.build")
    from pathxai.exceptions import CheckpointError

    marker = tmp_path / "marker.txt"
    evil = pickle.dumps(_Payload(str(marker)))
    # 1. a .pt / .pth / .ckpt file path is refused by name
    for name in ("model.pt", "weights.pth", "last.ckpt"):
        (tmp_path / name).write_bytes(evil)
        with pytest.raises(CheckpointError, match="pickle"):
            build.load_checkpoint(tmp_path / name)
    # 2. a folder holding only a pickle checkpoint is refused
    only_pickle = tmp_path / "only_pickle"
    only_pickle.mkdir()
    (only_pickle / "model.pt").write_bytes(evil)
    with pytest.raises(CheckpointError, match="pickle"):
        build.load_checkpoint(only_pickle)
    # 3. a pickle disguised as model.safetensors next to a valid config fails to parse
    model, cfg = build.build_segmentor("tiny")
    good = build.save_checkpoint(model, cfg, tmp_path / "good")
    loaded, _ = build.load_checkpoint(good)  # the real thing loads ...
    assert sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in model.parameters()
    )
    disguised = tmp_path / "disguised"
    disguised.mkdir()
    (disguised / build.CONFIG_NAME).write_bytes((good / build.CONFIG_NAME).read_bytes())
    (disguised / build.WEIGHTS_NAME).write_bytes(evil)
    with pytest.raises(CheckpointError, match="safetensors"):
        build.load_checkpoint(disguised)
    assert not marker.exists()  # ... and no pickle was ever executed


# --------------------------------------------------------------------------- real pipeline
# One tiny synthetic cohort (256 x 256 slides, the classical stain segmentor, few bootstrap
# resamples) plus the broken files of ../shared/data/slides when present, run locally once
# as the reference; a run killed and resumed with 2 worker processes must reproduce its
# tables byte for byte. (Dask vs local: tests/pipeline/test_executors.py.)
N_PATIENTS = 8  # seed 0: 9 slides, 6 events
STATS = {"n_bootstrap": 10}
PROMPTS = ["tumor", "stroma"]
RUN_OPTIONS = {"model": "stain", "prompts": PROMPTS, "stats_params": STATS, "progress": False}
BROKEN = {  # slide id in the test manifest -> file in ../shared/data/slides
    "broken_svs": "broken.svs",
    "unopenable_tiff": "unopenable.tiff",
    "unreadable_svs": "unreadable.svs",
}
HOSTILE_ID = "P001-S1 <img src=x onerror=alert(1)>"  # a legal file name, hostile HTML
TABLES = ("slide_features.csv", "patient_features.csv", "qc_areas.csv")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _pipeline():
    """The pipeline's ``run`` (skips when a stage it needs is not installed yet)."""
    pytest.importorskip("pathxai.cohort", reason="cohort stage not installed")
    stats = pytest.importorskip("pathxai.stats", reason="statistics stage not installed")
    if not hasattr(stats, "analyze"):
        pytest.skip("pathxai.stats.analyze not available yet")
    from pathxai.pipeline.run import run

    return run


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, request):
    """Synthetic cohort (+ the three broken shared slides when ../shared/data exists)."""
    _pipeline()
    from pathxai.datasets import make_synthetic_cohort

    root = tmp_path_factory.mktemp("ft_cohort")
    manifest = make_synthetic_cohort(root, n_patients=N_PATIENTS, seed=0, slide_size=(256, 256),
                                     n_jobs=1)
    slides = pd.read_csv(root / "slides.csv", dtype=str, keep_default_na=False)
    # user text that must come out escaped in every HTML output
    slides.loc[0, "slide_id"] = HOSTILE_ID
    slides.to_csv(root / "slides.csv", index=False)
    try:
        shared_slides = request.getfixturevalue("shared_slides")
    except pytest.skip.Exception:
        shared_slides = None
    broken = {}
    if shared_slides is not None:
        patients = slides["patient_id"].unique()
        extra = [
            {"slide_id": sid, "patient_id": patients[i], "path": str(shared_slides / name),
             "mpp": ""}
            for i, (sid, name) in enumerate(BROKEN.items())
        ]
        slides = pd.concat([slides, pd.DataFrame(extra)], ignore_index=True)
        slides.to_csv(root / "slides.csv", index=False)
        broken = dict(BROKEN)
    return {"manifest": manifest, "slide_ids": sorted(slides["slide_id"]), "broken": broken}


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    """The local (in-process) run every other backend must reproduce."""
    run = _pipeline()
    out = tmp_path_factory.mktemp("ft_reference")
    result = run(cohort["manifest"], out, executor="local", **RUN_OPTIONS)
    return out, result


def _stats_tables(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in (out / "stats").rglob("*.csv"))


def _assert_same_tables(out: Path, ref: Path) -> None:
    """Feature, QC, statistics tables and failures of two runs are identical."""
    for name in TABLES:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    # the statistics may decline a cohort this small (logged in run.log); whatever result
    # tables the reference has, the other run must have byte for byte
    stats = _stats_tables(ref)
    assert stats == _stats_tables(out)
    for name in stats:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    fail_cols = ["slide_id", "stage", "error_type", "message"]  # "time" differs by design
    pd.testing.assert_frame_equal(
        read_failures(out / "failures.csv")[fail_cols].sort_values("slide_id", ignore_index=True),
        read_failures(ref / "failures.csv")[fail_cols].sort_values("slide_id", ignore_index=True),
    )


def test_broken_slides_are_recorded_and_never_abort_the_cohort(cohort, reference):
    if not cohort["broken"]:
        pytest.skip("../shared/data not present: no broken slide files to test with")
    out, result = reference
    failures = read_failures(out / "failures.csv")
    assert sorted(failures["slide_id"]) == sorted(cohort["broken"])
    assert (failures["error_type"] != "").all() and (failures["message"] != "").all()
    # each message names the offending file
    for row in failures.itertuples():
        assert cohort["broken"][row.slide_id] in row.message, row.message
    good = sorted(set(cohort["slide_ids"]) - set(cohort["broken"]))
    assert sorted(result.slide_features["slide_id"]) == good
    assert result.counts["slides"]["failed"] == len(cohort["broken"])
    flow = json.loads((out / "cohort_flow.json").read_text())
    assert sorted(d["slide_id"] for d in flow["slides_failed"]) == sorted(cohort["broken"])
    assert (out / "report.html").is_file()


def test_user_text_is_escaped_in_every_html_output(reference):
    out, _ = reference
    pages = sorted(out.rglob("*.html"))
    assert pages, "the run wrote no HTML"
    assert any("P001-S1 &lt;img" in p.read_text(encoding="utf-8") for p in pages)
    for page in pages:
        assert "<img src=x onerror" not in page.read_text(encoding="utf-8"), page.name


@pytest.mark.parametrize("bad_id", ["../../escaped", "/tmp/escaped", "..", "a/../../escaped"])
def test_manifest_ids_cannot_write_outside_the_output_folder(cohort, tmp_path, bad_id):
    """A slide id that is a path is refused before any work; nothing lands outside."""
    import shutil

    from pathxai.exceptions import PathXAIError

    run = _pipeline()
    src = Path(cohort["manifest"]).parent
    root = tmp_path / "cohort"
    root.mkdir()
    shutil.copy(src / "manifest.yaml", root / "manifest.yaml")
    shutil.copy(src / "clinical.csv", root / "clinical.csv")
    slides = pd.read_csv(src / "slides.csv", dtype=str, keep_default_na=False)
    slides["path"] = [str((src / p).resolve()) for p in slides["path"]]
    slides.loc[1, "slide_id"] = bad_id
    slides.to_csv(root / "slides.csv", index=False)
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(PathXAIError, match="escaped|'\\.\\.'|cannot be used"):
        run(root / "manifest.yaml", out, **RUN_OPTIONS)
    assert not list(tmp_path.rglob("escaped*")) and not Path("/tmp/escaped").exists()
    assert not (out / "slides").exists() or not any((out / "slides").iterdir())


def _finished_slides(out: Path) -> dict[str, tuple[int, int]]:
    """Slides with a valid completion record: id -> (DONE.json, features.csv) mtimes in ns."""
    done = {}
    for record in sorted((out / "slides").glob(f"*/{DONE_NAME}")):
        slide_dir = record.parent
        if read_completion(slide_dir) is not None:
            done[slide_dir.name] = (
                record.stat().st_mtime_ns, (slide_dir / "features.csv").stat().st_mtime_ns
            )
    return done


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3])  # kill after 4 of the 9 slides (+0.12 s)
def test_sigkill_at_a_random_point_then_resume(cohort, reference, tmp_path, seed):
    """Kill the whole run (driver and its 2 worker processes) with SIGKILL after a random
    number of finished slides, rerun: same tables, no finished slide recomputed."""
    import random
    import signal
    import subprocess
    import sys
    import time

    run = _pipeline()
    rng = random.Random(seed)
    n_good = len(cohort["slide_ids"]) - len(cohort["broken"])
    kill_after = rng.randint(1, n_good - 1)  # finished slides before the kill
    jitter = rng.uniform(0.0, 0.2)  # seconds: lands anywhere inside the next slide
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pathxai", "run", str(cohort["manifest"]), "--out", str(out),
           "--model", "stain", "--prompts", *PROMPTS, "--executor", "processes", "--workers", "2",
           "--quiet",
           "--n-bootstrap", str(STATS["n_bootstrap"])]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # own process group: kill all of it
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((out / "slides").glob(f"*/{DONE_NAME}"))) >= kill_after:
                time.sleep(jitter)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"run ended before the kill: {stderr[-2000:]}"
    finished = _finished_slides(out)
    # (all slides may have finished inside the jitter: then the kill hit a later stage)
    assert kill_after <= len(finished) <= n_good

    result = run(cohort["manifest"], out, executor="processes", n_workers=2, **RUN_OPTIONS)
    counts = json.loads((out / "run.json").read_text())["counts"]["slides"]
    assert counts["cached"] == len(finished)
    assert counts["computed"] == n_good - len(finished)
    assert result.counts["slides"] == counts
    after = _finished_slides(out)
    for slide_id, mtimes in finished.items():
        assert after[slide_id] == mtimes, f"{slide_id} was recomputed"
    _assert_same_tables(out, reference[0])


def test_max_failures_stops_the_run_early(cohort, reference, tmp_path):
    """With the good slides already finished, only the 3 broken ones run: the 2nd failure
    exceeds max_failures=1 and stops the run before the statistics and the report."""
    if not cohort["broken"]:
        pytest.skip("../shared/data not present: no broken slide files to test with")
    import shutil

    from pathxai.exceptions import TooManyFailuresError

    run = _pipeline()
    out = tmp_path / "out"
    shutil.copytree(reference[0] / "slides", out / "slides")
    for record in (out / "slides").glob("*/FAILED.json"):  # forget earlier failures
        record.unlink()
    with pytest.raises(TooManyFailuresError, match="max_failures=1") as info:
        run(cohort["manifest"], out, executor="local", max_failures=1, **RUN_OPTIONS)
    assert info.value.n_failed == 2
    assert {o.key for o in info.value.outcomes} <= set(cohort["broken"])
    failures = read_failures(out / "failures.csv")
    assert len(failures) == 2 and set(failures["slide_id"]) <= set(cohort["broken"])
    assert not (out / "report.html").exists() and not (out / "slide_features.csv").exists()
    assert "too many failures" in json.loads((out / "run.json").read_text())["status"]
