"""fm_assets.labels.workers: a video's per-clip work in worker processes gives what it gives here, in order, and
falls back to this process where workers cannot start."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fm_assets import synthetic as S
from fm_assets.labels.motion_facts import TrajectoryParams, trajectories
from fm_assets.labels.qa import QAParams, annotate_doubts, clip_rows, clip_trajectories
from fm_assets.labels.workers import KeptPool, cores, map_clips
from tests.unit.test_motion_facts import tracks_from_gt


def _square_where(i: int) -> tuple[int, int]:
    if i < 0:
        raise ValueError(f"job {i} failed on purpose")
    return i * i, os.getpid()


def test_jobs_run_in_worker_processes_in_order():
    out = map_clips(_square_where, [(i,) for i in range(7)], workers=2)
    assert [v for v, _ in out] == [i * i for i in range(7)]
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_one_worker_or_one_job_runs_here():
    assert {pid for _, pid in map_clips(_square_where, [(i,) for i in range(3)], workers=1)} == {os.getpid()}
    assert map_clips(_square_where, [(3,)], workers=4) == [(9, os.getpid())]
    assert map_clips(_square_where, [], workers=4) == []
    assert cores() >= 1


def test_a_failing_job_raises_here():
    with pytest.raises(ValueError, match="job -1 failed on purpose"):
        map_clips(_square_where, [(1,), (-1,), (2,)], workers=2)


def test_with_errors_a_failing_job_is_its_result_and_the_others_go_on():
    for workers in (1, 2):
        out = map_clips(_square_where, [(1,), (-1,), (2,)], workers=workers, errors=True)
        assert [out[0][0], out[2][0]] == [1, 4]
        assert isinstance(out[1], ValueError) and str(out[1]) == "job -1 failed on purpose"


def _in_a_daemon(queue) -> None:
    queue.put(map_clips(_square_where, [(i,) for i in range(3)], workers=2))
    kept = KeptPool()
    kept.warm()
    queue.put(map_clips(_square_where, [(i,) for i in range(3)], workers=2, pool=kept))


def test_a_daemonic_process_runs_the_jobs_itself():
    """A daemonic process (a Celery prefork worker's child, say) may not have children: the jobs run in it."""
    ctx = mp.get_context("forkserver")
    queue = ctx.Queue()
    proc = ctx.Process(target=_in_a_daemon, args=(queue,), daemon=True)
    proc.start()
    out, kept = queue.get(timeout=60), queue.get(timeout=60)
    proc.join(timeout=60)
    assert [v for v, _ in out] == [0, 1, 4] and {pid for _, pid in out} == {proc.pid}
    assert kept == out  # a kept pool too


def _slow_start(log: Path, seconds: float) -> None:
    """A worker's start that takes `seconds` (an import of torch and mmdet, say): "<pid> starting", then
    "<pid> started" in the log."""
    with log.open("a") as fh:
        fh.write(f"{os.getpid()} starting\n")
    time.sleep(seconds)
    with log.open("a") as fh:
        fh.write(f"{os.getpid()} started\n")


def _started(log: Path, what: str = "started") -> list[int]:
    return [int(pid) for pid, w in (line.split() for line in log.read_text().splitlines()) if w == what] \
        if log.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_a_kept_pool_starts_its_first_worker_without_waiting_and_keeps_it(tmp_path):
    log = tmp_path / "starts.log"
    kept = KeptPool(functools.partial(_slow_start, log, 1.5))
    try:
        t0 = time.perf_counter()
        kept.warm()
        assert time.perf_counter() - t0 < 1.0 and _started(log) == []  # the worker starts while this goes on
        kept.warm()  # (once)
        first = map_clips(_square_where, [(i,) for i in range(4)], workers=1, pool=kept)
        assert [v for v, _ in first] == [0, 1, 4, 9]
        (pid,) = {p for _, p in first}  # one worker: every job in it, one after another
        assert pid != os.getpid() and _started(log) == [pid]
        again = map_clips(_square_where, [(5,)], workers=1, pool=kept)
        assert again == [(25, pid)] and _started(log) == [pid]  # kept: not started again
        many = map_clips(_square_where, [(i,) for i in range(8)], workers=2, pool=kept)
        assert [v for v, _ in many] == [i * i for i in range(8)] and len(set(_started(log))) <= 2
        assert os.getpid() not in {p for _, p in many}
        kept.close()  # the workers stop; the next use starts a fresh one
        after = map_clips(_square_where, [(2,)], workers=1, pool=kept)
        assert after[0][0] == 4 and after[0][1] not in {p for _, p in first + many}
    finally:
        kept.close()


def _die() -> None:
    os._exit(3)


def test_a_kept_worker_that_dies_fails_the_jobs_and_the_next_use_starts_a_fresh_pool():
    kept = KeptPool()
    try:
        before = map_clips(_square_where, [(1,)], workers=1, pool=kept)
        with pytest.raises(BrokenProcessPool):
            map_clips(_die, [()], workers=1, pool=kept)
        after = map_clips(_square_where, [(3,)], workers=1, pool=kept)
        assert after[0][0] == 9 and after[0][1] not in (before[0][1], os.getpid())
    finally:
        kept.close()


def test_closing_a_kept_pool_stops_a_worker_still_starting(tmp_path):
    """A process that warmed the pool and never used it (fm run found nothing to do) does not wait for the worker's
    start at its exit."""
    log = tmp_path / "starts.log"
    kept = KeptPool(functools.partial(_slow_start, log, 60))
    kept.warm()
    deadline = time.time() + 30
    while not _started(log, "starting") and time.time() < deadline:
        time.sleep(0.05)
    (pid,) = _started(log, "starting")
    t0 = time.perf_counter()
    kept.close()
    assert time.perf_counter() - t0 < 10
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and _started(log) == []


def test_trajectories_and_questions_made_in_workers_are_the_ones_made_here():
    """The trajectories asset's jobs (a clip's tracks, the clip, the parameters: its trajectories with their
    doubts) and the qa_pairs asset's without an LLM (a clip's trajectories, the clip, the video id, the
    parameters) through worker processes: the same tables and rows, in clip order, as the trajectories of every
    clip with the doubts marked over the whole video here."""
    jobs, clips = [], []
    for k, spec in enumerate(S.standard_scenes()):  # (scene 5 has a doubtful track: a partial one)
        gt = np.array([(f, i, x, y, w, h) for f, i, x, y, w, h in S.gt_rows(spec)], dtype=float).reshape(-1, 6)
        facts = S.scene_facts(spec)
        clip = {"video_id": "v", "clip_id": f"v:{k}", "start_s": 0.0, "end_s": 8.0, "width": facts["width"],
                "height": facts["height"]}
        tracks = tracks_from_gt(gt, facts["fps"], jitter=1.0, seed=k).with_columns(clip_id=pl.lit(f"v:{k}"))
        jobs.append((tracks, clip, TrajectoryParams()))
        clips.append(clip)
    here = annotate_doubts(pl.concat([trajectories(t, c["width"], c["height"], p) for t, c, p in jobs]), clips)
    there = map_clips(clip_trajectories, jobs, workers=2)
    assert len(there) == len(clips) == 7 and all(len(t) for t in there)
    assert pl.concat(there).equals(here)
    assert here["drop_reason"].str.starts_with("doubtful").any()  # (the doubts are in what is compared)
    # and the questions the qa_pairs asset makes of them without an LLM
    params = QAParams()
    asks = [(t, c, "v", params) for t, c in zip(there, clips)]
    questions = [clip_rows(*job) for job in asks]
    assert sum(map(len, questions)) > 0
    assert map_clips(clip_rows, asks, workers=2, errors=True) == questions
