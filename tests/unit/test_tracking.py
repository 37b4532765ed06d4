"""Trackers (real mmdet ByteTracker / OCSORTTracker) and the pure perception helpers."""

import numpy as np
import polars as pl
import pytest

from fm_assets.labels.tracking import box_colour, colour_name, majority, mot_text, sample_step, track_rows
from fm_assets.labels.types import Detections
from fm_resources.trackers import TrackerResource


def moving_boxes(n_frames: int, starts: list[tuple[float, float]], v: float = 6.0) -> list[Detections]:
    dets = []
    for i in range(n_frames):
        boxes = [[x + v * i, y, x + v * i + 40, y + 80] for x, y in starts]
        dets.append(Detections(np.array(boxes), np.full(len(boxes), 0.9), ["person"] * len(boxes)))
    return dets


@pytest.mark.parametrize("kind", ["bytetrack", "ocsort"])
def test_the_trackers_memory_does_not_grow_with_the_shot(kind):
    # mmdet's trackers append every box of a track to Python lists; a long shot keeps only what they read
    clip = TrackerResource(kind=kind).new_clip()
    dets = moving_boxes(120, [(10, 10), (300, 200)], v=1.0)
    dets[60:70] = [Detections(dets[k].boxes[:1], dets[k].scores[:1], ["person"]) for k in range(60, 70)]  # 2 hides
    out = [clip.update(d) for d in dets]  # per frame: (track ids, boxes, scores, detection indices)
    assert [sorted(f[0].tolist()) for f in out[5:]] == [[1] if 60 <= k < 70 else [1, 2] for k in range(5, 120)]
    lengths = [len(v) for t in clip._tracker.tracks.values() for v in t.values() if isinstance(v, list)]
    assert lengths and max(lengths) == clip._history < 120


@pytest.mark.parametrize("kind", ["bytetrack", "ocsort"])
def test_two_objects_keep_their_ids(kind):
    out = TrackerResource(kind=kind).track_clip(moving_boxes(20, [(10, 10), (300, 200)])).per_frame()
    ids_per_frame = [sorted(b.track_id for b in f) for f in out]
    assert all(ids == [1, 2] for ids in ids_per_frame), ids_per_frame
    first = {b.det_index: b.track_id for b in out[0]}
    assert all({b.det_index: b.track_id for b in f} == first for f in out)


def test_every_clip_gets_a_fresh_tracker():
    tracker = TrackerResource()
    clip_a = moving_boxes(15, [(10, 10), (200, 10), (400, 10)])
    clip_b = moving_boxes(15, [(50, 300)])
    alone = tracker.track_clip(clip_b).per_frame()
    tracker.track_clip(clip_a)
    after_a = tracker.track_clip(clip_b).per_frame()
    assert [[(b.track_id, tuple(b.box)) for b in f] for f in alone] == [[(b.track_id, tuple(b.box)) for b in f] for f in after_a]
    assert {b.track_id for f in after_a for b in f} == {1}


def test_gap_frames_without_detections_and_min_length():
    dets = moving_boxes(12, [(10, 10)])
    dets[5] = Detections.empty()
    dets[6] = Detections.empty()
    blip = Detections(np.array([[500, 400, 540, 470]]), np.array([0.95]), ["object"])
    dets[11] = Detections(np.vstack([dets[11].boxes, blip.boxes]), np.array([0.9, 0.95]), ["person", "object"])
    out = TrackerResource(min_track_len=3).track_clip(dets).per_frame()
    assert {b.track_id for f in out for b in f} == {1}  # the one-frame blip is dropped, the gap is bridged
    assert [len(f) for f in out] == [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]
    # the same from frames made one at a time (a long shot's are never all held), as columns
    cols = TrackerResource(min_track_len=3).track_clip(iter(dets))
    assert cols.n_frames == 12 and cols.frame.tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    assert cols.det_index.tolist() == [0] * 10 and set(cols.track_id.tolist()) == {1}


def test_low_scores_do_not_start_tracks():
    dets = moving_boxes(10, [(10, 10)])
    for d in dets:
        d.scores[:] = 0.5  # below init_track_score 0.7
    assert all(f == [] for f in TrackerResource().track_clip(dets).per_frame())


def test_sample_step():
    assert sample_step(25, 10) == 2 and sample_step(30, 10) == 3 and sample_step(12.5, 10) == 1
    assert sample_step(25, None) == 1 and sample_step(60, 10) == 6


def test_track_label_majority_and_rows():
    votes = pl.DataFrame({"k": [1, 1, 1, 2, 2, 3], "v": ["object", "person", "person", "person", "object", None]})
    won = dict(majority(votes, "k", "v").iter_rows())
    assert won[1] == "person"
    assert won[2] == "object"  # tie: by name, deterministic
    assert 3 not in won  # no vote: no winner
    dets = moving_boxes(4, [(10, 10)])
    labels = ["person", "object", "person", "person"]
    tracked = TrackerResource(min_track_len=1).track_clip(dets)
    rows = track_rows("v", "v-000", [(i, i / 10, [lab], [None]) for i, lab in enumerate(labels)], tracked).to_dicts()
    assert {r["label"] for r in rows} == {"person"} and [r["frame_idx"] for r in rows] == [0, 1, 2, 3]


def test_mot_text_interpolates_and_renumbers():
    # track 5 runs through clips c0 and c1 of one shot (ids are unique within a video), track 2 appears later
    t = pl.DataFrame({
        "video_id": ["v"] * 5, "clip_id": ["c0", "c0", "c1", "c1", "c1"], "track_id": [5, 5, 5, 5, 2],
        "frame_idx": [0, 2, 10, 11, 11], "x1": [0.0, 10.0, 5.0, 5.0, 50.0], "y1": [0.0, 0.0, 5.0, 5.0, 0.0],
        "x2": [10.0, 20.0, 15.0, 15.0, 60.0], "y2": [20.0, 20.0, 25.0, 25.0, 20.0], "score": [0.9, 0.8, 0.7, 0.7, 0.6],
    })
    lines = mot_text(t).splitlines()
    assert lines[0] == "1,1,0.00,0.00,10.00,20.00,0.9000,-1,-1,-1"  # ids renumbered by first appearance
    assert lines[1] == "2,1,5.00,0.00,10.00,20.00,0.8000,-1,-1,-1"  # interpolated frame
    assert [ln.split(",")[:2] for ln in lines[-3:]] == [["11", "1"], ["12", "1"], ["12", "2"]]
    assert len(lines) == 13  # frames 1-12 of the one track (interpolated across the clip boundary) + 1
    assert len(mot_text(t, interpolate=False).splitlines()) == 5


@pytest.mark.parametrize("rgb, name", [((220, 35, 35), "red"), ((35, 75, 220), "blue"), ((40, 175, 60), "green"),
                                       ((235, 205, 30), "yellow"), ((245, 245, 245), "white"), ((15, 15, 15), "black"),
                                       ((128, 128, 128), "gray"), ((140, 80, 35), "brown")])
def test_colour_names(rgb, name):
    rng = np.random.default_rng(0)  # texture: +-20 per channel around the colour
    px = np.clip(np.array(rgb) + rng.integers(-20, 21, (400, 3)), 0, 255).astype(np.uint8)
    assert colour_name(px) == name
    assert colour_name(px[:5]) is None  # too few pixels to say


def test_box_colour_uses_the_mask_not_the_background():
    from pycocotools import mask as mask_utils

    img = np.full((100, 100, 3), (35, 75, 220), np.uint8)  # blue background
    img[40:60, 45:55] = (220, 35, 35)  # a thin red object inside a wide box
    m = np.zeros((100, 100), np.uint8)
    m[40:60, 45:55] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle = {"size": [100, 100], "counts": rle["counts"].decode("ascii")}
    box = (20, 30, 80, 70)
    assert box_colour(img, box, rle) == "red"
    assert box_colour(img, box) == "blue"  # without a mask: the central half of the box, mostly background here
    assert box_colour(img, (90, 90, 90, 95)) is None  # empty box


def test_a_tie_between_colours_goes_to_the_first_name_alphabetically():
    px = np.array([(220, 35, 35)] * 20 + [(35, 75, 220)] * 20, np.uint8)  # as many red as blue pixels
    assert colour_name(px) == "blue"
    assert colour_name(px[::-1].copy()) == "blue"  # whatever the order of the pixels


def test_rle_columns_are_decoded_exactly_without_the_whole_frame():
    """rle_columns (the box's columns of a COCO RLE) equals pycocotools' full decode, for masks touching the frame's
    edges, empty columns and single pixels; box_appearance = (box_colour, box_hist) from one look."""
    from pycocotools import mask as mask_utils

    from fm_assets.labels.masks import rle_columns
    from fm_assets.labels.tracking import box_appearance, box_hist

    rng = np.random.default_rng(7)
    h, w = 48, 64
    for trial in range(40):
        m = np.zeros((h, w), np.uint8)
        x1, y1 = rng.integers(0, w - 2), rng.integers(0, h - 2)
        x2, y2 = rng.integers(x1 + 1, w + 1), rng.integers(y1 + 1, h + 1)
        m[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < 0.7
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode("ascii")
        full = mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii")}).astype(bool)
        a, b = sorted(rng.integers(0, w + 1, 2))
        b = max(b, a + 1) if a < w else w
        a = min(a, b - 1)
        assert np.array_equal(rle_columns(counts, h, a, b), full[:, a:b]), trial
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rle = {"size": [h, w], "counts": counts}
        box = (x1, y1, x2, y2)
        assert box_appearance(img, box, rle) == (box_colour(img, box, rle), box_hist(img, box, rle))
        # the mask as the detector holds it (a crop placed in the frame: Detections.mask_crops), read without
        # decoding the RLE: the same pixels for any box, inside, across or outside the crop
        crop = (int(x1), int(y1), m[y1:y2, x1:x2])
        for probe in (box, (a, 0, b, h), (x1 - 3.4, y1 + 2.5, x2 + 7, y2 - 1), (0, 0, w, h)):
            assert box_appearance(img, probe, rle, crop) == box_appearance(img, probe, rle), (trial, probe)


def test_the_colour_table_names_every_pixel_as_the_rules_do():
    """colour_name reads each pixel's name from a table of (hue, saturation band, value band): the same name as
    pixel_names' rules for every one of the 256 x 256 x 256 HSV values."""
    from fm_assets.labels import tracking as T

    s, v = (a.reshape(-1).astype(np.uint8) for a in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    for hue in range(256):
        h = np.full(len(s), hue, np.uint8)
        table = T._BAND_NAMES[h.astype(np.intp) * 15 + T._SAT_BAND[s] * 5 + T._VAL_BAND[v]]
        assert np.array_equal(table, T.pixel_names(h, s, v)), hue


def test_track_colour_is_the_majority_of_its_detections():
    frames = []
    for i, c in enumerate(["red", "red", "orange", "red"]):
        frames.append((i, i / 10, ["object"], [c]))
    tracker = TrackerResource(min_track_len=1)
    dets = [Detections(np.array([[10.0 + i, 10, 50 + i, 60]]), np.array([0.9]), ["object"]) for i in range(4)]
    rows = track_rows("v", "c", frames, tracker.track_clip(dets)).to_dicts()
    assert rows and {r["color"] for r in rows} == {"red"}
    # each box keeps its own detection's colour: where a track's boxes change colour stays visible downstream
    assert [r["box_color"] for r in sorted(rows, key=lambda r: r["frame_idx"])] == ["red", "red", "orange", "red"]


@pytest.mark.parametrize("kind, speed", [("bytetrack", 25.0), ("ocsort", 10.0)])
def test_a_buffered_match_follows_an_object_fast_for_its_size(kind, speed):
    # a 26 x 14 box moving `speed` px a frame: its boxes overlap too little for the tracker's IoU thresholds (ByteTrack
    # confirms a new track above IoU 0.3 (at 25 px: 0.02), OC-SORT matches above 0.5 (at 10 px: 0.44)), so no track;
    # widened by match_buffer (C-BIoU) they overlap enough, one track follows it, and the rows keep the
    # detections' own boxes
    dets = [Detections(np.array([[100.0 + speed * i, 200, 126 + speed * i, 214]]), np.array([0.9]), ["object"])
            for i in range(15)]
    assert len(TrackerResource(kind=kind).track_clip(dets)) == 0
    buffered = TrackerResource(kind=kind, match_buffer=0.3).track_clip(dets).per_frame()
    assert {b.track_id for frame in buffered for b in frame} == {1} and all(len(f) == 1 for f in buffered)
    for frame, d in zip(buffered, dets):
        assert frame[0].det_index == 0 and np.allclose(frame[0].box, d.boxes[0])
