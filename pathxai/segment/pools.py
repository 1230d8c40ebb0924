"""Thread pools that drop queued work on an error (shared by the predictor and the slide
streamer)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

__all__ = ["cancelling_pool"]


@contextmanager
def cancelling_pool(workers: int, *, name: str) -> Iterator[ThreadPoolExecutor]:
    """A :class:`ThreadPoolExecutor` of ``workers`` threads (named ``name-N``). On leaving
    normally it waits for all submitted jobs; on an error (or an interrupt) it cancels the
    queued jobs and waits only for the running ones, so the error reaches the caller at once
    and nothing keeps using the caller's resources (e.g. an open slide) afterwards."""
    ex = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        yield ex
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
