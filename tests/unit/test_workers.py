"""fm_assets.labels.workers: a video's per-clip work in worker processes gives what it gives here, in order, and
falls back to this process where workers cannot start."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import polars as pl
import pytest

from fm_assets import synthetic as S
from fm_assets.labels.motion_facts import TrajectoryParams, trajectories
from fm_assets.labels.qa import QAParams, annotate_doubts, clip_rows, clip_trajectories
from fm_assets.labels.workers import cores, map_clips
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


def test_a_daemonic_process_runs_the_jobs_itself():
    """A daemonic process (a Celery prefork worker's child, say) may not have children: the jobs run in it."""
    ctx = mp.get_context("forkserver")
    queue = ctx.Queue()
    proc = ctx.Process(target=_in_a_daemon, args=(queue,), daemon=True)
    proc.start()
    out = queue.get(timeout=60)
    proc.join(timeout=60)
    assert [v for v, _ in out] == [0, 1, 4] and {pid for _, pid in out} == {proc.pid}


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
    there = map_clips(clip_trajectories, jobs, workers=2, preload=["fm_assets.labels.qa"])
    assert len(there) == len(clips) == 7 and all(len(t) for t in there)
    assert pl.concat(there).equals(here)
    assert here["drop_reason"].str.starts_with("doubtful").any()  # (the doubts are in what is compared)
    # and the questions the qa_pairs asset makes of them without an LLM
    params = QAParams()
    asks = [(t, c, "v", params) for t, c in zip(there, clips)]
    questions = [clip_rows(*job) for job in asks]
    assert sum(map(len, questions)) > 0
    assert map_clips(clip_rows, asks, workers=2, preload=["fm_assets.labels.qa"], errors=True) == questions
