"""Cohort runs: manifest → segmentation → features → patients → statistics → report.

Public API
----------
run(manifest, out_dir, ...) -> RunResult
    The whole pipeline, cached by content and resumable (see :mod:`.run`).
RunResult
    What a run produced (tables, counts of cached vs computed work, report path).
run_tasks, Task, TaskOutcome
    One task per slide on the local / processes / Dask backends (:mod:`.executors`).
FileHashCache, stage_key, hash_file
    Content-addressed cache keys (:mod:`.cache`).

``run`` and ``RunResult`` are imported eagerly (so the name ``pathxai.pipeline.run``
is always the function, never shadowed by the module of the same name); the rest
lazily.
"""

from __future__ import annotations

from pathxai._lazy import lazy_exports
from pathxai.pipeline.run import DEFAULT_PROMPTS, RunResult, run

_LAZY: dict[str, str] = {
    "run_tasks": "pathxai.pipeline.executors:run_tasks",
    "Task": "pathxai.pipeline.executors:Task",
    "TaskOutcome": "pathxai.pipeline.executors:TaskOutcome",
    "FileHashCache": "pathxai.pipeline.cache:FileHashCache",
    "stage_key": "pathxai.pipeline.cache:stage_key",
    "hash_file": "pathxai.pipeline.cache:hash_file",
}

__all__ = [
    "DEFAULT_PROMPTS",
    "FileHashCache",
    "RunResult",
    "Task",
    "TaskOutcome",
    "hash_file",
    "run",
    "run_tasks",
    "stage_key",
]


__getattr__, __dir__ = lazy_exports('pathxai.pipeline', _LAZY, globals())
