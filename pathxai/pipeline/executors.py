"""Run one task per slide on a chosen backend: in-process, local processes or Dask.

One entry point, :func:`run_tasks`, runs a top-level function over a list of
:class:`Task` (one per slide) and returns one :class:`TaskOutcome` per task. The
backends differ only in *where* the function runs:

``"local"``
    In this process, one task after the other (debugging, notebooks).
``"processes"``
    A :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
    (``fork`` after PyTorch has started threads can deadlock), ``n_workers`` processes,
    each limited to ``max(1, cpus // n_workers)`` BLAS/PyTorch threads.
``"dask"``
    ``dask.distributed``: an existing cluster given by its scheduler address (e.g. one
    started with dask-jobqueue on Slurm) or a :class:`distributed.Client`; otherwise a
    temporary ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``.

Fault isolation is the same everywhere: an exception raised by the task is caught
*inside* the worker and returned as a failed outcome (never retried: it is
deterministic, and never aborts the cohort); a worker process that dies (segfault,
out-of-memory kill) gives ``error_type="WorkerCrashed"`` after ``retries`` more
attempts. The returned list is sorted by key, so the tables built from it are
identical under every backend and every completion order.

Clusters: start (or reuse) any Dask cluster and pass its scheduler address, e.g. on
Slurm with dask-jobqueue::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=4, processes=4, memory="32GB", walltime="04:00:00")
    cluster.scale(jobs=8)                     # 8 Slurm jobs x 4 single-thread workers
    run_tasks(fn, tasks, executor="dask", scheduler=cluster.scheduler_address)

``pathxai`` must be installed on the workers and the slides and output folder must be
on a file system they share, at the same paths. GPU workers are started with
``--resources GPU=1`` (one worker per GPU); tasks then run only there (see
:func:`gpu_resources`).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import socket
import sys
import time
import traceback as tb
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pathxai.exceptions import PipelineError, TooManyFailuresError

__all__ = [
    "EXECUTORS",
    "Task",
    "TaskOutcome",
    "default_device",
    "gpu_resources",
    "limit_threads",
    "peak_rss_mb",
    "run_tasks",
    "usable_cpus",
]

#: The accepted values of ``executor``.
EXECUTORS: tuple[str, ...] = ("local", "processes", "dask")

#: ``TaskOutcome.error_type`` of a task whose worker process died.
WORKER_CRASHED = "WorkerCrashed"

#: Dask settings of a LocalCluster started here: a worker holds only the task it runs
#: (no queue behind it), so a worker death is blamed on that task alone.
_LOCAL_CLUSTER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0}

_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args, **kwargs)`` for one slide.

    Parameters
    ----------
    key : str
        Unique name of the task (the slide id); outcomes are sorted by it.
    args : tuple
        Positional arguments of the task function (small and picklable: paths,
        parameters; never images).
    kwargs : mapping
        Keyword arguments of the task function.
    """

    key: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskOutcome:
    """What became of one :class:`Task`.

    Attributes
    ----------
    key : str
        The task's key (slide id).
    ok : bool
        True when the function returned; False when it raised or its worker died.
    value : object
        The function's return value (None when ``ok`` is False).
    error_type : str or None
        Exception class name (``"SlideReadError"``, ``"MemoryError"``, ...) or
        ``"WorkerCrashed"``; None when ``ok``.
    message : str or None
        The exception message; None when ``ok``.
    traceback : str or None
        The formatted traceback from the worker; None when ``ok``.
    seconds : float
        Wall time of the last attempt inside the worker, in seconds (0 when the
        worker died before reporting).
    worker : str
        ``"host:pid"`` of the process that ran the last attempt (``""`` if unknown).
    attempts : int
        How many times the task was started (>1 only after worker crashes).
    peak_rss_mb : float or None
        Peak resident memory of that worker process so far, in MiB
        (``resource.getrusage``; None where unavailable).
    """

    key: str
    ok: bool
    value: Any = None
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    worker: str = ""
    attempts: int = 1
    peak_rss_mb: float | None = None


def default_device() -> str:
    """The device a task should compute on in this process.

    Returns
    -------
    str
        ``"cuda"`` when PyTorch is installed and sees a GPU, else ``"cpu"``.
        On a Dask worker started with ``CUDA_VISIBLE_DEVICES=i`` this is that one GPU.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- worker side
def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (None where unknown).

    Read with ``resource.getrusage``; call it on a worker (``Client.run(peak_rss_mb)``)
    to see that worker's peak.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _execute(fn: Callable[..., Any], task: Task, attempt: int = 1) -> TaskOutcome:
    """Run one task and turn any exception into a failed outcome (runs on the worker)."""
    start = time.perf_counter()
    try:
        value = fn(*task.args, **dict(task.kwargs))
    except Exception as exc:  # noqa: BLE001 - fault isolation is the point
        return TaskOutcome(
            key=task.key,
            ok=False,
            error_type=type(exc).__name__,
            message=str(exc) or repr(exc),
            traceback=tb.format_exc(),
            seconds=time.perf_counter() - start,
            worker=_worker_name(),
            attempts=attempt,
            peak_rss_mb=peak_rss_mb(),
        )
    return TaskOutcome(
        key=task.key,
        ok=True,
        value=value,
        seconds=time.perf_counter() - start,
        worker=_worker_name(),
        attempts=attempt,
        peak_rss_mb=peak_rss_mb(),
    )


def limit_threads(n_threads: int) -> None:
    """Limit BLAS/OpenMP/PyTorch threads of this (worker) process to ``n_threads``.

    Sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` (read
    when those libraries load) and calls ``torch.set_num_threads`` if PyTorch is
    already imported.
    """
    for var in _THREAD_ENV_VARS:
        os.environ[var] = str(n_threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # already imported: env vars are too late
        torch.set_num_threads(n_threads)


def _infrastructure_failure(
    task: Task, exc: BaseException, attempts: int, error_type: str | None = None
) -> TaskOutcome:
    """A failed outcome for an error raised outside the task function."""
    return TaskOutcome(
        key=task.key,
        ok=False,
        error_type=error_type or type(exc).__name__,
        message=str(exc) or repr(exc),
        traceback="".join(tb.format_exception(type(exc), exc, exc.__traceback__)),
        attempts=attempts,
    )


# --------------------------------------------------------------------------- driver side
class _Collector:
    """Receives outcomes in completion order: callback, progress bar, failure limit."""

    def __init__(
        self,
        total: int,
        on_outcome: Callable[[TaskOutcome], Any] | None,
        max_failures: int | None,
        progress: bool,
        desc: str,
    ):
        from tqdm.auto import tqdm

        self.outcomes: list[TaskOutcome] = []
        self.desc = desc
        self.n_failed = 0
        self.on_outcome = on_outcome
        self.max_failures = max_failures
        self.bar = tqdm(total=total, desc=desc, unit="task", disable=not progress)

    @property
    def over_limit(self) -> bool:
        return self.max_failures is not None and self.n_failed > self.max_failures

    def add(self, outcome: TaskOutcome) -> None:
        self.outcomes.append(outcome)
        if not outcome.ok:
            self.n_failed += 1
            self.bar.set_postfix(failed=self.n_failed)
        self.bar.update(1)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def raise_if_over_limit(self) -> None:
        if self.over_limit:
            raise TooManyFailuresError(
                self.n_failed, int(self.max_failures or 0), _sorted(self.outcomes)
            )

    def close(self) -> None:
        self.bar.close()


def _sorted(outcomes: Iterable[TaskOutcome]) -> list[TaskOutcome]:
    return sorted(outcomes, key=lambda o: o.key)


def usable_cpus() -> int:
    """CPU cores this process may use (its affinity mask where known, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _default_threads(n_workers: int) -> int:
    return max(1, usable_cpus() // max(1, n_workers))


def _run_local(fn: Callable[..., Any], tasks: Sequence[Task], col: _Collector) -> None:
    for task in tasks:
        col.add(_execute(fn, task))
        col.raise_if_over_limit()


def _new_pool(n_workers: int, n_threads: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=limit_threads,
        initargs=(n_threads,),
    )


def _run_processes(
    fn: Callable[..., Any],
    tasks: Sequence[Task],
    col: _Collector,
    n_workers: int,
    retries: int,
) -> None:
    """Process pool with at most ``n_workers`` tasks in flight.

    Keeping no queue beyond the running tasks means a crash can only be blamed on the
    tasks that were running; those are rerun one at a time in a fresh 1-worker pool,
    where a second crash is unambiguous.
    """
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise PipelineError(
            f"task function {fn!r} cannot be pickled ({exc}); the 'processes' and 'dask' "
            "executors need a top-level function defined in an importable module."
        ) from exc
    n_threads = _default_threads(n_workers)
    pending: deque[tuple[Task, int]] = deque((t, 0) for t in tasks)  # (task, crashes)
    suspects: deque[tuple[Task, int]] = deque()

    def drain(queue: deque[tuple[Task, int]], width: int) -> None:
        pool = _new_pool(width, n_threads)
        inflight: dict[cf.Future, tuple[Task, int]] = {}
        try:
            while queue or inflight:
                while queue and len(inflight) < width and not col.over_limit:
                    task, crashes = queue.popleft()
                    inflight[pool.submit(_execute, fn, task, crashes + 1)] = (task, crashes)
                if not inflight:
                    break
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                broken = False
                for fut in sorted(done, key=lambda f: inflight[f][0].key):
                    task, crashes = inflight.pop(fut)
                    try:
                        col.add(fut.result())
                    except cf.process.BrokenProcessPool as exc:
                        broken = True
                        handle_crash(task, crashes, exc, alone=width == 1)
                    except Exception as exc:  # noqa: BLE001 - e.g. unpicklable result
                        col.add(_infrastructure_failure(task, exc, crashes + 1))
                if broken:
                    # every other in-flight future fails too; blame is unknown for them
                    for fut, (task, crashes) in list(inflight.items()):
                        try:
                            col.add(fut.result())
                        except cf.process.BrokenProcessPool as exc:
                            handle_crash(task, crashes, exc, alone=False)
                        except Exception as exc:  # noqa: BLE001
                            col.add(_infrastructure_failure(task, exc, crashes + 1))
                    inflight.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = _new_pool(width, n_threads)
                # over the failure limit: stop submitting, let in-flight tasks report
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def handle_crash(task: Task, crashes: int, exc: BaseException, *, alone: bool) -> None:
        if not alone:  # crashed together with others: rerun alone, no blame yet
            suspects.append((task, crashes))
            return
        crashes += 1
        if crashes > retries:
            col.add(
                _infrastructure_failure(
                    task,
                    PipelineError(
                        f"the worker process running {task.key!r} died {crashes} time(s) "
                        f"({exc}); likely out of memory or a crash in native code"
                    ),
                    crashes,
                    error_type=WORKER_CRASHED,
                )
            )
        else:
            suspects.append((task, crashes))

    drain(pending, n_workers)
    while suspects and not col.over_limit:
        batch = deque(suspects)
        suspects.clear()
        drain(batch, 1)
    col.raise_if_over_limit()


def _run_dask(
    fn: Callable[..., Any],
    tasks: Sequence[Task],
    col: _Collector,
    n_workers: int,
    scheduler: Any,
    resources: Mapping[str, float] | None,
    retries: int,
) -> None:
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise PipelineError(
            "executor='dask' needs dask.distributed: pip install 'pathxai[distributed]'"
        ) from exc

    cluster = None
    own_client = True
    if isinstance(scheduler, Client):
        client, own_client = scheduler, False
    elif scheduler:
        try:
            client = Client(str(scheduler))  # timeout: distributed.comm.timeouts.connect
        except OSError as exc:
            raise PipelineError(
                f"cannot connect to the Dask scheduler at {scheduler!r} ({exc}); check the "
                "address (tcp://host:8786) and that the scheduler is running."
            ) from exc
    else:
        config = {**_LOCAL_CLUSTER_CONFIG, "distributed.scheduler.allowed-failures": retries}
        with dask.config.set(config):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # random free port: never clashes
                resources=dict(resources) if resources else None,
            )
        client = Client(cluster)
    futures: dict[Any, Task] = {}
    try:
        if cluster is not None:
            client.run(limit_threads, _default_threads(n_workers))
        if resources is None:
            resources = gpu_resources(client)
        run_id = uuid.uuid4().hex[:8]
        for task in tasks:
            fut = client.submit(
                _execute, fn, task, pure=False, resources=dict(resources) if resources else None,
                key=f"pathxai-{col.desc}-{task.key}-{run_id}",  # readable on the dashboard
            )
            futures[fut] = task
        for fut in as_completed(list(futures)):
            task = futures[fut]
            try:
                outcome = fut.result()
            except KilledWorker as exc:
                outcome = _infrastructure_failure(
                    task,
                    PipelineError(
                        f"the Dask worker running {task.key!r} died repeatedly ({exc}); likely "
                        "out of memory (raise the worker memory limit) or a crash in native code"
                    ),
                    retries + 1,
                    error_type=WORKER_CRASHED,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. cannot deserialise the result
                outcome = _infrastructure_failure(task, exc, 1)
            col.add(outcome)
            if col.over_limit:
                client.cancel([f for f in futures if not f.done()])
                break
        col.raise_if_over_limit()
    finally:
        if futures and col.over_limit:
            client.cancel(list(futures))
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def gpu_resources(client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when a worker of the cluster advertises a ``GPU`` resource, else None.

    Workers started with ``dask worker ADDR --resources GPU=1`` advertise one; tasks
    submitted with this restriction then run only there, one per GPU at a time.

    Parameters
    ----------
    client : distributed.Client
        A connected client.
    """
    workers = client.scheduler_info().get("workers", {})
    if any((w.get("resources") or {}).get("GPU") for w in workers.values()):
        return {"GPU": 1}
    return None


def run_tasks(
    fn: Callable[..., Any],
    tasks: Iterable[Task],
    *,
    executor: str = "local",
    n_workers: int = 1,
    scheduler: Any = None,
    max_failures: int | None = None,
    resources: Mapping[str, float] | None = None,
    retries: int = 1,
    on_outcome: Callable[[TaskOutcome], Any] | None = None,
    progress: bool = True,
    desc: str = "slides",
) -> list[TaskOutcome]:
    """Run ``fn`` once per task on the chosen backend; never let one task abort the rest.

    Parameters
    ----------
    fn : callable
        Top-level function (importable by name on the workers) called as
        ``fn(*task.args, **task.kwargs)``. It should write large outputs (masks) to disk
        itself and return something small (paths, a dict, a one-row DataFrame).
    tasks : iterable of Task
        One per slide; keys must be unique strings.
    executor : {"local", "processes", "dask"}
        Where tasks run (see the module docstring).
    n_workers : int
        Worker processes for ``"processes"`` and for the temporary Dask
        ``LocalCluster``; ignored by ``"local"`` and by an existing Dask cluster.
    scheduler : str or distributed.Client, optional
        Only with ``executor="dask"``: address of an existing scheduler
        (``"tcp://host:8786"``) or a connected client. None starts a LocalCluster.
    max_failures : int, optional
        Stop once more than this many tasks have failed (0 = stop at the first
        failure); None never stops. Tasks not yet started are cancelled;
        :class:`~pathxai.exceptions.TooManyFailuresError` is raised after every
        finished outcome has gone through ``on_outcome``.
    resources : mapping, optional
        Dask resources each task holds, e.g. ``{"GPU": 1}``; workers must advertise
        them (``dask worker ADDR --resources GPU=1``). None (default): ``{"GPU": 1}``
        when any worker advertises a GPU (see :func:`gpu_resources`), else no
        restriction; ``{}``: never restrict. A LocalCluster started here advertises
        ``resources`` on each worker.
    retries : int
        Extra attempts for a task whose *worker process died* (exceptions raised by
        ``fn`` are never retried). For Dask this is the LocalCluster's
        ``distributed.scheduler.allowed-failures``; an existing cluster uses its own.
    on_outcome : callable, optional
        Called in this process with each :class:`TaskOutcome` as it arrives
        (completion order), e.g. to append to ``failures.csv``.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Progress bar label.

    Returns
    -------
    list of TaskOutcome
        One per task, sorted by ``key``.

    Raises
    ------
    PipelineError
        Invalid arguments, duplicate keys, an unpicklable ``fn`` or an unreachable
        scheduler.
    TooManyFailuresError
        More than ``max_failures`` tasks failed.
    """
    task_list = list(tasks)
    if executor not in EXECUTORS:
        raise PipelineError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise PipelineError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    if max_failures is not None and (
        isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0
    ):
        raise PipelineError(
            f"max_failures must be None (never stop) or an integer >= 0, got {max_failures!r}"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise PipelineError(f"retries must be an integer >= 0, got {retries!r}")
    if scheduler is not None and executor != "dask":
        raise PipelineError(
            f"scheduler={scheduler!r} is only used with executor='dask' (got {executor!r})"
        )
    seen: set[str] = set()
    for task in task_list:
        if not isinstance(task, Task):
            raise PipelineError(f"tasks must be Task objects, got {type(task).__name__}")
        if not isinstance(task.key, str) or not task.key:
            raise PipelineError(f"task keys must be non-empty strings, got {task.key!r}")
        if task.key in seen:
            raise PipelineError(f"duplicate task key {task.key!r}; each slide id must be unique")
        seen.add(task.key)
    if not task_list:
        return []

    col = _Collector(len(task_list), on_outcome, max_failures, progress, desc)
    try:
        if executor == "local":
            _run_local(fn, task_list, col)
        elif executor == "processes":
            _run_processes(fn, task_list, col, n_workers, retries)
        else:
            _run_dask(fn, task_list, col, n_workers, scheduler, resources, retries)
    finally:
        col.close()
    return _sorted(col.outcomes)
