"""Tests of fm_assets.labels.qa: rule-based multiple-choice questions, grounded questions, referring expressions,
selection / letters / shuffling (finalize) and the checking of LLM-written questions, on trajectories computed by
motion_facts from hand-made `tracks` tables with known motion."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter

import numpy as np
import polars as pl
import pytest

from fm_assets import synthetic as S
from fm_assets.labels import qa
from fm_assets.labels.motion_facts import pair_relations, trajectories
from fm_assets.labels.schemas import QA_PAIRS, frame

W, H = 640, 480
CLIP = {"video_id": "v", "clip_id": "v:0", "start_s": 0.0, "end_s": 8.0}


# --------------------------------------------------------------------------------------------------
# Helpers


def make_tracks(objs: list[tuple], fps: float = 10.0, duration: float = 8.0, video_id: str = "v",
                clip_id: str = "v:0", jitter: float = 0.0, seed: int = 0, t0: float = 0.0) -> pl.DataFrame:
    """A `tracks` table from (track_id, label, color, w, h, keyframes[(t, cx, cy[, scale])]) with boxes from the
    synthetic motion model (linear between keyframes), sampled at ``fps`` over ``duration``, all times shifted by
    ``t0``."""
    rng = np.random.default_rng(seed)
    rows = []
    for tid, label, color, w, h, kfs, *rest in objs:
        span = rest[0] if rest else (t0, t0 + duration)
        spec = S.ObjectSpec(tid, label, "red", "box", w, h, tuple(S.Keyframe(k[0] + t0, *k[1:]) for k in kfs))
        for i in range(int(round(duration * fps))):
            t = t0 + i / fps
            if not (span[0] <= t < span[1]):
                continue
            cx, cy, s = S.object_state(spec, t)
            box = np.array([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2])
            if jitter:
                box = box + rng.normal(0.0, jitter, 4)
            rows.append({"video_id": video_id, "clip_id": clip_id, "track_id": tid, "frame_idx": int(round(t * 25)),
                         "t_s": t, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "score": 0.9,
                         "label": label, "color": color})
    return pl.DataFrame(rows, infer_schema_length=None)


def facts_of(objs: list[tuple], **kw) -> tuple[pl.DataFrame, pl.DataFrame]:
    traj = trajectories(make_tracks(objs, **kw), W, H)
    return traj, pair_relations(traj)


# red: right along the top; blue ball: right, a 1.5 s stop, then up; green: down-up twice on the right
RICH = [
    (1, "object", "red", 80, 60, [(0.5, 100, 100), (4.0, 500, 100)]),
    (2, "ball", "blue", 70, 70, [(1.5, 120, 400), (3.0, 300, 400), (4.5, 300, 400), (6.0, 300, 260)]),
    (3, "object", "green", 60, 60,
     [(1.0, 560, 200), (2.5, 560, 420), (4.0, 560, 200), (5.5, 560, 420), (7.0, 560, 200)]),
]


@pytest.fixture(scope="module")
def rich() -> tuple[pl.DataFrame, pl.DataFrame]:
    return facts_of(RICH)


def all_rows(traj, pairs, clip=CLIP, params=None):
    return qa.rule_questions(traj, pairs, clip, params) + qa.grounded_questions(traj, pairs, clip, params)


def fact(row: dict) -> dict:
    return json.loads(row["fact"])


def kinds(rows) -> Counter:
    return Counter(fact(r)["kind"] for r in rows)


# --------------------------------------------------------------------------------------------------
# Answers equal the facts


def sector(dx: float, dy: float) -> str:
    """The 45-degree sector of a displacement (y down)."""
    sectors = ["right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right"]
    return sectors[int(((math.degrees(math.atan2(dy, dx)) + 22.5) % 360) // 45)]


def expected_value(f: dict, traj: pl.DataFrame):
    """Recompute a rule question's answer from the trajectory facts (independently of qa's code paths)."""
    recs = {r["track_id"]: r for r in traj.filter(pl.col("kept")).to_dicts()}
    o = recs[f["tracks"][0]]
    k = f["kind"]
    if k in ("direction", "start_region", "end_region", "repetitions", "n_stops"):
        return o[k]
    if k == "heading":
        dx, dy = o["dx"] * W, o["dy"] * H
        return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("bottom" if dy > 0 else "top")
    if k in ("first_move", "last_move"):
        moves = [s for s in o["segments"] if s["kind"] == "move"]
        return (moves[0] if k == "first_move" else moves[-1])["direction"]
    if k == "direction_at":
        return next(s["direction"] for s in o["segments"] if s["t0"] <= f["t"] <= s["t1"])
    if k == "activity":
        if o["repetitions"]:
            return "back_and_forth"
        return "stop_and_go" if o["n_stops"] else "steady"
    if k in ("starts_first", "stops_first"):
        key = "onset_s" if k == "starts_first" else "end_s"
        return min(f["tracks"], key=lambda t: recs[t][key])
    if k == "which_direction":
        hits = [t for t, r in recs.items() if r["direction"] == f["direction"]]
        assert len(hits) == 1
        return hits[0]
    if k == "which_activity":
        key = "n_stops" if f["activity"] == "stop_and_go" else "repetitions"
        hits = [t for t, r in recs.items() if r[key] >= 1]
        assert len(hits) == 1
        return hits[0]
    if k in ("longest", "fastest"):
        key = "distance" if k == "longest" else "mean_speed"
        return max(recs, key=lambda t: recs[t][key])
    if k == "count_direction":
        return sum(r["direction"] == f["direction"] for r in recs.values())
    if k == "majority_direction":
        return Counter(r["direction"] for r in recs.values() if r["moved"]).most_common(1)[0][0]
    if k in ("enters_first", "exits_first"):
        key = "t_start" if k == "enters_first" else "t_end"
        return min(f["tracks"], key=lambda t: recs[t][key])
    if k in ("nearest", "furthest"):
        def bottom(t):
            path = recs[t]["path"]
            return np.interp(f["t"], [q["t"] for q in path], [q["ncy"] + q["nh"] / 2 for q in path])
        return (max if k == "nearest" else min)(f["tracks"], key=bottom)
    if k in ("direction_during", "heading_during", "still_during", "then_during", "region_at"):
        path = o["path"]
        ts = [q["t"] for q in path]

        def centre(t):
            return np.interp(t, ts, [q["ncx"] for q in path]) * W, np.interp(t, ts, [q["ncy"] for q in path]) * H
        if k == "region_at":  # the 3 x 3 grid cell of the centre at t
            x, y = centre(f["t"])
            grid = [["top-left", "top", "top-right"], ["left", "center", "right"],
                    ["bottom-left", "bottom", "bottom-right"]]
            return grid[min(int(3 * y / H), 2)][min(int(3 * x / W), 2)]
        (x0, y0), (x1, y1) = centre(f["t0"]), centre(f["t1"])  # 45-degree sector of the displacement (y down)
        if k == "then_during":  # still or the 45-degree sector, over [t0, tm0] then over [tm1, t1]
            out = []
            for a, b in ((f["t0"], f["tm0"]), (f["tm1"], f["t1"])):
                (xa, ya), (xb, yb) = centre(a), centre(b)
                if max(math.dist(centre(t), (xa, ya)) for t in np.linspace(a, b, 20)) < 0.01 * math.hypot(W, H):
                    out.append("stationary")
                    continue
                out.append(sector(xb - xa, yb - ya))
            return out
        if k == "still_during":  # the centre stays within 1 % of the diagonal of where it was at t0
            pts = [centre(t) for t in np.linspace(f["t0"], f["t1"], 20)]
            return "stationary" if max(math.dist(q, (x0, y0)) for q in pts) < 0.01 * math.hypot(W, H) else "moves"
        if k == "heading_during":  # the side of the frame: the larger of |dx|, |dy|
            return ("right" if x1 > x0 else "left") if abs(x1 - x0) > abs(y1 - y0) else ("bottom" if y1 > y0 else "top")
        return sector(x1 - x0, y1 - y0)
    if k in ("relative_at", "faster_during", "approach_during"):
        def at(t, tid):
            path = recs[tid]["path"]
            ts = [q["t"] for q in path]
            return np.array([np.interp(t, ts, [q["ncx"] for q in path]) * W, np.interp(t, ts, [q["ncy"] for q in path]) * H])
        a, b = f["tracks"]
        if k == "relative_at":
            dx, dy = at(f["t"], a) - at(f["t"], b)
            return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("below" if dy > 0 else "above")
        if k == "approach_during":  # the distance between the centres at t1 against t0
            return "closer" if (np.linalg.norm(at(f["t1"], a) - at(f["t1"], b))
                                < np.linalg.norm(at(f["t0"], a) - at(f["t0"], b))) else "apart"

        def length(tid):
            pts = np.array([at(t, tid) for t in np.linspace(f["t0"], f["t1"], 50)])
            return np.hypot(*np.diff(pts, axis=0).T).sum()
        return a if length(a) > length(b) else b
    raise AssertionError(f"unknown kind {k}")


def answer_text_for(f: dict, refs: dict) -> str:
    """The option text a fact value must be shown as."""
    v = f["value"]
    k = f["kind"]
    if k in ("direction", "direction_at", "first_move", "last_move", "direction_during"):
        return qa._DIR_OPTION[v]
    if k in ("start_region", "end_region", "region_at"):
        return qa._cap(qa._REGION_TEXT[v])
    if k == "relative_at":
        return qa._RELATIVE_OPTION[v].format(y=refs[f["tracks"][1]])
    if k in ("heading", "heading_during"):
        return qa._SIDE_OPTION[v]
    if k == "still_during":
        return "It stays in place"
    if k == "then_during":
        return "It {}, then {}".format(*(qa._phase_text(x) for x in v))
    if k == "approach_during":
        return {"closer": "They get closer together", "apart": "They move farther apart"}[v]
    if k == "activity":
        return qa._ACTIVITY_OPTION[v]
    if k in ("repetitions", "n_stops"):
        return qa._times(v)
    if k == "count_direction":
        return str(v)
    if k == "majority_direction":
        return qa._DIR_OPTION[v]
    return qa._cap(refs[v])


def test_rule_answers_equal_the_facts(rich):
    traj, pairs = rich
    rows = qa.rule_questions(traj, pairs, CLIP)
    refs = qa.refer(traj)
    assert len(rows) >= 25
    for r in rows:
        f = fact(r)
        assert f["value"] == expected_value(f, traj), r["question"]
        assert r["answer_text"] == answer_text_for(f, refs), r["question"]
        assert r["options"][0] == r["answer_text"] and len(set(map(str.lower, r["options"]))) == 4
        assert r["source"] == "rule" and r["verified"] is True and r["grounded"] is False
        assert r["category"] in qa.CATEGORIES


def test_rich_clip_covers_every_category_and_kind(rich):
    traj, pairs = rich
    rows = qa.rule_questions(traj, pairs, CLIP)
    assert {r["category"] for r in rows} == set(qa.CATEGORIES)
    assert {"direction", "direction_at", "activity", "start_region", "end_region", "heading", "starts_first",
            "stops_first", "first_move", "last_move", "which_direction", "which_activity", "longest",
            "repetitions", "n_stops"} <= set(kinds(rows))
    final = qa.finalize(all_rows(traj, pairs), "v")
    assert {r["category"] for r in final if not r["grounded"]} == set(qa.CATEGORIES)


def test_specific_answers(rich):
    traj, pairs = rich
    rows = {(fact(r)["kind"], tuple(fact(r)["tracks"])): r for r in qa.rule_questions(traj, pairs, CLIP)}
    assert rows[("direction", (1,))]["answer_text"] == "To the right"
    assert rows[("direction", (2,))]["answer_text"] == "Up and to the right"
    assert rows[("n_stops", (2,))]["answer_text"] == "Once"
    assert rows[("repetitions", (3,))]["answer_text"] == "Twice"
    assert rows[("activity", (3,))]["answer_text"] == "It goes back and forth"
    assert rows[("start_region", (1,))]["answer_text"] == "The top-left"
    assert rows[("first_move", (2,))]["answer_text"] == "To the right"
    assert rows[("last_move", (2,))]["answer_text"] == "Upward"
    assert rows[("starts_first", (1, 2, 3))]["answer_text"] == "The red object"
    # counts: nearby, never negative
    opts = rows[("n_stops", (1,))]["options"]
    assert opts[0] == "Not at all" and set(opts[1:]) == {"Once", "Twice", "3 times"}
    # directions: the opposite is always among the distractors
    assert "To the left" in rows[("direction", (1,))]["options"]


def test_question_mentions_the_subject_and_times_are_clip_relative(rich):
    traj, pairs = rich
    refs = qa.refer(traj)
    clip = {**CLIP, "start_s": 0.0}
    for r in qa.rule_questions(traj, pairs, clip):
        f = fact(r)
        if f["kind"] in ("direction", "activity", "start_region", "end_region", "repetitions", "n_stops"):
            assert refs[f["tracks"][0]] in r["question"]
        if f["kind"] == "direction_at":
            (t,) = re.findall(r"(\d+\.\d) s", r["question"])
            assert abs(float(t) - f["t"]) < 1e-6
    # a clip starting later: times in the text are relative to its start, facts stay absolute
    shifted = make_tracks(RICH, t0=10.0)
    traj2 = trajectories(shifted, W, H)
    rows = qa.rule_questions(traj2, pair_relations(traj2), {**CLIP, "start_s": 10.0, "end_s": 18.0})
    at = [r for r in rows if fact(r)["kind"] == "direction_at"]
    assert at
    for r in at:
        (t,) = re.findall(r"(\d+\.\d) s", r["question"])
        assert abs(float(t) + 10.0 - fact(r)["t"]) < 1e-6


# --------------------------------------------------------------------------------------------------
# Referring expressions


def test_refer_unique_and_natural():
    objs = [
        (1, "car", "white", 80, 50, [(0.5, 80, 80), (4.0, 300, 80)]),  # white car, top-left
        (2, "car", "white", 80, 50, [(1.0, 560, 400), (5.0, 350, 400)]),  # white car, bottom-right
        (3, "car", "white", 80, 50, [(2.0, 90, 130), (6.0, 300, 150)]),  # white car, top-left too, moves later
        (4, "person", None, 40, 100, [(0.5, 320, 240), (5.0, 330, 380)]),
        (5, "object", "red", 60, 60, [(0.5, 500, 100), (6.0, 520, 300)]),
        (6, "object", None, 50, 50, [(0.5, 200, 300), (6.0, 100, 300)]),
        (7, "object", None, 50, 50, [(0.5, 450, 250), (6.0, 450, 120)]),
    ]
    traj, _ = facts_of(objs)
    refs = qa.refer(traj)
    assert len(set(refs.values())) == len(refs) == 7
    assert refs[4] == "the person"
    assert refs[5] == "the red object"
    assert refs[2] == "the white car that starts in the bottom-right"
    assert refs[1] == "the white car that starts in the top-left and moves first"
    assert refs[3] == "the white car that starts in the top-left and moves second"
    assert refs[6].startswith("the object that starts in") and refs[7].startswith("the object that starts in")


@pytest.mark.parametrize("seed", range(5))
def test_refer_always_unique_random(seed):
    rng = np.random.default_rng(seed)
    objs = []
    for tid in range(1, 9):
        x0, y0 = rng.uniform(60, 580), rng.uniform(60, 420)
        x1, y1 = rng.uniform(60, 580), rng.uniform(60, 420)
        t = float(rng.choice([0.5, 0.5, 1.0, 2.0]))
        objs.append((tid, str(rng.choice(["object", "car"])), rng.choice(["red", "red", None]), 40, 40,
                     [(t, x0, y0), (t + 3.0, x1, y1)]))
    traj, _ = facts_of(objs)
    refs = qa.refer(traj)
    assert len(set(refs.values())) == len(refs) == int(traj["kept"].sum())


# --------------------------------------------------------------------------------------------------
# Grounded questions


def test_grounded_questions(rich):
    traj, pairs = rich
    rows = qa.grounded_questions(traj, pairs, CLIP)
    refs = qa.refer(traj)
    spans = {r["track_id"]: (r["t_start"], r["t_end"]) for r in traj.to_dicts()}
    assert {r["q_type"] for r in rows} >= {"descriptive", "causal", "sequential"}
    for r in rows:
        assert r["grounded"] and r["options"] is None and r["q_type"] in qa.Q_TYPES
        assert r["answer_text"] == refs[r["target_track_id"]]
        assert r["answer_text"] not in r["question"]  # never names the answer
        t0, t1 = spans[r["target_track_id"]]
        assert CLIP["start_s"] <= r["action_start_s"] < r["action_end_s"] <= CLIP["end_s"]
        assert t0 <= r["action_start_s"] and r["action_end_s"] <= t1
    by = {(fact(r)["kind"], r["target_track_id"]): r for r in rows}
    pause = by[("g_activity", 2)]  # the blue ball's pause: 3.0 - 4.5 s
    assert abs(pause["action_start_s"] - 3.0) < 0.15 and abs(pause["action_end_s"] - 4.5) < 0.15
    assert by[("g_starts_before", 1)]["action_start_s"] == pytest.approx(0.5, abs=0.15)


def test_counterfactual_only_when_true_and_unique():
    # red and blue both move left, green moves down: "if red had stayed still, which object would be the only
    # one moving left?" -> blue (and the other way round); nothing about "down" (only one mover there anyway)
    objs = [
        (1, "object", "red", 60, 60, [(0.5, 560, 80), (5.0, 100, 80)]),
        (2, "object", "blue", 60, 60, [(1.5, 560, 400), (6.0, 100, 400)]),
        (3, "object", "green", 60, 60, [(1.0, 320, 160), (5.0, 320, 330)]),
    ]
    traj, pairs = facts_of(objs)
    rows = [r for r in qa.grounded_questions(traj, pairs, CLIP) if r["q_type"] == "counterfactual"]
    cf = {(fact(r)["ref"], r["target_track_id"]) for r in rows if fact(r)["kind"] == "g_cf_direction"}
    assert cf == {(1, 2), (2, 1)}
    assert all("left" in r["question"] for r in rows if fact(r)["kind"] == "g_cf_direction")
    # and no "which object moves left" question: two answers
    assert not [r for r in qa.rule_questions(traj, pairs, CLIP)
                if fact(r)["kind"] == "which_direction" and fact(r)["direction"] == "left"]


# --------------------------------------------------------------------------------------------------
# Ambiguity guards


def test_no_question_when_two_objects_share_the_asked_direction():
    objs = [(1, "object", "red", 60, 60, [(0.5, 560, 80), (5.0, 100, 80)]),
            (2, "object", "blue", 60, 60, [(1.5, 560, 400), (6.0, 100, 400)])]
    traj, pairs = facts_of(objs)
    rows = all_rows(traj, pairs)
    assert not [r for r in rows if fact(r)["kind"] in ("which_direction", "g_direction")]
    assert kinds(rows)["direction"] == 2  # each object's own direction is still asked


def test_no_order_question_within_the_gap():
    objs = [(1, "object", "red", 60, 60, [(1.0, 100, 80), (5.0, 540, 80)]),
            (2, "object", "blue", 60, 60, [(1.2, 540, 400), (5.5, 100, 400)])]  # onsets 0.2 s apart
    traj, pairs = facts_of(objs)
    rows = all_rows(traj, pairs)
    assert not [r for r in rows if fact(r)["kind"] in ("starts_first", "g_starts_before", "g_starts_after")]
    objs[1] = (2, "object", "blue", 60, 60, [(2.0, 540, 400), (6.0, 100, 400)])  # 1 s apart: asked
    traj, pairs = facts_of(objs)
    firsts = [r for r in all_rows(traj, pairs) if fact(r)["kind"] == "starts_first"]
    assert firsts and all(fact(r)["value"] == 1 for r in firsts)


def test_noisy_tracks_are_not_asked_about():
    objs = [(1, "object", "red", 60, 60, [(0.5, 100, 100), (4.0, 540, 100)]),
            (2, "object", "blue", 60, 60, [(0.5, 100, 380), (2.0, 540, 380), (3.5, 100, 380), (5.0, 540, 380)])]
    clean = make_tracks(objs[:1])
    noisy = make_tracks(objs[1:], jitter=25.0, seed=3)
    traj = trajectories(pl.concat([clean, noisy]), W, H)
    pairs = pair_relations(traj)
    assert traj.filter(pl.col("track_id") == 2)["box_noise"][0] > qa.QAParams().max_box_noise
    rows = all_rows(traj, pairs)
    assert rows  # the clean track is still asked about ...
    assert all(2 not in fact(r)["tracks"] for r in rows)  # ... never the noisy one
    # ... and nothing comparing all objects (the noisy track's facts are unknown)
    assert not [r for r in rows if fact(r)["kind"] in ("which_direction", "starts_first", "longest", "g_direction")]


def test_boundary_directions_are_skipped():
    # 22 degrees above the horizontal: on the right / up-right boundary
    dx = 400.0
    objs = [(1, "object", "red", 60, 60, [(0.5, 100, 300), (5.0, 100 + dx, 300 - dx * math.tan(math.radians(22.0)))])]
    traj, pairs = facts_of(objs)
    assert not [r for r in qa.rule_questions(traj, pairs, CLIP) if fact(r)["kind"] in ("direction", "heading")]


def test_stop_near_the_definition_is_not_counted():
    # a 0.5 s pause: right at the 0.5 s stop definition -> no stop count / activity question
    objs = [(1, "object", "red", 60, 60, [(0.5, 100, 200), (2.5, 300, 200), (3.0, 300, 200), (5.0, 540, 200)])]
    traj, pairs = facts_of(objs)
    assert not [r for r in qa.rule_questions(traj, pairs, CLIP) if fact(r)["kind"] in ("n_stops", "activity")]


def test_empty_inputs():
    traj, pairs = facts_of([])
    assert qa.rule_questions(traj, pairs, CLIP) == [] and qa.grounded_questions(traj, pairs, CLIP) == []
    assert qa.finalize([], "v") == []
    assert qa.refer(traj) == {}


# --------------------------------------------------------------------------------------------------
# finalize: selection, letters, determinism, table contract


def test_finalize_rows_follow_the_contract(rich):
    traj, pairs = rich
    out = qa.finalize(all_rows(traj, pairs), "v", qa.QAParams(n_questions=10, grounded_per_clip=3))
    assert len(out) == 13  # 10 multiple-choice + 3 grounded on top
    assert sum(r["grounded"] for r in out) == 3
    df = frame(out, QA_PAIRS)
    assert df.columns == list(QA_PAIRS)
    assert all(set(r) == set(QA_PAIRS) for r in out)
    assert df["qa_id"].n_unique() == len(df)
    for r in out:
        assert r["kept"] is True and r["reject_reason"] is None and r["writer"] == "rule" and r["source"] == "rule"
        if r["grounded"]:
            assert r["answer"] is None and r["option_a"] is None and r["q_type"] in qa.Q_TYPES
            assert r["target_track_id"] is not None
        else:
            opts = [r["option_a"], r["option_b"], r["option_c"], r["option_d"]]
            assert len({o.lower() for o in opts}) == 4 and all(opts)
            assert r["answer"] in "ABCD" and opts["ABCD".index(r["answer"])] == r["answer_text"]
            assert r["q_type"] is None and r["category"] in qa.CATEGORIES
            f = fact(r)
            assert f["value"] == expected_value(f, traj)


def test_category_mix_follows_weights(rich):
    traj, pairs = rich
    p = qa.QAParams(n_questions=20, grounded_per_clip=0)
    out = qa.finalize(qa.rule_questions(traj, pairs, CLIP), "v", p)
    counts = Counter(r["category"] for r in out)
    assert len(out) == 20
    # motion_recognition is the largest share; every category gets some
    assert counts["motion_recognition"] == max(counts.values()) and set(counts) == set(qa.CATEGORIES)
    only = qa.QAParams(n_questions=5, grounded_per_clip=0, category_weights=(("repetition_count", 1.0),))
    assert {r["category"] for r in qa.finalize(qa.rule_questions(traj, pairs, CLIP), "v", only)} == {"repetition_count"}


def test_deterministic_and_seeded_by_video(rich):
    traj, pairs = rich
    a = qa.finalize(all_rows(traj, pairs), "v")
    b = qa.finalize(all_rows(traj, pairs), "v")
    assert a == b
    others = []
    for vid in ("w", "x", "y"):
        clip = {**CLIP, "video_id": vid}
        others.append(qa.finalize(all_rows(traj, pairs, clip), vid))
    key = lambda rows: [(r["question"], r["option_a"], r["option_b"], r["answer"]) for r in rows]
    assert all(key(o) != key(a) for o in others)


def test_answer_letters_balanced():
    counts = Counter()
    rng = np.random.default_rng(0)
    traj, pairs = facts_of(RICH)
    for k in range(120):
        vid = f"video{k}"
        out = qa.finalize(all_rows(traj, pairs, {**CLIP, "video_id": vid}), vid)
        per = Counter(r["answer"] for r in out if not r["grounded"])
        assert max(per.values()) - min(per.get(x, 0) for x in "ABCD") <= 1  # balanced within each clip
        counts += per
    total = sum(counts.values())
    assert total == 120 * 10
    assert max(counts.values()) - min(counts.values()) <= 0.08 * total / 4, counts
    del rng


def test_no_near_duplicates(rich):
    traj, pairs = rich
    rows = all_rows(traj, pairs)
    dup = dict(rows[0], question=rows[0]["question"].upper() + " ")  # same text, other case and spacing
    out = qa.finalize(rows + [dup], "v", qa.QAParams(n_questions=100, grounded_per_clip=100))
    toks = [set(re.findall(r"[a-z0-9]+", r["question"].lower())) for r in out]
    for (x, rx), (y, ry) in itertools.combinations(zip(toks, out), 2):
        # only rule questions stating different facts (about different objects) may read alike
        if len(x & y) / len(x | y) >= qa.QAParams().dedupe_threshold:
            assert rx["source"] == ry["source"] == "rule" and rx["fact"] != ry["fact"]
    assert len(out) == len({r["question"].lower().strip() for r in out})
    llm_dup = dict(rows[0], source="llm", question=rows[0]["question"] + " Answer carefully.")
    out2 = qa.finalize(rows + [llm_dup], "v", qa.QAParams(n_questions=100, grounded_per_clip=100))
    assert llm_dup["question"] not in {r["question"] for r in out2}  # an LLM rewording of a rule question goes


# --------------------------------------------------------------------------------------------------
# LLM questions


def mcq(question: str, options: list[str], answer: str, category: str = "motion_recognition") -> dict:
    return {"question": question, "options": options, "answer": answer, "category": category}


def test_verify_llm_question(rich):
    traj, pairs = rich
    v = lambda q: qa.verify_llm_question(q, traj, pairs)
    dirs = ["To the left", "To the right", "Upward", "Downward"]
    assert v(mcq("Which direction does the red object move?", dirs, "B")) == (True, None)
    ok, why = v(mcq("Which direction does the red object move?", dirs, "A"))
    assert ok is False and why.startswith("direction: facts say right")
    # counts
    counts = ["Once", "Twice", "Three times", "Never"]
    reps = "How many times does the green object go back and forth?"
    assert v(mcq(reps, counts, "B", "repetition_count")) == (True, None)
    ok, why = v(mcq(reps, counts, "C", "repetition_count"))
    assert ok is False and why.startswith("count:")
    assert v(mcq("How many times does the blue ball stop along the way?", counts, "A", "repetition_count"))[0] is True
    assert v(mcq("How many times does the blue ball stop along the way?", counts, "D", "repetition_count"))[0] is False
    # regions
    regions = ["The top-left", "The bottom-right", "The center", "The top-right"]
    assert v(mcq("Where does the red object start?", regions, "A", "location_motion")) == (True, None)
    ok, why = v(mcq("Where does the red object end up at the end?", regions, "A", "location_motion"))
    assert ok is False and why.startswith("region:")
    assert v(mcq("Where does the red object end up at the end?", regions, "D", "location_motion"))[0] is True
    # which object / order
    objs = ["The red object", "The blue ball", "The green object", "None of them"]
    assert v(mcq("Which object starts moving first?", objs, "A", "temporal_order")) == (True, None)
    assert v(mcq("Which object starts moving first?", objs, "B", "temporal_order"))[0] is False
    assert v(mcq("Which object moves to the right?", objs, "A", "motion_objects"))[0] is True
    assert v(mcq("Which object moves to the right?", objs, "C", "motion_objects"))[0] is False
    # nothing checkable
    assert v(mcq("What colour is the sky in this clip?", ["Blue", "Grey", "Black", "Orange"], "A",
                 "motion_recognition")) == (None, None)


def test_verify_llm_question_structure(rich):
    traj, pairs = rich
    v = lambda q: qa.verify_llm_question(q, traj, pairs)
    q = mcq("Which direction does the red object move?", ["Left", "Right", "Up", "Down"], "B")
    assert v({**q, "options": ["Left", "Right", "Up"]})[1].startswith("structure:")
    assert v({**q, "options": ["Left", "Right", "Up", "left"]})[1].startswith("structure:")
    assert v({**q, "options": ["Left", "Right", "Up", " "]})[1].startswith("structure:")
    assert v({**q, "answer": "E"})[1].startswith("structure:")
    assert v({**q, "category": "weather"})[1].startswith("structure:")
    assert v(q) == (True, None)


def test_llm_rows_through_finalize(rich):
    traj, pairs = rich
    good = mcq("Which direction does the red object move?", ["To the left", "To the right", "Upward", "Downward"], "B")
    bad = mcq("Which direction does the red object go?", ["To the left", "To the right", "Upward", "Downward"], "A")
    llm = qa.llm_rows([good, bad], traj, pairs, CLIP, "gpt-4o-mini", "qa_v1@x")
    assert [r["verified"] for r in llm] == [True, False] and llm[1]["kept"] is False
    out = qa.finalize(llm, "v")
    by_q = {r["question"]: r for r in out}
    g, b = by_q[good["question"]], by_q[bad["question"]]
    assert g["kept"] and g["source"] == "llm" and g["writer"] == "gpt-4o-mini" and g["answer_text"] == "To the right"
    assert [g["option_a"], g["option_b"], g["option_c"], g["option_d"]]["ABCD".index(g["answer"])] == "To the right"
    assert b["kept"] is False and b["reject_reason"].startswith("direction:") and b["answer"] == "A"
    frame(out, QA_PAIRS)


def test_object_entering_through_the_frame_edge_is_asked_about():
    """A car driving up into the frame from the bottom edge: its box grows in height while it enters (the
    aspect ratio changes a lot), but the centre moves much further than the box's shape changes, so the
    direction is certain and asked."""
    rows = []
    for i in range(40):  # 4 s at 10 fps: the car's top edge rises from y=480 to y=80, its bottom stays clipped
        t = i / 10
        top = 480 - 100 * t
        rows.append({"video_id": "v", "clip_id": "v:0", "track_id": 1, "frame_idx": i, "t_s": t, "x1": 280.0,
                     "y1": top, "x2": 360.0, "y2": min(480.0, top + 160), "score": 0.9, "label": "object",
                     "color": "white"})
    traj = trajectories(pl.DataFrame(rows), W, H)
    assert traj["kept"][0] and traj["direction"][0] == "up"
    qs = qa.rule_questions(traj, pair_relations(traj), {**CLIP, "end_s": 4.0})
    kinds = {q["kind"]: q for q in qs}
    assert "direction" in kinds and json.loads(kinds["direction"]["fact"])["value"] == "up"


def test_box_at_gives_the_floats_np_interp_gives():
    """qa._box_at interpolates on Python floats (it is asked tens of thousands of times a clip): at the path's own
    times, between them and at both ends, exactly np.interp's floats; None outside the track's span."""
    from fm_assets.labels.qa import _arrays, _box_at

    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.uniform(0.02, 0.3, 60))
    path = [{"t": float(t), "ncx": float(a), "ncy": float(b), "nw": float(c), "nh": float(d)}
            for t, (a, b, c, d) in zip(ts, rng.uniform(0, 1, (60, 4)))]
    r = {"path": path, "t_start": float(ts[0]), "t_end": float(ts[-1])}
    times, xy = _arrays(r)
    for t in [*ts, *rng.uniform(ts[0], ts[-1], 500), ts[0], ts[-1]]:
        expected = np.array([np.interp(t, times, xy[:, k]) for k in range(4)])
        assert np.array_equal(_box_at(r, float(t)), expected)
    assert _box_at(r, float(ts[0]) - 0.01) is None and _box_at(r, float(ts[-1]) + 0.01) is None
