"""Tracking over a shot, not a clip: runs of continuous kept clips share one (real mmdet) tracker, ids stay unique
within a video, and tracklets are joined across short gaps when motion and colour agree."""

import numpy as np
import polars as pl

from fm_assets.labels.schemas import DETECTIONS, frame
from fm_assets.labels.tracking import (
    TrackParams,
    bridge_tracklets,
    hist_matrix,
    hist_similarity,
    shot_runs,
    shot_track_rows,
)
from fm_resources.trackers import TrackerResource

FPS = 10.0
RED = [255] + [0] * 35
BLUE = [0] * 35 + [255]


def clip(k: int, start: int, end: int, shot: int = 0, kept: bool = True) -> dict:
    return {"clip_id": f"v-{k:03d}", "clip_idx": k, "shot_idx": shot, "start_frame": start, "end_frame": end,
            "start_s": start / FPS, "end_s": end / FPS, "kept": kept}


def det_rows(clips: list[dict], objects: list[dict]) -> pl.DataFrame:
    """objects: {x0, y, v (px/frame), frames: set of frame indices where it is detected, hist}."""
    rows = []
    for c in clips:
        for f in range(c["start_frame"], c["end_frame"]):
            k = 0
            for o in objects:
                if f in o["frames"]:
                    x = o["x0"] + o["v"] * f
                    rows.append({"video_id": "v", "clip_id": c["clip_id"], "frame_idx": f, "t_s": f / FPS, "det_idx": k,
                                 "x1": x, "y1": o["y"], "x2": x + 40, "y2": o["y"] + 80, "score": 0.9,
                                 "label": "person", "sample_step": 1, "color": o.get("color"), "hist": o["hist"]})
                    k += 1
    return frame(rows, DETECTIONS)


def test_shot_runs_split_on_cuts_and_dropped_clips():
    clips = pl.DataFrame([clip(0, 0, 50), clip(1, 50, 100), clip(2, 100, 150, shot=1), clip(4, 200, 250, shot=1),
                          clip(3, 150, 200, shot=1, kept=False)]).filter(pl.col("kept"))
    runs = shot_runs(clips)
    assert [[c["clip_id"] for c in r] for r in runs] == [["v-000", "v-001"], ["v-002"], ["v-004"]]


def test_one_tracker_over_the_shot_keeps_ids_across_clips_and_ids_are_unique_in_the_video():
    run = [clip(0, 0, 30), clip(1, 30, 60)]
    dets = det_rows(run, [{"x0": 10, "y": 10, "v": 4, "frames": set(range(60)), "hist": RED},
                          {"x0": 400, "y": 200, "v": -4, "frames": set(range(60)), "hist": BLUE}])
    table, n_frames, next_id = shot_track_rows("v", run, dets, TrackerResource().track_clip, first_id=1)
    assert n_frames == 60 and next_id == 3
    rows = table.to_dicts()
    ids = table.group_by("track_id").agg(pl.col("clip_id").unique().sort(), pl.len())
    assert sorted(ids["track_id"].to_list()) == [1, 2]
    assert all(c == ["v-000", "v-001"] for c in ids["clip_id"].to_list())  # one id through both clips
    assert {r["clip_id"] for r in rows if r["frame_idx"] < 30} == {"v-000"}
    assert {r["clip_id"] for r in rows if r["frame_idx"] >= 30} == {"v-001"}
    # a second run (another shot) is tracked afresh, numbered after the first
    other = [clip(2, 100, 130, shot=1)]
    rows2, _, next2 = shot_track_rows("v", other, det_rows(other, [{"x0": 10, "y": 10, "v": 4, "frames": set(range(100, 130)),
                                                                       "hist": RED}]),
                                      TrackerResource().track_clip, first_id=next_id)
    assert set(rows2["track_id"]) == {3} and next2 == 4


def gap_run(hist_after: list[int], jump: float = 0.0):
    """One object detected on frames 0-19 and 40-59 (a 2 s gap, longer than the tracker keeps a lost track at
    keep_lost_frames=10), moving steadily; after the gap it looks like hist_after and sits `jump` px off."""
    run = [clip(0, 0, 60)]
    before = {"x0": 10, "y": 50, "v": 5, "frames": set(range(20)), "hist": RED}
    after = {"x0": 10 + jump, "y": 50, "v": 5, "frames": set(range(40, 60)), "hist": hist_after}
    return run, det_rows(run, [before, after])


def test_a_gap_is_bridged_when_motion_and_colour_agree():
    run, dets = gap_run(RED)
    tracker = TrackerResource(keep_lost_frames=10).track_clip
    no_bridge = shot_track_rows("v", run, dets, tracker, TrackParams(bridge_gap_s=0))[0]
    assert no_bridge["track_id"].n_unique() == 2  # the tracker alone loses it
    table = shot_track_rows("v", run, dets, tracker, TrackParams(bridge_gap_s=2.5))[0]
    assert set(table["track_id"]) == {1} and len(table) == 40


def test_no_bridge_across_a_colour_change_a_jump_or_a_long_gap():
    tracker = TrackerResource(keep_lost_frames=10).track_clip
    run, dets = gap_run(BLUE)
    assert shot_track_rows("v", run, dets, tracker, TrackParams(bridge_gap_s=2.5))[0]["track_id"].n_unique() == 2
    run, dets = gap_run(RED, jump=300)
    assert shot_track_rows("v", run, dets, tracker, TrackParams(bridge_gap_s=2.5))[0]["track_id"].n_unique() == 2
    run, dets = gap_run(RED)
    assert shot_track_rows("v", run, dets, tracker, TrackParams(bridge_gap_s=1.5))[0]["track_id"].n_unique() == 2


def test_bridging_takes_the_best_link_once():
    # two tracklets end, two start: each continues the one its motion leads to, never both into one
    def rows_of(tid, t0, t1, x0, v):
        return [{"track_id": tid, "frame_idx": int(t * 10), "t_s": t, "x1": x0 + v * t, "y1": 0.0,
                 "x2": x0 + v * t + 40, "y2": 80.0, "label": "person", "color": None}
                for t in np.round(np.arange(t0, t1 + 1e-9, 0.1), 3)]
    rows = rows_of(1, 0, 2, 0, 50) + rows_of(2, 0, 2, 400, -50) + rows_of(3, 3, 4, 0, 50) + rows_of(4, 3, 4, 400, -50)
    hists = {t: np.array(RED, float) for t in (1, 2, 3, 4)}
    before = [r["track_id"] for r in rows]
    out = bridge_tracklets(pl.DataFrame(rows), hists, TrackParams()).to_dicts()
    joined = {(b, r["track_id"]) for b, r in zip(before, out)}
    assert joined == {(1, 1), (2, 2), (3, 1), (4, 2)}


def test_bridging_over_many_tracklets_joins_each_lane_at_the_gap_limit():
    # a long shot has thousands of tracklets, so only those starting within the gap after one ends are compared:
    # each tracklet still joins the next one on its lane, which starts exactly bridge_gap_s later
    def rows_of(tid, t0, t1, y):
        return [{"track_id": tid, "frame_idx": int(round(t * 10)), "t_s": t, "x1": 10.0 * t, "y1": y,
                 "x2": 10.0 * t + 40, "y2": y + 80, "label": "person", "color": None}
                for t in np.round(np.arange(t0, t1 + 1e-9, 0.1), 3)]
    rows, lane = [], {}
    for k in range(60):  # 3 lanes far apart, 20 tracklets each: 2 s on, 1.5 s off
        tid, y = k + 1, 200.0 * (k % 3)
        rows += rows_of(tid, 3.5 * (k // 3), 3.5 * (k // 3) + 2.0, y)
        lane[tid] = k % 3
    hists = {t: np.array(RED, float) for t in lane}
    out = bridge_tracklets(pl.DataFrame(rows), hists, TrackParams(bridge_gap_s=1.5)).to_dicts()
    joined = {r["track_id"] for r in out}
    assert len(joined) == 3  # every lane became one track
    assert {lane[t] for t in joined} == {0, 1, 2}
    assert all(lane[r["track_id"]] == lane[t] for r, t in zip(out, [r["track_id"] for r in rows]))
    # one second shorter a gap allowed: nothing is joined
    assert bridge_tracklets(pl.DataFrame(rows), hists, TrackParams(bridge_gap_s=1.0))["track_id"].n_unique() == 60


def test_hist_matrix_keeps_each_rows_histogram_and_marks_the_missing():
    dets = pl.DataFrame({"hist": [RED, None, BLUE, [1, 2]]}, schema={"hist": pl.List(pl.UInt8)})
    m, has = hist_matrix(dets)
    assert m.dtype == np.uint8 and m.shape == (4, 36)
    assert has.tolist() == [True, False, True, False]  # a histogram of another length is not comparable
    assert m[0].tolist() == RED and m[2].tolist() == BLUE and not m[1].any()
    m, has = hist_matrix(pl.DataFrame({"x": [1, 2]}))
    assert m.shape == (2, 0) and not has.any()


def test_hist_similarity():
    assert hist_similarity(RED, RED) == 1.0 and hist_similarity(RED, BLUE) == 0.0 and hist_similarity(None, RED) is None


def test_a_track_whose_colours_change_for_good_is_cut_in_two():
    # one continuous path, red for 2 s then blue: the tracker keeps one id (the boxes overlap), but it followed two
    # objects; a steady colour stays one track
    run = [clip(0, 0, 40)]
    swapped = det_rows(run, [{"x0": 10, "y": 50, "v": 5, "frames": set(range(20)), "hist": RED},
                             {"x0": 10, "y": 50, "v": 5, "frames": set(range(20, 40)), "hist": BLUE}])
    tracker = TrackerResource().track_clip
    assert shot_track_rows("v", run, swapped, tracker, TrackParams(split_similarity=0))[0]["track_id"].n_unique() == 1
    rows = shot_track_rows("v", run, swapped, tracker, TrackParams(split_similarity=0.5))[0].to_dicts()
    ids = {r["frame_idx"]: r["track_id"] for r in rows}
    assert len(set(ids.values())) == 2 and len({ids[f] for f in range(20)}) == 1 and ids[5] != ids[30]
    steady = det_rows(run, [{"x0": 10, "y": 50, "v": 5, "frames": set(range(40)), "hist": RED}])
    assert shot_track_rows("v", run, steady, tracker, TrackParams(split_similarity=0.5))[0]["track_id"].n_unique() == 1
