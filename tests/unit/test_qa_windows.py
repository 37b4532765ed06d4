"""Windowed questions beyond one move segment: a still stretch ("how does X move between a and b": it stays in
place), the side of the frame a motion heads to when its direction sits between two sectors, two objects getting
closer / farther apart, windows over a run of move segments, a box that changes size while it travels, moments
off a cell border, and the repetition count two readings must agree on.  Trajectories come from motion_facts on
hand-made tracks (tests.unit.test_qa.make_tracks), answers are recomputed here with plain geometry."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl

from fm_assets.labels import qa
from fm_assets.labels.motion_facts import pair_relations, trajectories
from tests.unit.test_qa import CLIP, H, W, make_tracks


def rows_of(tracks: pl.DataFrame) -> tuple[list[dict], pl.DataFrame]:
    traj = trajectories(tracks, W, H)
    pairs = pair_relations(traj)
    return qa.rule_questions(traj, pairs, CLIP) + qa.grounded_questions(traj, pairs, CLIP), traj


def of_kind(rows: list[dict], kind: str) -> list[tuple[dict, dict]]:
    return [(json.loads(r["fact"]), r) for r in rows if json.loads(r["fact"])["kind"] == kind]


def centre(traj: pl.DataFrame, tid: int, t: float) -> np.ndarray:
    path = traj.filter(pl.col("track_id") == tid)["path"][0]
    ts = [q["t"] for q in path]
    return np.array([np.interp(t, ts, [q["ncx"] for q in path]) * W, np.interp(t, ts, [q["ncy"] for q in path]) * H])


def test_a_stop_gives_a_still_question_inside_the_stop():
    # red walks right for 3 s, stands 3 s, walks down; green far away walks left all the time
    objs = [(1, "person", "red", 40, 80, [(0.0, 80, 120), (3.0, 320, 120), (6.0, 320, 120), (8.0, 320, 300)]),
            (2, "person", "green", 40, 80, [(0.0, 600, 420), (8.0, 200, 420)])]
    rows, traj = rows_of(make_tracks(objs))
    still = of_kind(rows, "still_during")
    assert [f["tracks"] for f, _ in still] == [[1]]  # green never stops
    f, row = still[0]
    pad = qa.QAParams().window_pad_s
    assert 3.0 + pad - 1e-9 <= f["t0"] < f["t1"] <= 6.0 - pad + 1e-9 and f["t1"] - f["t0"] >= qa.QAParams().window_min_s
    assert f["value"] == "stationary" and row["answer_text"] == "It stays in place"
    assert all(o.startswith("It moves ") for o in row["options"][1:]) and len(set(row["options"])) == 4
    drift = [np.linalg.norm(centre(traj, 1, t) - centre(traj, 1, f["t0"])) for t in np.linspace(f["t0"], f["t1"], 9)]
    assert max(drift) < 1.0
    assert row["category"] == "motion_recognition" and "red person" in row["question"]


def test_a_slow_creep_is_not_still():
    # red creeps 30 px (4 % of the diagonal) during its "stop": no still question
    objs = [(1, "person", "red", 40, 80, [(0.0, 80, 120), (3.0, 320, 120), (6.0, 350, 120), (8.0, 350, 300)]),
            (2, "person", "green", 40, 80, [(0.0, 600, 420), (8.0, 200, 420)])]
    rows, _ = rows_of(make_tracks(objs))
    assert not of_kind(rows, "still_during")


def test_a_direction_between_two_sectors_is_asked_as_the_side_it_heads_to():
    # 25 degrees below the horizontal: within the 8-degree margin of the right / down-right edge (22.5), so no
    # direction word, but 20 degrees from the diagonal between the right and bottom sides: it heads right
    dy = math.tan(math.radians(25.0)) * 400
    objs = [(1, "person", "red", 40, 80, [(0.0, 100, 100), (8.0, 500, 100 + dy)]),
            (2, "person", "green", 40, 80, [(0.0, 600, 420), (8.0, 600, 420)])]
    rows, traj = rows_of(make_tracks(objs))
    assert not [f for f, _ in of_kind(rows, "direction_during") if f["tracks"] == [1]]
    heading = of_kind(rows, "heading_during")
    assert len(heading) == 1
    f, row = heading[0]
    d = centre(traj, 1, f["t1"]) - centre(traj, 1, f["t0"])
    assert f["value"] == "right" and abs(d[0]) > abs(d[1]) > 0 and row["answer_text"] == "The right side"
    assert row["category"] == "location_motion"
    # on the diagonal itself (45 degrees) no side either
    objs[0] = (1, "person", "red", 40, 80, [(0.0, 100, 60), (8.0, 420, 380)])
    rows, _ = rows_of(make_tracks(objs))
    assert not of_kind(rows, "heading_during")


def test_two_objects_that_meet_and_part():
    # red walks right along the top, blue left along the bottom: closest at 4 s (280 px apart), far at both ends
    objs = [(1, "person", "red", 40, 80, [(0.0, 100, 100), (8.0, 540, 100)]),
            (2, "person", "blue", 40, 80, [(0.0, 540, 380), (8.0, 100, 380)])]
    rows, traj = rows_of(make_tracks(objs))
    pairs = of_kind(rows, "approach_during")
    assert len(pairs) == 1
    f, row = pairs[0]
    a, b = f["tracks"]

    def dist(t):
        return np.linalg.norm(centre(traj, a, t) - centre(traj, b, t))
    change = (dist(f["t1"]) - dist(f["t0"])) / math.hypot(W, H)
    assert abs(change) >= qa.QAParams().approach_margin
    assert f["value"] == ("closer" if change < 0 else "apart")
    # the window lies on one side of the closest moment: the distance changes one way over it
    assert f["t1"] <= 4.0 + 0.15 or f["t0"] >= 4.0 - 0.15
    assert row["answer_text"] in ("They get closer together", "They move farther apart")
    assert row["category"] == "motion_objects" and len(set(row["options"])) == 4


def test_objects_at_a_steady_distance_are_not_asked_about_it():
    objs = [(1, "person", "red", 40, 80, [(0.0, 100, 100), (8.0, 500, 100)]),
            (2, "person", "blue", 40, 80, [(0.0, 100, 380), (8.0, 500, 380)])]
    rows, _ = rows_of(make_tracks(objs))
    assert not of_kind(rows, "approach_during")


def test_a_box_that_grows_while_it_travels_far_still_has_a_direction():
    # the box's size doubles over the walk (not steady) but the centre travels 400 px, far more than any box edge
    # could move it: the direction over a window stands; a box that only grows in place gives no direction
    objs = [(1, "person", "red", 40, 80, [(0.0, 100, 240, 0.8), (8.0, 500, 240, 1.6)]),
            (2, "person", "green", 40, 80, [(0.0, 600, 420), (8.0, 600, 420)])]
    traj = trajectories(make_tracks(objs), W, H)
    rec = traj.filter(pl.col("track_id") == 1).to_dicts()[0]
    p = qa.QAParams()
    assert not qa._steady_between(rec, 0.5, 7.5, p) and qa._translates_between(rec, 0.5, 7.5, p)
    swelling = [(1, "person", "red", 40, 80, [(0.0, 300, 240, 0.8), (8.0, 310, 240, 1.6)])]
    rec = trajectories(make_tracks(swelling), W, H).to_dicts()[0]
    assert not qa._translates_between(rec, 0.5, 7.5, p)


def test_a_window_can_span_two_move_segments_of_one_motion():
    segs = [{"t0": 0.0, "t1": 2.0, "kind": "move"}, {"t0": 2.0, "t1": 5.0, "kind": "move"},
            {"t0": 5.0, "t1": 6.0, "kind": "stop"}, {"t0": 6.0, "t1": 8.0, "kind": "move"}]
    assert qa._move_spans(segs) == [(0.0, 2.0), (2.0, 5.0), (0.0, 5.0), (6.0, 8.0)]


def test_a_moment_on_a_cell_border_moves_to_a_quarter_of_the_stretch():
    # x goes 227 -> 627 over 8 s: at the stretch's middle (about 4 s) the centre is on the 427 px border between
    # the centre and right columns; the questions come from a quarter and three quarters of the stretch
    objs = [(1, "person", "red", 40, 80, [(0.0, 227, 240), (8.0, 627, 240)]),
            (2, "person", "green", 40, 80, [(0.0, 100, 420), (8.0, 100, 420)])]
    rows, traj = rows_of(make_tracks(objs))
    region = [(f, r) for f, r in of_kind(rows, "region_at") if f["tracks"] == [1]]
    assert len(region) == 2 and {f["value"] for f, _ in region} == {"center", "right"}
    for f, _ in region:
        x = centre(traj, 1, f["t"])[0]
        assert abs(x - 2 * W / 3) > 0.03 * W and (f["value"] == "right") == (x > 2 * W / 3)
    assert qa._moments([(0.3, 7.7)], CLIP) == [(4.0, 0.3, 7.7), (2.2, 0.3, 7.7), (5.9, 0.3, 7.7)]


def test_a_repetition_count_needs_both_readings_to_agree():
    # a straight 400 px walk: the smoothed path has no reversal, so a count of 1 from the fit's course (a
    # reversal of a few frames) is doubtful, a count of 0 is not
    path = [{"t": t, "ncx": (100 + 50 * t) / W, "ncy": 0.5, "nw": 0.06, "nh": 0.16} for t in np.arange(0, 8.01, 0.1)]
    segs = [{"t0": 0.0, "t1": 4.0, "kind": "move"}, {"t0": 4.0, "t1": 4.1, "kind": "move"},
            {"t0": 4.1, "t1": 8.0, "kind": "move"}]
    assert qa._legs_clear(path, segs, W, H, 0) and not qa._legs_clear(path, segs, W, H, 1)


def test_a_stop_then_a_move_is_asked_in_order():
    # red stands 3 s, then walks left for 5 s; its window leaves window_pad_s out around the start of the walk
    objs = [(1, "person", "red", 40, 80, [(0.0, 500, 120), (3.0, 500, 120), (8.0, 100, 120)]),
            (2, "person", "green", 40, 80, [(0.0, 600, 420), (8.0, 200, 420)])]
    rows, traj = rows_of(make_tracks(objs))
    seq = of_kind(rows, "then_during")
    assert [f["tracks"] for f, _ in seq] == [[1]]
    f, row = seq[0]
    assert f["value"] == ["stationary", "left"] and row["answer_text"] == "It stays in place, then moves to the left"
    assert f["t0"] < f["tm0"] < 3.0 < f["tm1"] < f["t1"]
    assert np.linalg.norm(centre(traj, 1, f["tm0"]) - centre(traj, 1, f["t0"])) < 1.0  # still before
    d = centre(traj, 1, f["t1"]) - centre(traj, 1, f["tm1"])
    assert d[0] < -100 and abs(d[1]) < 1.0  # left after
    assert "It moves to the left, then stays in place" in row["options"] and row["category"] == "temporal_order"
    assert len(set(row["options"])) == 4
