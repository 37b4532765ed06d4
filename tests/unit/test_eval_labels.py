"""`fm eval labels` (fm_assets.evaluation.labels): matching pipeline tracks to truth identities, the truth facts
recomputed from hand-made boxes, the doubtful boundary cases, grounded windows, the new question kinds, and the
command on a hand-made lake. The real footage: tests/e2e/test_eval_labels.py."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from fm_assets.evaluation import labels as L

FPS, W, H, N = 25.0, 640, 480, 100  # a 4 s clip, diagonal 800 px
CLIP = {"clip_id": "v-00000000-000", "video_id": "v-00000000", "start_frame": 0, "end_frame": N, "fps": FPS,
        "width": W, "height": H, "start_s": 0.0, "end_s": N / FPS, "kept": True}


def path(*keys, w=60.0, h=60.0, frames=range(N)) -> dict[int, tuple]:
    """Boxes {frame: (x1, y1, x2, y2)} of an object whose centre (and scale) is linear between keyframes
    (t, cx, cy[, scale]), held before the first and after the last."""
    ks = [(k[0], k[1], k[2], k[3] if len(k) > 3 else 1.0) for k in keys]
    out = {}
    for f in frames:
        t = f / FPS
        cx = np.interp(t, [k[0] for k in ks], [k[1] for k in ks])
        cy = np.interp(t, [k[0] for k in ks], [k[2] for k in ks])
        s = np.interp(t, [k[0] for k in ks], [k[3] for k in ks])
        out[f] = (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)
    return out


def truth_of(**objs) -> L.ClipTruth:
    return L.clip_truth({int(k[1:]): v for k, v in objs.items()}, CLIP)


def q(kind, tracks, value, grounded=False, win=None, **extra):
    """A qa_pairs row with its fact; grounded rows with the action window `win`."""
    fact = {"kind": kind, "tracks": tracks, "value": value, **extra}
    row = {"clip_id": CLIP["clip_id"], "fact": json.dumps(fact), "grounded": grounded, "kept": True}
    if win:
        row.update(action_start_s=win[0], action_end_s=win[1])
    return row


def verdict(row, truth, match=None):
    match = match if match is not None else {o: o for o in truth.objs}  # track id = truth id unless said
    return L.score_question(row, truth, match)


RIGHT = path((0, 100, 100), (4, 500, 100))  # 400 px right over 4 s
DOWN = path((0, 100, 200), (4, 100, 420))
STOP_GO = path((0, 100, 300), (1, 250, 300), (2, 250, 300), (3, 400, 300), (4, 400, 300))
TO_FRO = path((0, 100, 400), (1, 300, 400), (2, 100, 400), (3, 300, 400), (4, 100, 400))
STILL = path((0, 560, 400))


# -- matching --------------------------------------------------------------------------------------------------------
def test_match_by_iou_over_time_hungarian_and_threshold():
    truth = {1: RIGHT, 2: DOWN}
    shifted = {f: (b[0] + 5, b[1], b[2] + 5, b[3]) for f, b in RIGHT.items()}
    half = {f: b for f, b in DOWN.items() if f < N // 2}  # half the time: mean IoU about 0.5
    far = dict.fromkeys(range(N), (600, 10, 630, 40))
    m, scores = L.match_tracks({7: shifted, 8: half, 9: far}, truth)
    assert m == {7: 1, 8: 2}  # 9 matches nothing
    assert scores[(7, 1)] > 0.8 and 0.45 < scores[(8, 2)] < 0.55
    assert L.match_tracks({8: {f: b for f, b in DOWN.items() if f < 20}}, truth)[0] == {}  # 20 % of the time: < 0.3
    # only the frames the pipeline looked at count: a track on every 2nd frame still matches fully
    even = {f: b for f, b in RIGHT.items() if f % 2 == 0}
    m, scores = L.match_tracks({3: even}, truth, frames=range(0, N, 2))
    assert m == {3: 1} and scores[(3, 1)] == pytest.approx(1.0)
    assert L.match_tracks({3: even}, truth)[1][(3, 1)] == pytest.approx(0.5)


def test_sampled_frames_follow_the_tracks_step():
    assert L.sampled_frames({"start_frame": 10, "end_frame": 20}, {1: {10: 0, 14: 0}, 2: {16: 0}}) == [10, 12, 14, 16, 18]
    assert L.sampled_frames({"start_frame": 10, "end_frame": 13}, {}) == [10, 11, 12]
    # a clip inside a shot whose grid started before it: the tracks' phase, not the clip's first frame
    assert L.sampled_frames({"start_frame": 10, "end_frame": 20}, {1: {12: 0, 18: 0}, 2: {15: 0}}) == [12, 15, 18]


def test_read_truth_is_one_based_and_drops_ignored_rows(tmp_path):
    p = tmp_path / "s.gt.txt"
    p.write_text("1,1,10,20,30,40,1,-1,-1,-1\n2,1,11,20,30,40,1,-1,-1,-1\n2,2,0,0,5,5,0,-1,-1,-1\nbad line\n")
    assert L.read_truth(p) == {1: {0: (10, 20, 40, 60), 1: (11, 20, 41, 60)}}


def test_truth_files_found_like_eval_mot(tmp_path):
    (tmp_path / "TUD-Campus").mkdir()
    (tmp_path / "TUD-Campus" / "gt.txt").write_text("1,1,1,1,2,2,1\n")
    (tmp_path / "left_right.gt.txt").write_text("1,1,1,1,2,2,1\n")
    found, missing = L.truth_for_videos(tmp_path, ["tud-campus-1a2b3c4d", "left_right-00ff00ff", "other-12345678"])
    assert set(found) == {"tud-campus-1a2b3c4d", "left_right-00ff00ff"} and missing == ["other-12345678"]


# -- truth facts -------------------------------------------------------------------------------------------------------
def test_truth_facts_of_plain_motions():
    t = truth_of(o1=RIGHT, o2=DOWN, o3=STOP_GO, o4=TO_FRO, o5=STILL)
    r, d, s, b, still = (t.objs[k] for k in (1, 2, 3, 4, 5))
    assert r.direction == {"right"} and d.direction == {"down"} and still.direction == {"stationary"}
    assert r.start_region == {"top-left"} and r.end_region == {"top-right"} and r.side == {"right"}
    assert d.side == {"bottom"} and still.side == {None}
    assert r.activity == {"steady"} and r.n_stops == {0} and r.repetitions == {0}
    assert s.n_stops == {0, 1} or s.n_stops == {1}
    assert 1 in s.n_stops and s.activity >= {"stop_and_go"}
    (w0, w1), = s.stop_windows
    assert abs(w0 - 1.0) < 0.15 and abs(w1 - 2.0) < 0.15
    assert b.repetitions == {2} and b.n_stops == {0} and b.activity == {"back_and_forth"}
    assert b.direction == {"stationary"}  # goes and comes back: stationary by definition
    assert still.mover == {False} and r.mover == {True}
    assert r.onset == pytest.approx(0.0) and r.end == pytest.approx(N / FPS - 1 / FPS)
    assert r.distance == pytest.approx(400 / 800, rel=0.02) and r.mean_speed == pytest.approx(0.125, rel=0.05)


def test_toward_away_from_the_box_size():
    t = truth_of(o1=path((0, 320, 240, 1.0), (4, 320, 240, 1.6)), o2=path((0, 320, 240, 1.6), (4, 320, 240, 1.0)))
    assert t.objs[1].direction == {"toward"} and t.objs[2].direction == {"away"}


def test_noisy_boxes_are_smoothed():
    rng = np.random.default_rng(0)
    noisy = {f: tuple(np.array(b) + rng.normal(0, 2.0, 4)) for f, b in STOP_GO.items()}
    f = truth_of(o1=noisy).objs[1]
    assert 1 in f.n_stops and f.direction == {"right"} and f.repetitions == {0}
    jitter = {f: tuple(np.array(b) + rng.normal(0, 2.0, 4)) for f, b in STILL.items()}
    assert truth_of(o1=jitter).objs[1].mover == {False}


# -- questions about one object ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,value,extra,ok", [
    ("direction", "right", {}, True), ("direction", "left", {}, False),
    ("start_region", "top-left", {}, True), ("end_region", "top-right", {}, True), ("end_region", "top", {}, False),
    ("heading", "right", {}, True), ("heading", "top", {}, False),
    ("activity", "steady", {}, True), ("activity", "stop_and_go", {}, False),
    ("first_move", "right", {}, True), ("last_move", "right", {}, True), ("last_move", "down", {}, False),
    ("direction_at", "right", {"t": 2.0}, True), ("direction_at", "up", {"t": 2.0}, False),
    ("n_stops", 0, {}, True), ("n_stops", 1, {}, False), ("repetitions", 0, {}, True),
])
def test_single_object_kinds(kind, value, extra, ok):
    v = verdict(q(kind, [1], value, **extra), truth_of(o1=RIGHT))
    assert v.status == ("correct" if ok else "wrong"), v


def test_segment_kinds_on_a_stop_and_a_turn():
    turn = path((0, 100, 100), (1.5, 300, 100), (2.5, 300, 100), (4, 300, 350))  # right, stop, down
    t = truth_of(o1=turn, o2=TO_FRO)
    assert verdict(q("first_move", [1], "right"), t).status == "correct"
    assert verdict(q("last_move", [1], "down"), t).status == "correct"
    assert verdict(q("direction_at", [1], "down", t=3.3), t).status == "correct"
    assert verdict(q("direction_at", [1], "right", t=0.7), t).status == "correct"
    assert verdict(q("direction_at", [1], "right", t=1.55), t).status == "doubtful"  # at a segment boundary
    assert verdict(q("n_stops", [1], 1), t).status == "correct"
    assert verdict(q("activity", [1], "stop_and_go"), t).status == "correct"
    assert verdict(q("repetitions", [2], 2), t).status == "correct"
    assert verdict(q("repetitions", [2], 1), t).status == "wrong"
    assert verdict(q("activity", [2], "back_and_forth"), t).status == "correct"


def test_unmatched_track_is_wrong_and_unknown_kinds_unscored():
    t = truth_of(o1=RIGHT)
    v = verdict(q("direction", [5], "right"), t, match={})
    assert v.status == "wrong" and v.reason.startswith("unmatched")
    assert verdict(q("speed_bump", [1], 3), t).status == "unscored"
    assert L.score_question({"fact": None, "source": "llm"}, t, {}).status == "unscored"


# -- doubtful boundaries -----------------------------------------------------------------------------------------------
def _angle(deg: float, r: float = 200.0) -> dict:
    a = math.radians(deg)
    return path((0, 320, 240), (4, 320 + r * math.cos(a), 240 - r * math.sin(a)))


@pytest.mark.parametrize("deg,status", [(0, "correct"), (10, "correct"), (19, "doubtful"), (26, "doubtful"),
                                        (30, "wrong")])
def test_direction_near_a_sector_edge_is_doubtful(deg, status):
    assert verdict(q("direction", [1], "right"), truth_of(o1=_angle(deg))).status == status


@pytest.mark.parametrize("px,status", [(8, "correct"), (12, "doubtful"), (20, "doubtful"), (30, "wrong")])
def test_displacement_near_the_stationary_threshold_is_doubtful(px, status):
    # 2 % of the 800 px diagonal = 16 px; the margin is 1 % = 8 px either side
    t = truth_of(o1=path((0, 320, 240), (4, 320 + px, 240)))
    assert verdict(q("direction", [1], "stationary"), t).status == status


@pytest.mark.parametrize("x,status", [(190, "correct"), (220, "doubtful"), (200, "doubtful"), (240, "wrong")])
def test_region_near_a_grid_line_is_doubtful(x, status):
    # the grid line is at 640 / 3 = 213.3 px; the margin 3 % of the width = 19.2 px
    t = truth_of(o1=path((0, x, 100), (4, x, 100)))
    assert verdict(q("start_region", [1], "top-left"), t).status == status


def test_order_gap_under_0_3_s_is_doubtful():
    a = path((0, 100, 100), (1.0, 100, 100), (3, 400, 100))
    close = path((0, 100, 300), (1.2, 100, 300), (3, 400, 300))
    late = path((0, 100, 300), (2.0, 100, 300), (3.5, 400, 300))
    assert verdict(q("starts_first", [1, 2], 1, scope="pair"), truth_of(o1=a, o2=close)).status == "doubtful"
    assert verdict(q("starts_first", [1, 2], 1, scope="pair"), truth_of(o1=a, o2=late)).status == "correct"
    assert verdict(q("starts_first", [1, 2], 2, scope="pair"), truth_of(o1=a, o2=late)).status == "wrong"
    assert verdict(q("starts_first", [1, 2], 1, scope="all"), truth_of(o1=a, o2=late)).status == "correct"


def test_comparisons_within_10_percent_are_doubtful():
    long_ = path((0, 100, 100), (4, 500, 100))
    near = path((0, 100, 300), (4, 480, 300))  # 380 px vs 400 px: within 10 %
    short = path((0, 100, 300), (4, 300, 300))
    assert verdict(q("longest", [1, 2], 1), truth_of(o1=long_, o2=near)).status == "doubtful"
    assert verdict(q("longest", [1, 2], 1), truth_of(o1=long_, o2=short)).status == "correct"
    assert verdict(q("fastest", [1, 2], 2), truth_of(o1=long_, o2=short)).status == "wrong"


def test_a_count_on_a_boundary_is_doubtful():
    # a stop of 0.5 s: the count changes when the shortest stop is 0.7 s instead of 0.5 s
    brief = path((0, 100, 300), (1, 250, 300), (1.5, 250, 300), (2.5, 400, 300))
    assert verdict(q("n_stops", [1], 1), truth_of(o1=brief)).status == "doubtful"
    assert verdict(q("n_stops", [1], 1), truth_of(o1=STOP_GO)).status == "correct"


# -- which object: over ALL truth objects -----------------------------------------------------------------------------
def test_which_object_questions_use_every_truth_object():
    t = truth_of(o1=RIGHT, o2=DOWN, o3=STILL)
    assert verdict(q("which_direction", [1], 1, direction="right"), t, {1: 1}).status == "correct"
    # a second right mover the pipeline missed (no track) makes "which object moves right" wrong
    t2 = truth_of(o1=RIGHT, o2=path((0, 100, 300), (4, 450, 300)))
    v = verdict(q("which_direction", [1], 1, direction="right"), t2, {1: 1})
    assert v.status == "wrong" and "no unique answer" in v.reason
    # an object whose direction sits on a sector edge makes it doubtful
    t3 = truth_of(o1=RIGHT, o2=_angle(21))
    assert verdict(q("which_direction", [1], 1, direction="right"), t3, {1: 1}).status == "doubtful"
    t4 = truth_of(o1=STOP_GO, o2=RIGHT, o3=TO_FRO)
    assert verdict(q("which_activity", [1], 1, activity="stop_and_go"), t4).status == "correct"
    assert verdict(q("which_activity", [3], 3, activity="back_and_forth"), t4).status == "correct"
    assert verdict(q("which_activity", [2], 2, activity="stop_and_go"), t4).status == "wrong"


# -- grounded windows --------------------------------------------------------------------------------------------------
def test_grounded_window_iou():
    mover = path((0, 100, 100), (1, 100, 100), (3, 500, 100), (4, 500, 100))  # moves 1-3 s
    t = truth_of(o1=mover, o2=STILL)
    ok = q("g_direction", [1, 2], 1, grounded=True, win=(1.0, 3.0), window="motion", direction="right")
    assert verdict(ok, t).status == "correct"
    assert verdict({**ok, "action_start_s": 2.2, "action_end_s": 3.9}, t).status == "wrong"
    assert "IoU" in verdict({**ok, "action_start_s": 2.2, "action_end_s": 3.9}, t).reason
    g = q("g_cf_mover", [1, 2], 1, grounded=True, win=(1.0, 3.0), window="motion", ref=3)
    t3 = truth_of(o1=mover, o2=STILL, o3=DOWN)
    assert verdict(g, t3).status == "correct"
    stops = q("g_activity", [3, 1], 3, grounded=True, win=(1.0, 2.0), window="stops", activity="stop_and_go")
    assert verdict(stops, truth_of(o1=RIGHT, o3=STOP_GO)).status == "correct"
    first = q("g_starts_before", [2, 1], 2, grounded=True, win=(0.0, 1.5), window="first_move", ref=1)
    late = path((0, 100, 300), (2.0, 100, 300), (3.5, 400, 300))
    turn = path((0, 100, 100), (1.5, 300, 100), (4, 300, 350))
    assert verdict(first, truth_of(o1=late, o2=turn)).status == "correct"
    assert verdict({**first, "action_end_s": 4.0}, truth_of(o1=late, o2=turn)).status == "wrong"


# -- the new kinds -----------------------------------------------------------------------------------------------------
def test_count_and_majority_direction():
    right2 = path((0, 100, 300), (4, 450, 300))
    short_right = path((0, 100, 400), (0.6, 300, 400), frames=range(15))  # visible 0.6 s: not counted
    t = truth_of(o1=RIGHT, o2=right2, o3=DOWN, o4=short_right)
    assert verdict(q("count_direction", [1, 2], 2, direction="right"), t).status == "correct"
    assert verdict(q("count_direction", [1], 1, direction="right"), t).status == "wrong"
    assert verdict(q("count_direction", [3], 1, direction="down"), t).status == "correct"
    assert verdict(q("count_direction", [1, 2], 2, direction="right"),
                   truth_of(o1=RIGHT, o2=right2, o3=_angle(20))).status == "doubtful"
    assert verdict(q("majority_direction", [1, 2, 3], "right"), t).status == "correct"
    assert verdict(q("majority_direction", [1, 2, 3], "down"), t).status == "wrong"
    tie = truth_of(o1=RIGHT, o3=DOWN)
    assert verdict(q("majority_direction", [1, 3], "right"), tie).status == "wrong"  # not unique


def test_enters_and_exits_first():
    early = path((0, 100, 100), (4, 500, 100), frames=range(60))  # frames 0-59
    late = path((0, 100, 300), (4, 500, 300), frames=range(20, 100))  # frames 20-99
    t = truth_of(o1=early, o2=late)
    assert verdict(q("enters_first", [1, 2], 1), t).status == "correct"
    assert verdict(q("enters_first", [1, 2], 2), t).status == "wrong"
    assert verdict(q("exits_first", [2, 1], 1), t).status == "correct"
    close = path((0, 100, 300), (4, 500, 300), frames=range(5, 100))  # enters 0.2 s after: doubtful
    assert verdict(q("enters_first", [1, 2], 1), truth_of(o1=early, o2=close)).status == "doubtful"
    assert verdict(q("enters_first", [1, 2], 1), t, {1: 1}).reason.startswith("unmatched")


def test_entering_and_leaving_the_frame_within_a_window():
    # o1 enters from the left at 1.0 s (its first box cut by the edge), o2 is there from the start and leaves
    # through the right at 3.0 s, o3 appears at 2.0 s in the middle of the frame (out of an occlusion: no entry)
    o1 = path((1.0, 20, 200), (4, 300, 200), frames=range(25, N))
    o2 = path((0, 400, 100), (3.0, 630, 100), frames=range(76))
    o3 = path((2.0, 320, 400), (4, 320, 300), frames=range(50, N))
    t = truth_of(o1=o1, o2=o2, o3=o3)
    g = {"grounded": True, "window": "given"}
    enters = q("g_enters_during", [1, 2, 3], 1, win=(1.0, 2.0), side="left", t0=0.0, t1=2.0, **g)
    assert verdict(enters, t).status == "correct"
    assert verdict({**enters, "action_start_s": 2.5, "action_end_s": 3.5}, t).status == "wrong"  # not its window
    assert verdict(q("g_enters_during", [1, 2, 3], 1, win=(1.0, 2.0), side="right", t0=0.0, t1=2.0, **g),
                   t).status == "wrong"  # nobody enters from the right
    assert verdict(q("g_enters_during", [1, 2, 3], 3, win=(2.0, 3.0), side="left", t0=1.6, t1=3.0, **g),
                   t).status == "wrong"  # o3 does not come in through an edge; o1 enters before the window
    leaves = q("g_exits_during", [2, 1, 3], 2, win=(2.0, 3.0), side="right", t0=2.0, t1=4.0, **g)
    assert verdict(leaves, t).status == "correct"
    # o1 is seen until the clip's last frame: it does not leave, whatever the side
    assert verdict(q("g_exits_during", [1, 2, 3], 1, win=(3.0, 4.0), side="left", t0=3.0, t1=4.0, **g),
                   t).status == "wrong"
    # a time on the window's border, or a box a few px from the side, is doubtful
    assert verdict({**enters, "fact": enters["fact"].replace('"t0": 0.0', '"t0": 0.9')}, t).status == "doubtful"
    near = path((1.0, 30 + 0.03 * W, 200), (4, 320, 200), frames=range(25, N))  # box edge 3 % of the width in
    assert verdict(enters, truth_of(o1=near, o2=o2, o3=o3)).status == "doubtful"
    # two objects entering from the left in the window: no unique answer
    twin = path((1.5, 20, 400), (4, 300, 400), frames=range(38, N))
    assert verdict(enters, truth_of(o1=o1, o2=o2, o3=twin)).status == "wrong"


def test_the_side_an_object_enters_or_leaves_through():
    o1 = path((1.0, 20, 200), (4, 300, 200), frames=range(25, N))  # enters from the left at 1.0 s
    o2 = path((0, 400, 100), (3.0, 630, 100), frames=range(76))  # leaves through the right at 3.0 s
    o3 = path((2.0, 320, 400), (4, 320, 300), frames=range(50, N))  # appears mid-frame at 2.0 s
    t = truth_of(o1=o1, o2=o2, o3=o3)
    assert verdict(q("enters_side", [1], "left", t=1.1, t0=1.1, t1=2.0), t).status == "correct"
    assert verdict(q("enters_side", [1], "right", t=1.1, t0=1.1, t1=2.0), t).status == "wrong"
    assert verdict(q("exits_side", [2], "right", t=2.9, t0=2.0, t1=2.9), t).status == "correct"
    assert verdict(q("enters_side", [3], "bottom", t=2.0, t0=2.0, t1=3.0), t).status == "wrong"  # no edge
    assert verdict(q("exits_side", [1], "right", t=3.9, t0=3.0, t1=3.9), t).status == "wrong"  # seen to the end
    assert verdict(q("enters_side", [1], "left", t=2.6, t0=2.6, t1=3.6), t).status == "wrong"  # 1.6 s after
    assert verdict(q("enters_side", [1], "left", t=2.0, t0=2.0, t1=3.0), t).status == "doubtful"  # 1.0 s: the limit


def test_nearest_and_furthest_by_the_bottom_edge():
    t = truth_of(o1=path((0, 100, 100)), o2=path((0, 300, 400)), o3=path((0, 500, 250)))  # bottoms 130 / 430 / 280
    assert verdict(q("nearest", [1, 2, 3], 2, t=1.0), t).status == "correct"
    assert verdict(q("furthest", [1, 2, 3], 1, t=1.0), t).status == "correct"
    assert verdict(q("nearest", [1, 2, 3], 3, t=1.0), t).status == "wrong"
    # an unmatched truth object is compared too
    assert verdict(q("nearest", [1, 3], 3, t=1.0), t, {1: 1, 3: 3}).status == "wrong"
    close = truth_of(o1=path((0, 100, 400)), o2=path((0, 300, 405)))  # 5 px apart, under 2 % of 480
    assert verdict(q("nearest", [1, 2], 2, t=1.0), close).status == "doubtful"


# -- a video and its summary -------------------------------------------------------------------------------------------
def _track_rows(tid: int, boxes: dict) -> list[dict]:
    return [{"clip_id": CLIP["clip_id"], "track_id": tid, "frame_idx": f, "x1": b[0], "y1": b[1], "x2": b[2],
             "y2": b[3]} for f, b in boxes.items() if f % 2 == 0]


def test_evaluate_video_and_summary():
    truth = {1: RIGHT, 2: DOWN}
    tracks = _track_rows(10, RIGHT) + _track_rows(20, DOWN) + _track_rows(30, STILL)  # 30 matches nothing
    rows = [q("direction", [10], "right"), q("direction", [20], "up"), q("direction", [30], "stationary"),
            {**q("direction", [10], "right"), "kept": False},
            {"clip_id": CLIP["clip_id"], "fact": None, "source": "llm", "grounded": False, "kept": True}]
    for k, r in enumerate(rows):
        r.update(qa_id=f"q{k}", category="motion_recognition", question=f"question {k}", answer_text="x")
    res = L.evaluate_video("v-00000000", [CLIP, {**CLIP, "clip_id": "dropped", "kept": False}], tracks, rows, truth)
    assert res["kept_clips"] == 1 and res["matches"][CLIP["clip_id"]] == {10: [1, 1.0], 20: [2, 1.0]}
    assert [x["status"] for x in res["questions"]] == ["correct", "wrong", "wrong", "unscored"]
    (overall, *rest) = L.summarize([res])
    assert overall["scope"] == "overall" and overall["n"] == 4 and overall["precision"] == pytest.approx(1 / 3)
    assert overall["mcq_per_clip"] == 4 and overall["grounded_per_clip"] == 0
    two = L.summarize([res, {**res, "video_id": "w-11111111"}])
    assert {r["video_id"] for r in two} == {"v-00000000", "w-11111111", "ALL"}


# -- the command -------------------------------------------------------------------------------------------------------
def test_command_writes_the_lake_and_exits_1_on_missing_truth(tmp_path, capsys):
    from fm_assets.cli import eval_labels
    from fm_assets.labels.schemas import QA_PAIRS, RAW_CLIPS, TRACKS, frame
    from fm_resources.lake import Lake
    from fm_resources.warehouse import Warehouse

    lake = Lake(root=str(tmp_path / "lake"))
    for vid in ("scene-0123abcd", "other-89abcdef"):
        clip = {k: v for k, v in {**CLIP, "video_id": vid, "clip_id": f"{vid}-000", "clip_idx": 0}.items()
                if k in RAW_CLIPS}
        lake.write_parquet(f"raw_clips/{vid}.parquet", frame([clip], RAW_CLIPS))
        tr = [{**r, "video_id": vid, "clip_id": f"{vid}-000"} for r in _track_rows(1, RIGHT)]
        lake.write_parquet(f"tracks/{vid}.parquet", frame(tr, TRACKS))
        qa = [{**{k: r.get(k) for k in QA_PAIRS}, "video_id": vid, "clip_id": f"{vid}-000", "qa_id": f"{vid}-q{i}",
               "category": "motion_recognition", "grounded": False, "kept": True, "question": "Which way?"}
              for i, r in enumerate([q("direction", [1], "right"), q("direction", [1], "left")])]
        lake.write_parquet(f"qa_pairs/{vid}.parquet", frame(qa, QA_PAIRS))
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "scene.gt.txt").write_text("".join(f"{f + 1},1,{b[0]},{b[1]},{b[2] - b[0]},{b[3] - b[1]},1,-1,-1,-1\n"
                                             for f, b in RIGHT.items()))
    wh = Warehouse(lake=lake)
    args = SimpleNamespace(gt=str(gt), markdown=True, json=str(tmp_path / "out.json"), run_name="run 1",
                           no_lake=False, allow_missing=False)
    assert eval_labels.cmd_labels(args, lake=lake, warehouse=wh) == 1  # other-89abcdef has no truth
    out = capsys.readouterr()
    assert "| scene-0123abcd | 1 | 2 | 2.00 | 0.00 | 0 | 0.0 | 0 | 1 | 1 | 50.0 |" in out.out
    assert "truth 'right', question 'left'" in out.out and "other-89abcdef" in out.err
    rows = wh.query("select * from label_eval where scope = 'overall'")
    assert rows["run_name"].to_list() == ["run-1"] and rows["precision"].to_list() == [0.5]
    qs = pl.read_parquet(lake.local_path("label_eval/questions/run-1.parquet"))
    assert sorted(qs["status"].to_list()) == ["correct", "wrong"]
    assert json.loads((tmp_path / "out.json").read_text())["missing"] == ["other-89abcdef"]
    args.allow_missing, args.run_name = True, "run 2"
    assert eval_labels.cmd_labels(args, lake=lake, warehouse=wh) == 0
    assert eval_labels.cmd_labels(SimpleNamespace(**{**vars(args), "gt": str(tmp_path / "none")}), lake=lake,
                                  warehouse=wh) == 1


def test_a_box_cut_by_the_frame_edge_is_no_motion_toward_the_camera():
    # an object creeping in from the left, then moving right: its box is the part inside the frame, which grows
    # while the centre hardly moves (without the edge rule: a "toward" move, then a "right" one)
    entering = {f: (max(0.0, b[0]), b[1], b[2], b[3])
                for f, b in path((0, -29, 200), (1.5, -5, 200), (4, 300, 200)).items() if b[2] > 1}
    f = truth_of(o1=entering).objs[1]
    assert {s.word for s in f.moves()} == {"right"} and f.activity == {"steady"}


def test_repetition_legs_near_the_1_percent_threshold_are_doubtful():
    def wiggle(amp):  # right and back by amp px, twice, with holds of 0.5 s between
        return path((0, 300, 200), (0.5, 300 + amp, 200), (1.0, 300 + amp, 200), (1.5, 300, 200), (2.0, 300, 200),
                    (2.5, 300 + amp, 200), (3.0, 300 + amp, 200), (3.5, 300, 200))
    assert verdict(q("repetitions", [1], 2), truth_of(o1=wiggle(60))).status == "correct"  # 7.5 % of the diagonal
    assert verdict(q("repetitions", [1], 2), truth_of(o1=wiggle(12))).status == "doubtful"  # 1.5 %


# -- windowed kinds: a stretch of time, the track matched to truth over that stretch only ----------------------------
# an object that goes right for 2 s, then down for 2 s
RIGHT_DOWN = path((0, 100, 100), (2, 400, 100), (4, 400, 400))


def test_windowed_kinds_against_truth():
    truth = truth_of(o1=RIGHT_DOWN, o2=STILL, o3=DOWN)
    assert verdict(q("direction_during", [1], "right", t0=0.2, t1=1.8), truth).status == "correct"
    assert verdict(q("direction_during", [1], "down", t0=2.2, t1=3.8), truth).status == "correct"
    assert verdict(q("direction_during", [1], "right", t0=2.2, t1=3.8), truth).status == "wrong"
    assert verdict(q("direction_during", [1], "down-right", t0=1.0, t1=3.0), truth).status == "correct"
    assert verdict(q("direction_during", [1], "right", t0=1.5, t1=2.2), truth).status == "doubtful"  # about 22 deg
    assert verdict(q("region_at", [1], "top-left", t=0.1), truth).status == "correct"
    assert verdict(q("region_at", [1], "top", t=1.5), truth).status == "correct"  # x = 325, y = 100
    assert verdict(q("region_at", [1], "top-left", t=0.75), truth).status == "doubtful"  # x = 212.5 of 213.3
    # relative positions at a time: o1 (325, 100) against o2 (560, 400) at 1.5 s: dy 300 > dx 235 -> above
    assert verdict(q("relative_at", [1, 2], "above", t=1.5), truth).status == "correct"
    assert verdict(q("relative_at", [2, 1], "below", t=1.5), truth).status == "correct"
    assert verdict(q("relative_at", [1, 2], "left", t=1.5), truth).status == "wrong"
    assert verdict(q("relative_at", [1, 2], "above", t=1.0), truth).status == "doubtful"  # (250, 100): 310 vs 300
    # faster over a window: o1 covers 150 px / s, o3 55 px / s, o2 nothing
    assert verdict(q("faster_during", [1, 3], 1, t0=0.5, t1=1.5), truth).status == "correct"
    assert verdict(q("faster_during", [1, 3], 3, t0=0.5, t1=1.5), truth).status == "wrong"
    # both tracks on one truth object: no relation between two objects
    assert verdict(q("relative_at", [1, 4], "left", t=1.0), truth, {1: 1, 4: 1}).status == "wrong"


def test_heading_still_and_approach_over_a_window():
    # o1 right then down; o2 still; o4 down-right at 25 degrees below the horizontal over the clip
    slant = path((0, 100, 300), (4, 500, 300 + 400 * math.tan(math.radians(25))))
    truth = truth_of(o1=RIGHT_DOWN, o2=STILL, o4=slant)
    assert verdict(q("heading_during", [4], "right", t0=0.5, t1=3.5), truth).status == "correct"
    assert verdict(q("heading_during", [4], "bottom", t0=0.5, t1=3.5), truth).status == "wrong"
    assert verdict(q("heading_during", [1], "bottom", t0=2.2, t1=3.8), truth).status == "correct"
    assert verdict(q("heading_during", [1], "right", t0=1.0, t1=3.0), truth).status == "doubtful"  # 45 degrees
    # two phases in order: o1 right over [0.2, 1.8] then down over [2.2, 3.8]; o2 still then still is no change
    assert verdict(q("then_during", [1], ["right", "down"], t0=0.2, tm0=1.8, tm1=2.2, t1=3.8), truth).status == "correct"
    assert verdict(q("then_during", [1], ["down", "right"], t0=0.2, tm0=1.8, tm1=2.2, t1=3.8), truth).status == "wrong"
    assert verdict(q("then_during", [2], ["stationary", "left"], t0=0.2, tm0=1.8, tm1=2.2, t1=3.8),
                   truth).status == "wrong"
    # still: o2 stays put, o1 moves
    assert verdict(q("still_during", [2], "stationary", t0=1.0, t1=3.0), truth).status == "correct"
    assert verdict(q("still_during", [1], "stationary", t0=1.0, t1=3.0), truth).status == "wrong"
    # approach: o1 (100 -> 400, 100) against o2 (560, 400): 541 px at 0 s, 340 px at 2 s -> closer by 25 %
    assert verdict(q("approach_during", [1, 2], "closer", t0=0.0, t1=2.0), truth).status == "correct"
    assert verdict(q("approach_during", [1, 2], "apart", t0=0.0, t1=2.0), truth).status == "wrong"
    # o1 and o4 both move right over the first 0.2 s at about the same speed: the distance changes by 1 %
    assert verdict(q("approach_during", [1, 4], "closer", t0=0.0, t1=0.2), truth).status == "wrong"
    # a change of about 5 % of the diagonal sits on the threshold: doubtful
    near = path((0, 100, 100), (4, 100 + 4 * 40.0 / 2, 100))  # 40 px (5 % of 800) closer to o5 in 2 s
    truth = truth_of(o1=near, o5=path((0, 500, 100)))
    assert verdict(q("approach_during", [1, 5], "closer", t0=0.0, t1=2.0), truth).status == "doubtful"
    # both tracks on one truth object: wrong
    assert verdict(q("approach_during", [1, 6], "closer", t0=0.0, t1=2.0), truth, {1: 1, 6: 1}).status == "wrong"
    # malformed facts are not scored (and do not stop the evaluation)
    assert verdict(q("approach_during", [1], "closer", t0=0.0, t1=2.0), truth).status == "unscored"
    assert verdict(q("then_during", [1], ["right", "down"], t0=0.2, t1=3.8), truth).status == "unscored"


def test_grounded_direction_during_with_and_without_a_region():
    other = path((0, 600, 100), (4, 600, 300))  # also goes down, on the right
    truth = truth_of(o1=RIGHT_DOWN, o2=STILL, o3=other)
    g = {"grounded": True, "window": "given"}
    right = q("g_direction_during", [1, 2, 3], 1, win=(0.2, 1.8), direction="right", t0=0.2, t1=1.8, **g)
    assert verdict(right, truth).status == "correct"
    down = q("g_direction_during", [1, 2, 3], 1, win=(2.2, 3.8), direction="down", t0=2.2, t1=3.8, **g)
    assert verdict(down, truth).status == "wrong"  # o3 goes down too
    where = q("g_direction_during", [1, 2, 3], 1, win=(2.2, 3.8), direction="down", t0=2.2, t1=3.8,
              region="center", t=3.0, **g)  # o1 at (400, 325) is in the centre, o3 at (600, 225) on the right
    assert verdict(where, truth).status == "correct"
    assert verdict({**where, "action_start_s": 0.2, "action_end_s": 1.0}, truth).status == "wrong"  # not its window
    # of the objects going down then, the one furthest to the left (o1, x 400) or to the right (o3, x 600)
    left = q("g_direction_during", [1, 2, 3], 1, win=(2.2, 3.8), direction="down", t0=2.2, t1=3.8,
             extreme="left", t=3.0, **g)
    assert verdict(left, truth).status == "correct"
    assert verdict({**left, "fact": left["fact"].replace('"left"', '"right"')}, truth).status == "wrong"
    assert verdict(q("g_direction_during", [1, 2, 3], 3, win=(2.2, 3.8), direction="down", t0=2.2, t1=3.8,
                     extreme="right", t=3.0, **g), truth).status == "correct"
    # a side that is not one of the frame's four: a malformed fact, not scored
    bad = verdict({**left, "fact": left["fact"].replace('"left"', '"diagonal"')}, truth)
    assert (bad.status, "malformed" in bad.reason) == ("unscored", True)
    # an object standing still further left does not count among the objects going down
    assert verdict(left, truth_of(o1=RIGHT_DOWN, o2=STILL, o3=other, o5=path((0, 50, 300)))).status == "correct"
    # another object going down 10 px (1.6 % of the width) right of o1: which is furthest to the left is doubtful
    truth = truth_of(o1=RIGHT_DOWN, o2=STILL, o3=other, o6=path((0, 410, 100), (4, 410, 420)))
    assert verdict(left, truth).status == "doubtful"


def test_windowed_questions_match_tracks_over_their_window():
    # track 10 follows o1 for the first half and o2 for the second (an id switch): over the whole clip it matches
    # o2 (the Hungarian pick), over its first half o1
    switched = {f: (RIGHT if f < N // 2 else DOWN)[f] for f in range(N)}
    tracks = _track_rows(10, switched) + _track_rows(20, {f: DOWN[f] for f in range(N // 2, N)})
    truth = {1: RIGHT, 2: DOWN}
    assert L.window_match(L.boxes_by_track(tracks), truth, [10], range(40)) == {10: 1}
    assert L.window_match(L.boxes_by_track(tracks), truth, [10], range(60, N)) == {10: 2}
    assert L.window_match(L.boxes_by_track(tracks), {1: RIGHT}, [10], range(60, N)) == {}
    rows = [q("direction_during", [10], "right", t0=0.1, t1=1.5), q("direction_during", [10], "down", t0=2.5,
                                                                      t1=3.9)]
    for k, r in enumerate(rows):
        r.update(qa_id=f"q{k}", category="motion_recognition", question=f"question {k}", answer_text="x")
    res = L.evaluate_video("v-00000000", [CLIP], tracks, rows, truth)
    assert [x["status"] for x in res["questions"]] == ["correct", "correct"]
