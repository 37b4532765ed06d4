"""Worker processes for a video's per-clip work, so that one long video uses every core: its clips detected at once
in `ingest` (tracking.clip_pool), its runs of clips tracked at once (a KeptPool), its clips' trajectories fitted at
once (map_clips). Threads do not do here: the work is Python and numpy on small arrays, which threads only make
fight over the GIL."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

# what the forkserver imports once for every worker it starts (one forkserver a process: whichever pool starts it
# first sets this): the pure core's tracking and QA modules (numpy, polars, OpenCV) and the motion detector. Not
# torch or mmdet: a worker that needs them imports them itself (KeptPool), so that the others need not wait for them
PRELOAD = ("fm_assets.labels.tracking", "fm_assets.labels.qa", "fm_resources.detection.motion")
_CANNOT_START = (AssertionError, OSError, ValueError, BrokenProcessPool, TimeoutError)


def cores() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor | None:
    """Up to `workers` processes started by a forkserver (no state copied from this multi-threaded process), started
    and able to run work; None where they cannot start (a daemonic process, e.g. a Celery prefork worker, may not
    have children)."""
    started = _start_pool(workers, initializer, initargs)
    if started is None:
        return None
    pool, first = started
    try:
        first.result(timeout=60)
        return pool
    except _CANNOT_START:
        pool.shutdown(wait=False, cancel_futures=True)
        return None


def _start_pool(workers: int, initializer: Callable | None = None,
                initargs: tuple = ()) -> tuple[ProcessPoolExecutor, Future] | None:
    """A forkserver's pool of up to `workers` processes and the job that starts its first (None where it cannot)."""
    try:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
    except _CANNOT_START:
        return None
    try:
        return pool, pool.submit(int)  # starts a worker now: a process that may not have children fails here
    except _CANNOT_START:
        pool.shutdown(wait=False, cancel_futures=True)
        return None


class KeptPool:
    """A process pool kept from one use to the next by this process, so that a process that labels one video after
    another (`fm run` over a folder, a backfill's runs) starts its workers, and their `initializer` (e.g. importing
    torch and mmdet: seconds), once. `warm()` starts the first worker and returns at once: its start overlaps the
    work before the pool's first use. Up to `workers()` processes, the others started as jobs need them;
    `close()` stops them."""

    def __init__(self, initializer: Callable | None = None, workers: Callable[[], int] = cores):
        self.initializer, self.workers = initializer, workers
        self._pool: ProcessPoolExecutor | None = None
        self._first: Future | None = None  # the job that starts the first worker
        self._cannot = False  # this process may not start workers: every use runs here
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the pool's first worker (and its initializer) where none is running; returns at once."""
        with self._lock:
            if self._pool is None and not self._cannot:
                started = _start_pool(self.workers(), self.initializer)
                self._cannot = started is None
                self._pool, self._first = started or (None, None)

    def running(self) -> bool:
        """Whether the pool is started (its workers running or starting)."""
        return self._pool is not None

    def get(self, wait: bool = True) -> ProcessPoolExecutor | None:
        """The pool; with `wait`, its first worker started and ready (a job given before would start another worker:
        what jobs for every core want, not one job); None where this process cannot start workers. A worker that
        fails to start raises BrokenProcessPool, and the next use starts a fresh pool."""
        self.warm()
        with self._lock:
            pool, first = self._pool, self._first
        if first is not None and wait:
            try:
                first.result()
            except BrokenProcessPool:
                self.close()
                raise
        return pool

    def close(self) -> None:
        """Stop the workers now (they hold what the initializer imported), one still starting (in its initializer)
        included, whose end would otherwise be waited for; the next use or `warm()` starts a fresh pool."""
        with self._lock:
            pool, first, self._pool, self._first = self._pool, self._first, None, None
        if pool is None:
            return
        if first is not None and not first.done():
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # (Python 3.14: terminate_workers)
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def map_clips(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, errors: bool = False,
              initializer: Callable | None = None, pool: KeptPool | None = None) -> list:
    """fn(*job) for each job, results in order: in up to `workers` processes (fn and the jobs' arguments must pickle:
    a module-level function, tables and dataclasses), else one after another here (one worker or one job, or
    where processes cannot start; `initializer`: run at each worker's start). With a kept `pool`, the jobs run in
    its workers (one worker: one after another in one of them) and the pool stays. An exception in a job is
    raised here, as it would be without workers; with `errors`, it is that job's result instead (the caller
    records the job as failed) and the others go on. A worker that dies takes the kept pool with it: the next use
    starts a fresh one."""
    run = functools.partial(_caught, fn) if errors else fn
    workers = min(workers, len(jobs))
    kept = pool.get(wait=workers <= 1) if pool is not None and jobs else None
    if pool is not None and kept is not None:
        try:
            if workers <= 1:
                return kept.submit(_in_order, run, jobs).result()
            return list(kept.map(run, *zip(*jobs)))
        except BrokenProcessPool:
            pool.close()
            raise
    own = process_pool(workers, initializer) if workers > 1 else None
    if own is None:
        return _in_order(run, jobs)
    with own:
        return list(own.map(run, *zip(*jobs)))


def _in_order(fn: Callable[..., Any], jobs: Sequence[tuple]) -> list:
    return [fn(*job) for job in jobs]


def _caught(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return exc
