"""Worker processes for a video's per-clip work, so that one long video uses every core: its clips detected at once
in `ingest` (tracking.clip_pool), its clips' trajectories fitted at once (map_clips). Threads do not do here: the
work is Python and numpy on small arrays, which threads only make fight over the GIL."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def cores() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_pool(workers: int, preload: Sequence[str] = (), initializer: Callable | None = None,
                 initargs: tuple = ()) -> ProcessPoolExecutor | None:
    """`workers` processes started by a forkserver (no state copied from this multi-threaded process; `preload`: the
    modules the forkserver imports once for all of them, where it is not running yet), started and able to run
    work; None where they cannot start (a daemonic process, e.g. a Celery prefork worker, may not have children)."""
    try:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
        pool.submit(int).result(timeout=60)
        return pool
    except (AssertionError, OSError, ValueError, BrokenProcessPool, TimeoutError):
        return None


def map_clips(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, preload: Sequence[str] = (),
              errors: bool = False, initializer: Callable | None = None) -> list:
    """fn(*job) for each job, results in order: in up to `workers` processes (fn and the jobs' arguments must pickle:
    a module-level function, tables and dataclasses), else one after another here (one worker or one job, or
    where processes cannot start; `initializer`: run at each worker's start). An exception in a job is raised here,
    as it would be without workers; with `errors`, it is that job's result instead (the caller records the job as
    failed) and the others go on."""
    run = functools.partial(_caught, fn) if errors else fn
    workers = min(workers, len(jobs))
    pool = process_pool(workers, preload, initializer) if workers > 1 else None
    if pool is None:
        return [run(*job) for job in jobs]
    with pool:
        return list(pool.map(run, *zip(*jobs)))


def _caught(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return exc
