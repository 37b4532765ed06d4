"""A long run of a shot tracked in segments (fm_assets.labels.tracking.track_runs): where the cuts fall, how the
segments' tracks are joined (stitch), and that the real mmdet tracker over segments, in worker processes (kept
ones too) or not, gives the tracks one tracker over the whole run gives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fm_assets.labels.tracking import (
    TrackParams,
    run_frames,
    run_track_rows,
    segment_bounds,
    shot_track_rows,
    stitch,
    track_runs,
)
from fm_assets.labels.types import Tracked
from fm_assets.labels.workers import KeptPool
from fm_resources.mmdet_trackers import one_thread, start_worker
from fm_resources.trackers import TrackerResource
from tests.unit.test_shot_tracking import BLUE, RED, clip, det_rows


def test_segments_depend_on_the_run_length_alone():
    assert segment_bounds(1000, 2000) == [0, 1000]
    assert segment_bounds(3999, 2000) == [0, 3999]  # under twice the length: one segment
    assert segment_bounds(12_720, 2000) == [0, 2120, 4240, 6360, 8480, 10600, 12720]
    assert segment_bounds(12_720, 0) == [0, 12_720]  # 0: never cut
    b = segment_bounds(7, 3)
    assert b[0] == 0 and b[-1] == 7 and len(b) == 3


def part(s: int, n_seen: int, boxes: list[tuple[int, int, range]]) -> Tracked:
    """A Tracked of a tracker that saw frames s .. s + n_seen - 1: (track id, detection index, absolute frames)."""
    rows = sorted((f - s, t, d) for t, d, frames in boxes for f in frames)
    frame, ids, dets = (np.array(col, np.int64) for col in zip(*rows))
    return Tracked(n_seen, frame, ids, np.zeros((len(rows), 4)), np.ones(len(rows)), dets)


def test_stitch_continues_the_track_sharing_the_most_detections_past_the_cut():
    # segment 1 owns frames 0-9, its tracker ran on to frame 13; segment 2 owns 10-19, its tracker started at 6
    first = part(0, 14, [(5, 0, range(8, 14)), (6, 1, range(9, 13))])
    second = part(6, 14, [
        (8, 0, range(10, 11)),  # 1 detection of track 5 past the cut ...
        (2, 0, range(11, 20)),  # ... 3 more (11-13): "2" continues track 5, "8" is new
        (3, 1, range(10, 16)),  # track 6's 3 detections (10-12): continues it
        (4, 1, range(7, 10)),  # only before the cut (the warm-up): no box kept
        (9, 2, range(15, 20)),  # nothing shared: new
    ])
    out = stitch([(0, 0, 10, first), (6, 10, 20, second)], 20)
    rows = sorted(zip(out.frame.tolist(), out.det_index.tolist(), out.track_id.tolist()))
    want = ([(8, 0, 1), (9, 0, 1), (9, 1, 2)]  # segment 1 on frames 0-9: its tracks 5, 6 -> 1, 2
            + [(10, 0, 4)] + [(f, 0, 1) for f in range(11, 20)]  # "8" -> new 4, "2" -> 1
            + [(f, 1, 2) for f in range(10, 16)]  # "3" -> 2
            + [(f, 2, 5) for f in range(15, 20)])  # "9" -> new 5 ("4" took 3, on no kept frame)
    assert rows == sorted(want)
    assert out.n_frames == 20 and np.all(np.diff(out.frame) >= 0)


def test_one_segment_is_the_tracker_itself():
    only = part(0, 3, [(7, 0, range(3))])
    assert stitch([(0, 0, 3, only)], 3) is only


def crossing_run(n: int = 240):
    """Four people over n frames at 10 fps: two walk across and back, one enters late, one leaves early, two cross
    each other; one is missed for 6 frames (the tracker keeps it: keep_lost_frames)."""
    run = [clip(k, k * 60, min(n, (k + 1) * 60)) for k in range((n + 59) // 60)]

    def walker(x0, y, v, frames, hist):
        return {"x0": x0, "y": y, "v": v, "frames": frames, "hist": hist}

    every = set(range(n))
    return run, det_rows(run, [
        walker(10, 20, 2.0, every - set(range(100, 106)), RED),
        walker(500, 140, -1.5, every, BLUE),
        walker(30, 300, 1.0, set(range(70, n)), RED),
        walker(600, 300, -1.0, set(range(150)), BLUE),
    ])


@pytest.fixture(scope="module")
def kept_workers():
    """Tracking workers kept like the tracks asset's (TrackerResource.pool()), mmdet imported at their start."""
    kept = KeptPool(start_worker)
    kept.warm()
    yield kept
    kept.close()


@pytest.mark.parametrize("workers,kept", [(1, False), (2, False), (1, True), (2, True)])
def test_tracks_over_segments_are_the_tracks_of_one_tracker(workers, kept, kept_workers):
    run, dets = crossing_run()
    tracker = TrackerResource(keep_lost_frames=10)
    whole, n_frames, _ = shot_track_rows("v", run, dets, tracker.track_clip, TrackParams(segment_frames=0))
    assert n_frames == 240 and whole["track_id"].n_unique() == 4
    rf = run_frames(run, dets)
    assert rf is not None and len(rf) == 240
    params = TrackParams(segment_frames=50)  # 4 segments of 60 frames (cuts at 60, 120, 180), a tracker each
    tracked = track_runs([rf, rf], tracker.follower(), params.segment_frames, tracker.warmup_frames(),
                         tracker.min_track_len, workers, one_thread, kept_workers if kept else None)
    assert len(tracked) == 2
    for t in tracked:
        table, _, _ = run_track_rows("v", rf, t, params)
        assert table.drop("track_id").equals(whole.drop("track_id"))  # the same boxes, in the same order ...
        pairs = pl.DataFrame({"a": whole["track_id"], "b": table["track_id"]}).unique()
        assert len(pairs) == 4 == pairs["a"].n_unique() == pairs["b"].n_unique()  # ... in the same tracks
        assert table["track_id"].equals(whole["track_id"])  # numbered alike (in order of appearance)


def test_a_track_that_starts_after_the_cut_gets_a_new_id_and_the_segments_keep_their_frames():
    run, dets = crossing_run()
    tracker = TrackerResource(keep_lost_frames=10)
    rf = run_frames(run, dets)
    assert rf is not None
    one = track_runs([rf], tracker.follower(), 0, tracker.warmup_frames(), tracker.min_track_len)[0]
    cut = track_runs([rf], tracker.follower(), 50, tracker.warmup_frames(), tracker.min_track_len)[0]
    assert cut.n_frames == one.n_frames == 240
    assert np.array_equal(cut.frame, one.frame) and np.array_equal(cut.det_index, one.det_index)
    assert len(np.unique(cut.track_id)) == len(np.unique(one.track_id)) == 4


def test_a_runs_frames_skip_detections_outside_its_sampled_frames():
    run = [clip(0, 0, 30), clip(1, 40, 70)]  # frames 30-39 are not the run's
    walker = [{"x0": 10, "y": 20, "v": 2.0, "frames": set(range(70)), "hist": RED}]
    rf = run_frames(run, det_rows([clip(0, 0, 70)], walker))  # ... but have detections
    clean = run_frames(run, det_rows(run, walker))
    assert rf is not None and clean is not None and len(rf) == len(clean) == 60
    assert np.array_equal(rf.boxes, clean.boxes) and np.array_equal(rf.offsets, clean.offsets)
    assert [f[:3] for f in rf.frames] == [f[:3] for f in clean.frames] and rf.clip_ids == clean.clip_ids
    assert run_frames(run, det_rows(run, []).clear()) is None
