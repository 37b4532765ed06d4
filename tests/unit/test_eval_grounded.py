"""`fm eval grounded`: GroundMoRe's J / F / J&F on hand-computed masks, the frame sampling rule, ground truth from
lake tables (empty outside the window) and from a groundmore export, bad predictions, per-q_type aggregation.
On a synthetic scene materialized through the graph: tests/assets/test_eval_grounded.py; the `fm` command:
tests/e2e/test_eval_grounded.py."""

import json

import numpy as np
import polars as pl
import pytest
from PIL import Image

from fm_assets.evaluation import grounded as eg
from fm_assets.evaluation.grounded import (
    GTQuestion,
    boundary_map,
    evaluate,
    export_ground_truth,
    f_measure,
    jaccard,
    lake_ground_truth,
    sample_indices,
    summarize,
    tolerance_px,
)
from fm_assets.labels.masks import TrackPath, box_mask
from tests.helpers import write_boxes, write_export


def square(r0: int, c0: int, k: int = 4, shape=(10, 10)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0 : r0 + k, c0 : c0 + k] = True
    return m


# --------------------------------------------------------------------------------------------------
# Metrics, by hand


def test_frame_sampling_is_groundmores_truncated_linspace():
    # linspace(0, 99, 20) = 0, 5.21, 10.42, 15.63, ... truncated (rounding would give 16, 21, 42, ...)
    assert sample_indices(100).tolist() == [0, 5, 10, 15, 20, 26, 31, 36, 41, 46, 52, 57, 62, 67, 72, 78, 83, 88,
                                            93, 99]
    assert sample_indices(20).tolist() == list(range(20))
    # fewer frames than 20: frames repeat (and the repeats count in the mean, as in GroundMoRe)
    assert sample_indices(5).tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 4 + [4]
    assert sample_indices(1).tolist() == [0] * 20
    with pytest.raises(ValueError):
        sample_indices(0)


def test_boundary_tolerance_is_davis_ceil_of_the_diagonal_share():
    assert tolerance_px((480, 640)) == 7  # 0.008 * 800 = 6.4 -> 7
    assert tolerance_px((300, 400)) == 4  # 0.008 * 500 = 4.0 exactly -> 4
    assert tolerance_px((10, 10)) == 1  # 0.113 -> 1
    assert tolerance_px((10, 10), bound_th=2) == 2  # >= 1: pixels


def test_boundary_map_is_davis_seg2bmap():
    # a 4x4 square on rows/cols 2..5: the boundary is the 1-px ring of rows/cols 1..5 (half a pixel toward the
    # origin), 16 pixels
    b = boundary_map(square(2, 2))
    ring = np.zeros((10, 10), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    assert (b == ring).all() and b.sum() == 16
    assert boundary_map(np.zeros((10, 10), bool)).sum() == 0


def test_j_and_f_of_a_square_offset_by_one_and_two_pixels():
    gt = square(2, 2)
    # offset 1 px: IoU = 12 / 20; every boundary pixel has its partner 1 px away (tolerance 1 px at 10x10)
    assert jaccard(gt, square(2, 3)) == pytest.approx(0.6)
    assert f_measure(gt, square(2, 3)) == pytest.approx(1.0)
    # offset 2 px: IoU = 8 / 24. With tolerance 1, of the 16 predicted ring pixels (cols 3..7) the top and bottom
    # rows match at cols 3..6 (4 + 4) and the left column at rows 2 and 4 (next to the truth's top and bottom rows):
    # precision = 10/16, recall = 10/16 by symmetry, F = 0.625
    assert jaccard(gt, square(2, 4)) == pytest.approx(1 / 3)
    assert f_measure(gt, square(2, 4)) == pytest.approx(0.625)
    assert f_measure(gt, square(2, 4), bound_th=1) == pytest.approx(0.625)
    # exactly at the threshold: at tolerance 2 every pixel is at most 2 px from the other ring -> a match
    assert f_measure(gt, square(2, 4), bound_th=2) == pytest.approx(1.0)


def test_f_at_the_real_threshold_on_a_640x480_frame():
    gt = square(100, 100, k=80, shape=(480, 640))
    assert f_measure(gt, square(100, 107, k=80, shape=(480, 640))) == 1.0  # 7 px = ceil(0.008 * 800): matched
    assert f_measure(gt, square(100, 108, k=80, shape=(480, 640))) < 1.0  # 8 px: the side columns are not


def test_f_matches_a_brute_force_distance_definition():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = np.zeros((30, 40), bool)
        b = np.zeros((30, 40), bool)
        for m in (a, b):
            for _ in range(3):
                y, x = rng.integers(0, 25), rng.integers(0, 35)
                m[y : y + rng.integers(2, 8), x : x + rng.integers(2, 8)] = True
        ba, bb = np.argwhere(boundary_map(a)), np.argwhere(boundary_map(b))
        r = tolerance_px(a.shape, bound_th=3)
        d = np.sqrt(((ba[:, None, :] - bb[None, :, :]) ** 2).sum(-1))
        precision = (d.min(axis=0) <= r).mean()  # b = prediction
        recall = (d.min(axis=1) <= r).mean()
        expected = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        assert f_measure(a, b, bound_th=3) == pytest.approx(expected)


def test_empty_masks():
    empty = np.zeros((10, 10), bool)
    assert jaccard(empty, empty) == 1.0 and f_measure(empty, empty) == 1.0  # both empty: right
    assert jaccard(square(2, 2), empty) == 0.0 and f_measure(square(2, 2), empty) == 0.0  # missed object
    assert jaccard(empty, square(2, 2)) == 0.0 and f_measure(empty, square(2, 2)) == 0.0  # object outside window


def test_box_mask_covers_the_pixels_the_box_touches():
    m = box_mask([1.5, 2.0, 4.2, 3.0], 6, 8)
    assert m.sum() == 4 and m[2, 1:5].all()  # x: floor(1.5)=1 .. ceil(4.2)=5, y: 2 .. 3
    assert box_mask([-5, -5, 100, 100], 6, 8).all()
    assert box_mask([20, 20, 30, 30], 6, 8).sum() == 0


def test_per_q_type_aggregation_in_percent():
    rows = [{"q_type": "causal", "J": 1.0, "F": 1.0, "status": "ok"},
            {"q_type": "causal", "J": 0.5, "F": 0.0, "status": "ok"},
            {"q_type": "descriptive", "J": 0.25, "F": 0.75, "status": "partial"},
            {"q_type": "sequential", "J": 0.0, "F": 0.0, "status": "missing"}]
    s = {r["q_type"]: r for r in summarize(rows)}
    assert [r["q_type"] for r in summarize(rows)] == ["causal", "sequential", "counterfactual", "descriptive",
                                                      "overall"]
    assert (s["causal"]["J"], s["causal"]["F"], s["causal"]["JF"]) == (75.0, 50.0, 62.5)
    assert (s["descriptive"]["J"], s["descriptive"]["F"], s["descriptive"]["JF"]) == (25.0, 75.0, 50.0)
    assert s["sequential"]["JF"] == 0.0 and s["sequential"]["missing"] == 1
    assert s["counterfactual"]["questions"] == 0 and s["counterfactual"]["JF"] is None
    # overall: mean J over the 4 questions = 43.75, mean F = 43.75, J&F = (J + F) / 2
    assert s["overall"]["questions"] == 4 and s["overall"]["J"] == pytest.approx(43.75)
    assert s["overall"]["JF"] == pytest.approx((s["overall"]["J"] + s["overall"]["F"]) / 2)
    assert s["overall"]["partial"] == 1


# --------------------------------------------------------------------------------------------------
# Ground truth from the lake


def _lake_tables(window=(2.0, 5.0)):
    """One clip of 100 frames at 10 fps (64x48): track 1 slides right (x1 = f / 5) and is tracked on frames
    0, 10, .., 90; track 2 stands still."""
    clips = pl.DataFrame([{"video_id": "v", "clip_id": "c", "start_frame": 0, "end_frame": 100, "start_s": 0.0,
                           "end_s": 10.0, "fps": 10.0, "width": 64, "height": 48, "kept": True}])
    rows = []
    for f in range(0, 100, 10):
        rows.append({"clip_id": "c", "track_id": 1, "frame_idx": f, "t_s": f / 10, "x1": f / 5, "y1": 10.0,
                     "x2": f / 5 + 10, "y2": 20.0})
        rows.append({"clip_id": "c", "track_id": 2, "frame_idx": f, "t_s": f / 10, "x1": 40.0, "y1": 30.0,
                     "x2": 56.0, "y2": 44.0})
    tracks = pl.DataFrame(rows)
    q = {"video_id": "v", "clip_id": "c", "question": "?", "answer_text": "it", "grounded": True, "kept": True}
    qa = pl.DataFrame([
        {**q, "qa_id": "q1", "q_type": "causal", "target_track_id": 1, "action_start_s": window[0],
         "action_end_s": window[1]},
        {**q, "qa_id": "q2", "q_type": "descriptive", "target_track_id": 2, "action_start_s": 0.0,
         "action_end_s": 10.0},
        {**q, "qa_id": "q3", "q_type": "causal", "target_track_id": 2, "action_start_s": 0.0,
         "action_end_s": 1.0, "kept": False},  # a rejected question is not scored
        {**q, "qa_id": "q4", "q_type": None, "target_track_id": None, "action_start_s": None,
         "action_end_s": None, "grounded": False},  # a multiple-choice question neither
    ])
    return qa, clips, tracks


def test_lake_truth_is_the_interpolated_box_inside_the_window_and_empty_outside():
    qa, clips, tracks = _lake_tables()
    qs, problems = lake_ground_truth(qa, clips, tracks)
    assert not problems and [q.qa_id for q in qs] == ["q1", "q2"]
    q1 = qs[0]
    assert q1.frames == sample_indices(100).tolist() and q1.height == 48 and q1.width == 64
    # times f / 10: the window [2.0, 5.0] s holds the sampled frames 20, 26, 31, 36, 41, 46
    assert [f for f, i in zip(q1.frames, q1.inside) if i] == [20, 26, 31, 36, 41, 46]
    for i, f in enumerate(q1.frames):
        m = q1.mask(i)
        if not q1.inside[i]:
            assert m.sum() == 0, f"frame {f} is outside the window: empty"
    # frame 26 lies between the boxes of frames 20 (x1 = 4) and 30 (x1 = 6): x1 = 5.2 -> pixels 5 .. 15
    k = q1.frames.index(26)
    assert q1.shapes[k][0] == "box" and q1.shapes[k][1] == pytest.approx((5.2, 10.0, 15.2, 20.0))
    assert (q1.mask(k) == box_mask([5.2, 10, 15.2, 20], 48, 64)).all()
    # q2: the whole clip is its window, but the track ends at frame 90: empty on frames 93 and 99
    q2 = qs[1]
    assert all(q2.inside)
    assert [f for i, f in enumerate(q2.frames) if q2.mask(i).sum() == 0] == [93, 99]


def test_window_edges_allow_half_a_millisecond():
    qa, clips, tracks = _lake_tables(window=(2.0004, 5.0))
    assert lake_ground_truth(qa, clips, tracks)[0][0].inside[4]  # frame 20 at 2.0 s: inside
    qa, clips, tracks = _lake_tables(window=(2.001, 5.0))
    assert not lake_ground_truth(qa, clips, tracks)[0][0].inside[4]


def test_lake_truth_uses_the_detector_mask_moved_with_the_box():
    from pycocotools import mask as mask_utils

    qa, clips, tracks = _lake_tables()
    blob = np.zeros((48, 64), np.uint8)
    blob[12:18, 8:14] = 1  # inside track 1's box on frame 30 (x 6..16, y 10..20)
    rle = mask_utils.encode(np.asfortranarray(blob))
    rle_json = json.dumps({"size": rle["size"], "counts": rle["counts"].decode()})
    dets = pl.DataFrame([{"clip_id": "c", "frame_idx": 30, "x1": 6.0, "y1": 10.0, "x2": 16.0, "y2": 20.0,
                          "mask_rle": rle_json}])
    q1 = lake_ground_truth(qa, clips, tracks, dets)[0][0]
    # frame 31 is nearest to 30 (which has the mask): the mask moved by the box centre's change, round(0.2) = 0
    m31 = q1.mask(q1.frames.index(31))
    assert (m31 == blob.astype(bool)).all()
    # frame 26: nearest observation 30 (weight 0.6); centre 10.2 vs 11 -> moved 1 px left
    m26 = q1.mask(q1.frames.index(26))
    assert m26.sum() == 36 and m26[12:18, 7:13].all()
    # frame 20 has no mask of its own: the box
    assert q1.shapes[q1.frames.index(20)][0] == "box"


def test_scores_of_perfect_and_whole_track_predictions(tmp_path):
    qa, clips, tracks = _lake_tables()
    qs, _ = lake_ground_truth(qa, clips, tracks)
    q1 = qs[0]
    path = TrackPath(tracks.filter(pl.col("track_id") == 1))
    # the truth's own boxes inside the window: J = F = 1
    write_boxes(tmp_path / "perfect", "q1", {f: (path.box_at(f).tolist() if ins else None)
                                             for f, ins in zip(q1.frames, q1.inside)})
    r = evaluate([q1], tmp_path / "perfect")["questions"][0]
    assert (r["J"], r["F"], r["status"]) == (1.0, 1.0, "ok")
    # the track's box on every frame it has one (like the baseline): right on the 6 frames of the window and on
    # frames 93 and 99 (both empty after the track ends), wrong on the other 12: J = F = 8 / 20
    write_boxes(tmp_path / "track", "q1", {f: (b.tolist() if (b := path.box_at(f)) is not None else None)
                                           for f in q1.frames})
    r = evaluate([q1], tmp_path / "track")["questions"][0]
    assert r["J"] == pytest.approx(0.4) and r["F"] == pytest.approx(0.4) and r["JF"] == pytest.approx(0.4)
    assert r["frame_J"] == [0.0] * 4 + [1.0] * 6 + [0.0] * 8 + [1.0] * 2
    # an empty prediction (a file with no frames) is right exactly outside the window: 14 / 20
    write_boxes(tmp_path / "empty", "q1", {})
    assert evaluate([q1], tmp_path / "empty")["questions"][0]["J"] == pytest.approx(0.7)


def test_png_and_rle_predictions_of_the_truth_score_one(tmp_path):
    from pycocotools import mask as mask_utils

    qa, clips, tracks = _lake_tables()
    qs, _ = lake_ground_truth(qa, clips, tracks)
    for q in qs:
        folder = tmp_path / "png" / q.qa_id
        folder.mkdir(parents=True)
        frames = {}
        for i, f in enumerate(q.frames):
            m = q.mask(i)
            img = Image.fromarray(m.astype(np.uint8) * 3)  # palette PNG, object index 3
            img.putpalette([0, 0, 0, 255, 0, 0] * 128)
            img.save(folder / f"{f:05d}.png")
            if m.any():
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                frames[str(f)] = {"size": rle["size"], "counts": rle["counts"].decode()}
        (tmp_path / "rle").mkdir(exist_ok=True)
        (tmp_path / "rle" / f"{q.qa_id}.json").write_text(json.dumps({"frames": frames}))
    for kind in ("png", "rle"):
        res = evaluate(qs, tmp_path / kind)
        overall = res["summary"][-1]
        assert (overall["J"], overall["F"], overall["JF"]) == (100.0, 100.0, 100.0), kind
        assert {r["pred_kind"] for r in res["questions"]} == {kind} and not res["extra_ids"]


def _tiny_question(qa_id: str, q_type: str = "causal") -> GTQuestion:
    box = ("box", (2.0, 2.0, 8.0, 6.0))
    return GTQuestion(qa_id=qa_id, video_id="v", clip_id="c", q_type=q_type, question="?", answer="it", target=1,
                      height=12, width=16, frames=[0, 1, 2, 3], inside=[True, True, False, False],
                      shapes=[box, box, None, None], source_frames=[0, 1, 2, 3])


def test_bad_predictions_are_reported_and_scored_never_skipped(tmp_path):
    pred = tmp_path / "pred"
    good = {0: [2, 2, 8, 6], 1: [2, 2, 8, 6]}
    write_boxes(pred, "ok", good)
    (pred / "broken.json").write_text("{not json")
    (pred / "noframes.json").write_text(json.dumps({"boxes": []}))
    write_boxes(pred, "badbox", {**good, 1: [8, 2, 2, 6], 2: "left"})  # x2 < x1; not a box
    write_boxes(pred, "badrle", {**good, 0: {"size": [10, 10], "counts": "PPYo0"}})
    folder = pred / "wrongsize"
    folder.mkdir()
    for f in range(4):
        m = box_mask([2, 2, 8, 6], 12, 16) if f < 2 else np.zeros((12, 16), bool)
        Image.fromarray(m.astype(np.uint8) * 255).save(folder / f"{f:05d}.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "00003.png")  # wrong size on frame 3
    (folder / "notes.txt").write_text("hi")
    write_boxes(pred, "not-a-question", good)
    names = ["ok", "missing", "broken", "noframes", "badbox", "badrle", "wrongsize"]
    res = evaluate([_tiny_question(n) for n in names], pred)
    by = {r["qa_id"]: r for r in res["questions"]}
    assert by["ok"]["status"] == "ok" and by["ok"]["J"] == 1.0 and not by["ok"]["problems"]
    assert by["missing"]["status"] == "missing" and by["missing"]["J"] == by["missing"]["F"] == 0.0
    assert "no prediction" in by["missing"]["problems"][0]
    assert by["broken"]["status"] == "broken" and by["broken"]["J"] == 0.0
    assert "unreadable JSON" in by["broken"]["problems"][0]
    assert by["noframes"]["status"] == "broken" and '"frames"' in by["noframes"]["problems"][0]
    # per-frame problems: that frame counts J = F = 0, the others are scored
    assert by["badbox"]["status"] == "partial" and by["badbox"]["frame_J"] == [1.0, 0.0, 0.0, 1.0]
    assert any("x2 > x1" in p for p in by["badbox"]["problems"])
    assert any("neither an RLE" in p for p in by["badbox"]["problems"])
    assert by["badrle"]["status"] == "partial" and by["badrle"]["frame_J"] == [0.0, 1.0, 1.0, 1.0]
    assert any("RLE size [10, 10]" in p for p in by["badrle"]["problems"])
    assert by["wrongsize"]["status"] == "partial" and by["wrongsize"]["frame_J"] == [1.0, 1.0, 1.0, 0.0]
    assert any("5x5" in p and "16x12" in p for p in by["wrongsize"]["problems"])
    assert any("notes.txt" in p for p in by["wrongsize"]["problems"])
    assert res["extra_ids"] == ["not-a-question"]
    overall = res["summary"][-1]
    assert (overall["questions"], overall["missing"], overall["broken"], overall["partial"]) == (7, 1, 2, 3)
    assert overall["J"] == pytest.approx(100 * (1 + 0 + 0 + 0 + 0.5 + 0.75 + 0.75) / 7)


# --------------------------------------------------------------------------------------------------
# Ground truth from a groundmore export


def test_export_truth_uses_the_frame_window_and_the_object_id(tmp_path):
    write_export(tmp_path, {"qa1": {"question": "?", "answer": "it", "obj_id": 2, "q_type": "Causal",
                                    "action_start": "00:02", "action_end": "00:04",
                                    "action_start_frame": 12, "action_end_frame": 23}})
    (q,), problems = export_ground_truth(tmp_path, "test")
    assert not problems and q.qa_id == "qa1" and q.q_type == "causal" and q.clip_id == "clipA"
    # GroundMoRe's window: (2 - 0) * 6 .. (4 - 0) * 6 - 1 = 12..23; floor(linspace(0, 29, 20)) inside it:
    assert q.window == (12, 23)
    assert q.frames == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21, 22, 24, 25, 27, 29]
    assert [f for f, i in zip(q.frames, q.inside) if i] == [12, 13, 15, 16, 18, 19, 21, 22]
    assert q.mask(q.frames.index(12)).sum() == 24 and q.mask(0).sum() == 0
    # predicting object 2 on every frame: right on the 8 frames of the window only
    folder = tmp_path / "pred" / "qa1"
    folder.mkdir(parents=True)
    for f in q.frames:
        m = np.zeros((12, 16), np.uint8)
        m[6:10, 8:14] = 1
        Image.fromarray(m).save(folder / f"{f:05d}.png")
    r = evaluate([q], tmp_path / "pred")["questions"][0]
    assert r["J"] == pytest.approx(8 / 20) and r["F"] == pytest.approx(8 / 20)
    with pytest.raises(FileNotFoundError):
        export_ground_truth(tmp_path, "val")


def test_frame_indices_that_disagree_with_the_mm_ss_window_are_reported_and_groundmores_rule_wins(tmp_path):
    write_export(tmp_path, {"qa1": {"question": "?", "answer": "it", "obj_id": 2, "q_type": "Causal",
                                    "action_start": "00:01", "action_end": "00:04",
                                    "action_start_frame": 10, "action_end_frame": 20}})
    (q,), problems = export_ground_truth(tmp_path, "test")
    assert q.window == (6, 23)  # what GroundMoRe's evaluator scores
    assert len(problems) == 1 and "10..20 disagree with the MM:SS window 6..23" in problems[0]["problem"]


def test_groundmores_own_annotations_and_repeated_ids(tmp_path):
    # GroundMoRe's files: "MM:SS" times only, 6 fps, clip start from the key; exp ids repeat across videos
    q = {"question": "?", "answer": "it", "obj_id": 2, "q_type": "Descriptive", "action_start": "00:02",
         "action_end": "00:04"}
    write_export(tmp_path, {"0": q}, vid="aaa_0000_0005")
    write_export(tmp_path, {"0": {**q, "action_start": "00:01", "action_end": "00:02"}}, vid="bbb_0000_0005",
                 extra={"n_frames": None})
    qs, _ = export_ground_truth(tmp_path)
    assert [x.qa_id for x in qs] == ["aaa_0000_0005/0", "bbb_0000_0005/0"]
    a, b = qs
    # (2 - 0) * 6 = 12 .. (4 - 0) * 6 - 1 = 23; (1 .. 2) s -> 6 .. 11; n_frames counted from images/
    assert [f for f, i in zip(a.frames, a.inside) if i] == [12, 13, 15, 16, 18, 19, 21, 22]
    assert [f for f, i in zip(b.frames, b.inside) if i] == [6, 7, 9, 10]
    pred = tmp_path / "pred"
    (pred / "aaa_0000_0005").mkdir(parents=True)
    (pred / "aaa_0000_0005" / "0.json").write_text(json.dumps({"frames": {}}))
    res = evaluate(qs, pred)
    assert [r["status"] for r in res["questions"]] == ["ok", "missing"]
    assert res["questions"][0]["J"] == pytest.approx(12 / 20)  # empty prediction: right outside the window


def test_tasks_file_lists_the_frames_to_predict(tmp_path):
    qa, clips, tracks = _lake_tables()
    qs, _ = lake_ground_truth(qa, clips, tracks)
    eg.write_tasks(qs, tmp_path / "tasks.json", "lake")
    doc = json.loads((tmp_path / "tasks.json").read_text())
    assert doc["frame_space"] == "source video frame index"
    assert doc["questions"][0]["frames"] == sample_indices(100).tolist() and doc["questions"][0]["width"] == 64


def test_an_empty_lake_says_what_to_run(tmp_path, fm_home):
    import argparse

    from fm_resources.lake import Lake
    from fm_resources.warehouse import Warehouse

    args = argparse.Namespace(gt=None, split="all")
    with pytest.raises(FileNotFoundError, match="fm run"):
        eg.load_ground_truth(args, Warehouse(lake=Lake(root=str(tmp_path / "lake"))))
