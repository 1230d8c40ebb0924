"""Execution backends: same outcomes everywhere, fault isolation, failure limits.

The task functions are defined at module level so the ``processes`` and ``dask``
workers (spawned processes, which inherit ``sys.path``) can import them by name.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from pathxai.exceptions import PipelineError, SlideReadError, TooManyFailuresError
from pathxai.pipeline.executors import Task, TaskOutcome, run_tasks, usable_cpus

distributed = pytest.importorskip("distributed")


def square_task(x: int, *, fail: bool = False, crash: bool = False, sleep: float = 0.0) -> dict:
    """Toy per-slide task: returns ``{"x": x, "square": x * x}``; can raise or kill itself."""
    if sleep:
        time.sleep(sleep)
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)  # like the OOM killer
    if fail:
        raise SlideReadError(f"slide_{x}.svs", "truncated file")
    return {"x": x, "square": x * x}


def probe_task(kind: str):
    """``"threads"``: the thread limits of the worker; ``"lambda"``: an unpicklable value."""
    if kind == "lambda":
        return lambda: kind
    return {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _tasks(n: int, *, fail=(), crash=(), sleep: float = 0.0) -> list[Task]:
    # keys chosen so that completion order != key order != submission order
    return [
        Task(f"s{x:02d}", (x,), {"fail": x in fail, "crash": x in crash, "sleep": sleep})
        for x in reversed(range(n))
    ]


@pytest.fixture(scope="module")
def cluster_address():
    """One 2-worker LocalCluster for the whole module (start-up costs seconds)."""
    import dask

    # as run_tasks' own LocalCluster: retry a crashed task once; no queue behind a running
    # task, so only the task that kills its worker is blamed
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _summary(outcomes: list[TaskOutcome]) -> list[tuple]:
    return [(o.key, o.ok, o.value, o.error_type, o.message) for o in outcomes]


def test_every_backend_gives_the_same_outcomes(cluster_address):
    n = 6
    expected = [
        (f"s{x:02d}", True, {"x": x, "square": x * x}, None, None) for x in range(n)
    ]
    expected[2] = ("s02", False, None, "SlideReadError",
                   "cannot read slide 'slide_2.svs': truncated file")
    results = {}
    for executor, kwargs in [
        ("local", {}),
        ("processes", {"n_workers": 2}),
        ("dask", {"scheduler": cluster_address}),
    ]:
        out = run_tasks(square_task, _tasks(n, fail={2}), executor=executor, progress=False,
                        **kwargs)
        results[executor] = out
        assert _summary(out) == expected, executor
    # local runs here; the others ran in other processes
    assert {o.worker.rsplit(":", 1)[1] for o in results["local"]} == {str(os.getpid())}
    for executor in ("processes", "dask"):
        pids = {o.worker.rsplit(":", 1)[1] for o in results[executor]}
        assert str(os.getpid()) not in pids, executor
    failed = results["processes"][2]
    assert "SlideReadError" in failed.traceback and failed.attempts == 1
    assert all(o.seconds >= 0 and o.peak_rss_mb > 0 for o in results["dask"])


def test_on_outcome_sees_each_task_once_in_completion_order():
    seen: list[str] = []
    tasks = [Task(f"k{i}", (i,)) for i in (2, 0, 3, 1)]  # local: completes in this order
    out = run_tasks(square_task, tasks, executor="local", progress=False,
                    on_outcome=lambda o: seen.append(o.key))
    assert seen == ["k2", "k0", "k3", "k1"]
    assert [o.key for o in out] == ["k0", "k1", "k2", "k3"]  # returned sorted by key


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_max_failures_stops_early(executor):
    seen: list[TaskOutcome] = []
    tasks = [Task(f"s{x:02d}", (x,), {"fail": x < 3}) for x in range(10)]  # 3 fail first
    with pytest.raises(TooManyFailuresError) as info:
        run_tasks(square_task, tasks, executor=executor, n_workers=2 - (executor == "local"),
                  max_failures=1, progress=False, on_outcome=seen.append)
    err = info.value
    # stops at the 2nd failure; with 2 workers, a task already running still reports
    assert err.max_failures == 1
    assert err.n_failed == 2 if executor == "local" else 2 <= err.n_failed <= 3
    assert "max_failures=1" in str(err) and "'s00'" in str(err)
    assert len(seen) < len(tasks)  # stopped before the successes
    assert [o.key for o in err.outcomes] == sorted(o.key for o in seen)


def test_max_failures_zero_and_none():
    tasks = [Task(f"s{x}", (x,), {"fail": x == 1}) for x in range(3)]
    with pytest.raises(TooManyFailuresError):
        run_tasks(square_task, tasks, max_failures=0, progress=False)
    out = run_tasks(square_task, tasks, max_failures=None, progress=False)
    assert [o.ok for o in out] == [True, False, True]


def test_dask_max_failures_cancels_the_rest(cluster_address):
    tasks = [Task(f"s{x:02d}", (x,), {"fail": True, "sleep": 0.05}) for x in range(12)]
    with pytest.raises(TooManyFailuresError) as info:
        run_tasks(square_task, tasks, executor="dask", scheduler=cluster_address,
                  max_failures=2, progress=False)
    assert info.value.n_failed == 3
    assert len(info.value.outcomes) == 3


def test_process_crash_is_blamed_on_the_crashing_task_only():
    out = run_tasks(square_task, _tasks(4, crash={1}), executor="processes", n_workers=2,
                    retries=1, progress=False)
    by_key = {o.key: o for o in out}
    assert by_key["s01"].ok is False
    assert by_key["s01"].error_type == "WorkerCrashed"
    assert by_key["s01"].attempts == 2  # retried once, alone, then blamed
    assert "'s01'" in by_key["s01"].message
    for x in (0, 2, 3):
        assert by_key[f"s{x:02d}"].value == {"x": x, "square": x * x}


def test_dask_killed_worker_becomes_a_failed_outcome(cluster_address):
    out = run_tasks(square_task, _tasks(3, crash={0}), executor="dask",
                    scheduler=cluster_address, progress=False)
    by_key = {o.key: o for o in out}
    assert by_key["s00"].error_type == "WorkerCrashed"
    assert by_key["s01"].value == {"x": 1, "square": 1}
    assert by_key["s02"].value == {"x": 2, "square": 4}


def test_gpu_workers_are_detected_and_used(cluster_address):
    """Tasks are restricted to GPU workers exactly when the cluster advertises a GPU."""
    from pathxai.pipeline.executors import gpu_resources

    with distributed.Client(cluster_address) as client:
        assert gpu_resources(client) is None  # plain CPU workers
    # a worker started like ``dask worker ADDR --resources GPU=1`` (no real GPU needed)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  resources={"GPU": 1}, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            assert gpu_resources(client) == {"GPU": 1}
        out = run_tasks(square_task, _tasks(2), executor="dask",
                        scheduler=cluster.scheduler_address, progress=False)
    assert [o.value["square"] for o in out] == [0, 1]


def test_dask_own_local_cluster():
    out = run_tasks(square_task, _tasks(3), executor="dask", n_workers=1, progress=False)
    assert [o.value["square"] for o in out] == [0, 1, 4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"executor": "spark"}, "unknown executor 'spark'"),
        ({"n_workers": 0}, "n_workers must be an integer >= 1"),
        ({"max_failures": -1}, "max_failures must be None"),
        ({"scheduler": "tcp://x:1"}, "only used with executor='dask'"),
        ({"retries": -2}, "retries must be"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(PipelineError, match=match):
        run_tasks(square_task, _tasks(1), progress=False, **kwargs)


def test_duplicate_keys_and_unpicklable_functions_are_refused():
    with pytest.raises(PipelineError, match="duplicate task key 'a'"):
        run_tasks(square_task, [Task("a", (1,)), Task("a", (2,))], progress=False)
    with pytest.raises(PipelineError, match="cannot be pickled"):
        run_tasks(lambda x: x, [Task("a", (1,))], executor="processes", progress=False)
    assert run_tasks(square_task, [], executor="processes") == []


def test_unreachable_scheduler_is_a_clear_error():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(
        PipelineError, match="cannot connect to the Dask scheduler"
    ):
        run_tasks(square_task, _tasks(1), executor="dask", scheduler="tcp://127.0.0.1:9",
                  progress=False)


def test_worker_limits_and_unpicklable_results():
    """Each of 2 worker processes gets half the CPUs' threads; a result that cannot be
    sent back is a failed outcome of that task, not a broken pool."""
    out = run_tasks(probe_task, [Task("a", ("threads",)), Task("b", ("lambda",)),
                                 Task("c", ("threads",))],
                    executor="processes", n_workers=2, progress=False)
    expected = str(max(1, usable_cpus() // 2))
    for o in (out[0], out[2]):
        assert o.value == {"OMP_NUM_THREADS": expected, "MKL_NUM_THREADS": expected}
    assert out[1].ok is False and out[1].attempts == 1
    assert "pickle" in (out[1].error_type + out[1].message).lower()


# --------------------------------------------------------------------------- real pipeline
@pytest.mark.slow
def test_pipeline_tables_are_identical_locally_and_on_two_dask_workers(cluster_address,
                                                                       tmp_path):
    """The cohort run on the 2-worker LocalCluster gives the local run's tables, byte for
    byte (completion order differs; tables are sorted by slide id)."""
    pytest.importorskip("pathxai.cohort", reason="cohort stage not installed")
    stats = pytest.importorskip("pathxai.stats", reason="statistics stage not installed")
    if not hasattr(stats, "analyze"):
        pytest.skip("pathxai.stats.analyze not available yet")
    from pathxai.datasets import make_synthetic_cohort
    from pathxai.pipeline.run import run

    manifest = make_synthetic_cohort(tmp_path / "cohort", n_patients=8, seed=1,
                                     slide_size=(256, 256), n_jobs=1)
    options = {"model": "stain", "prompts": ["tumor", "stroma"],
               "stats_params": {"n_bootstrap": 10}, "progress": False}
    local = run(manifest, tmp_path / "local", executor="local", **options)
    dask = run(manifest, tmp_path / "dask", executor="dask", scheduler=cluster_address,
               **options)
    n_slides = len(local.slide_features)
    assert n_slides >= 8 and dask.counts["slides"]["computed"] == n_slides
    # the slides really ran in the cluster's worker processes
    import re

    log = (tmp_path / "dask" / "run.log").read_text()
    pids = set(re.findall(r"slide \S+ done in [\d.]+ s \([^)]*:(\d+)\)", log))
    assert pids and str(os.getpid()) not in pids
    tables = ["slide_features.csv", "patient_features.csv", "qc_areas.csv"]
    tables += sorted(p.relative_to(tmp_path / "local").as_posix()
                     for p in (tmp_path / "local" / "stats").rglob("*.csv"))
    for name in tables:
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
