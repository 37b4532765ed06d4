"""Tests of the embedded `motion` detector (fm_resources.detection.motion.MotionDetector) on synthetic frames (rendered in
memory by fm_assets.synthetic, no encoding). On a real clip (TUD-Campus, ../shared/data): tests/e2e/test_motion_detector.py."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fm_assets import synthetic as S
from fm_assets.labels.types import Detections
from fm_resources.detection.motion import MotionDetector, _iou
from fm_resources.detection.types import Detector


def _scene(*objects: S.ObjectSpec, fps: float = 10.0, duration_s: float = 3.0, name: str = "t") -> S.SceneSpec:
    return S.SceneSpec(name=name, fps=fps, duration_s=duration_s, objects=tuple(objects))


def _render(spec: S.SceneSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and, per frame, the gt boxes (xyxy, sorted by object id)."""
    frames = [img for _, img in S.render_frames(spec)]
    gts: list[list] = [[] for _ in frames]
    for f, _oid, x, y, w, h in S.gt_rows(spec):
        gts[f - 1].append((x, y, x + w, y + h))
    return frames, [np.array(g, np.float32).reshape(-1, 4) for g in gts]


def _kf(*rows):
    return tuple(S.Keyframe(*r) for r in rows)


BOX = S.ObjectSpec(1, "box", "red", "box", 80, 60, _kf((0.0, 120, 200), (3.0, 500, 220)))


@pytest.fixture(scope="module")
def moving_box():
    frames, gts = _render(_scene(BOX))
    return frames, gts, MotionDetector().detect_clip(frames)


def test_is_a_detector_with_typed_defaults():
    det = MotionDetector()
    assert isinstance(det.name, str) and det.name == "motion"
    assert callable(det.detect_clip)
    _: Detector = det  # structural: has name and detect_clip
    assert MotionDetector(work_width=160, min_diff=10.0).work_width == 160


def test_moving_object_found(moving_box):
    frames, gts, dets = moving_box
    assert len(dets) == len(frames) and all(isinstance(d, Detections) for d in dets)
    good = 0
    for d, g in zip(dets, gts):
        if len(d):
            good += _iou(g, d.boxes).max() >= 0.7
    assert good >= 0.8 * len(frames), f"box found with IoU >= 0.7 on {good}/{len(frames)} frames"
    # one detection per frame, nothing else
    assert sum(len(d) == 1 for d in dets) >= 0.8 * len(frames)


def test_scores_and_labels(moving_box):
    _, gts, dets = moving_box
    for d in dets:
        assert d.scores.dtype == np.float32 and ((d.scores >= 0) & (d.scores <= 1)).all()
        assert set(d.labels) <= {"person", "object"}
        assert len(d.extra["person_score"]) == len(d)
        assert ((d.extra["person_score"] >= 0) & (d.extra["person_score"] <= 1)).all()
    clean = [float(s) for d in dets[2:-2] for s in d.scores]  # away from the clip's ends (persistence window)
    assert clean and np.median(clean) > 0.7, clean
    assert sum(lbl == "object" for d in dets for lbl in d.labels) >= 0.8 * sum(len(d) for d in dets)


def test_masks_decode_to_box_region(moving_box):
    frames, _, dets = moving_box
    h, w = frames[0].shape[:2]
    n_checked = 0
    for d in dets:
        assert d.masks is not None and len(d.masks) == len(d)
        for rle, box in zip(d.masks, d.boxes):
            assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
            m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            assert m.shape == (h, w)
            ys, xs = np.nonzero(m)
            assert len(ys) > 0
            x1, y1, x2, y2 = box
            # the mask lies in its box and reaches (within 2 px) each side of it
            assert xs.min() >= x1 - 1 and xs.max() <= x2 and ys.min() >= y1 - 1 and ys.max() <= y2
            assert abs(xs.min() - x1) <= 2 and abs(xs.max() + 1 - x2) <= 2
            assert abs(ys.min() - y1) <= 2 and abs(ys.max() + 1 - y2) <= 2
            n_checked += 1
    assert n_checked > 0


def test_the_masks_crops_are_what_the_masks_encode(moving_box):
    """Detections.mask_crops (read instead of decoding the RLE when a box's colour is named) hold exactly the
    pixels of the masks."""
    frames, _, dets = moving_box
    h, w = frames[0].shape[:2]
    assert sum(map(len, dets)) > 0
    for d in filter(len, dets):
        assert d.mask_crops is not None and len(d.mask_crops) == len(d)
        for rle, (x, y, crop) in zip(d.masks, d.mask_crops):
            full = np.zeros((h, w), np.uint8)
            full[y : y + crop.shape[0], x : x + crop.shape[1]] = crop != 0
            assert np.array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}), full)


def test_the_blob_median_is_numpys():
    from fm_resources.detection.motion import _median

    rng = np.random.default_rng(3)
    for n in [*range(1, 40), 257, 1000]:
        for _ in range(20):
            v = (rng.integers(0, 256, n) / rng.uniform(1, 30, n)).astype(np.float32)
            v = np.round(v, int(rng.integers(0, 3))).astype(np.float32)  # ties too
            assert _median(v) == float(np.median(v)), n


def test_no_motion_gives_empty_detections():
    spec = _scene(S.ObjectSpec(1, "box", "red", "box", 80, 60, _kf((0.0, 300, 200))))  # never moves
    frames, _ = _render(spec)
    rng = np.random.default_rng(0)  # sensor noise on a static scene
    noisy = [np.clip(f.astype(np.int16) + rng.integers(-3, 4, f.shape), 0, 255).astype(np.uint8) for f in frames]
    for clip in (frames, noisy):
        dets = MotionDetector().detect_clip(clip)
        assert len(dets) == len(clip) and all(len(d) == 0 for d in dets)


def test_auto_exposure_change_is_not_motion():
    """A camera's auto exposure darkening every frame by 40% for a while (as when a bright car enters) must not
    turn the whole frame into foreground: the moving box is still found alone, with a box of its own size."""
    frames, gts = _render(_scene(BOX, duration_s=4.0))
    gain = np.ones(len(frames))
    gain[12:28] = np.linspace(0.6, 0.95, 16)  # dark, then slowly recovering
    dimmed = [np.clip(f * g, 0, 255).astype(np.uint8) for f, g in zip(frames, gain)]
    for exposure, ok in ((True, True), (False, False)):
        dets = MotionDetector(exposure=exposure).detect_clip(dimmed)
        hit = [len(d) == 1 and _iou(g, d.boxes).max() >= 0.6 for d, g in zip(dets[12:28], gts[12:28])]
        assert (sum(hit) >= 14) == ok, f"exposure={exposure}: box alone on {sum(hit)}/16 dimmed frames"


def test_tiny_clips():
    det = MotionDetector()
    frames, _ = _render(_scene(BOX))
    assert det.detect_clip([]) == []
    for k in (1, 2):
        out = det.detect_clip(frames[:k])
        assert len(out) == k and all(len(d) == 0 for d in out)
    out = det.detect_clip(frames[::10])  # 3 frames: a background can be learned
    assert len(out) == 3


def test_touching_objects_are_split():
    # two discs side by side, touching, moving together: one connected blob that the mask's waist splits
    a = S.ObjectSpec(1, "ball", "blue", "disc", 80, 80, _kf((0.0, 150, 240), (3.0, 430, 240)))
    b = S.ObjectSpec(2, "ball", "orange", "disc", 80, 80, _kf((0.0, 229, 240), (3.0, 509, 240)))
    frames, gts = _render(_scene(a, b))
    dets = MotionDetector().detect_clip(frames)
    unsplit = MotionDetector(split=False).detect_clip(frames)
    both = 0
    for d, _u, g in zip(dets, unsplit, gts):
        if len(d) >= 2:
            both += (_iou(g, d.boxes).max(axis=1) >= 0.6).all()
    assert both >= 0.8 * len(frames), f"both discs found on {both}/{len(frames)} frames"
    assert np.median([len(u) for u in unsplit]) == 1  # they do form one blob before splitting


def test_flicker_scores_low():
    # a small patch that flashes on one frame (noise) next to a clean moving object
    frames, gts = _render(_scene(BOX))
    k = len(frames) // 2
    frames[k] = frames[k].copy()
    frames[k][400:426, 560:586] = 255 - frames[k][400:426, 560:586]
    dets = MotionDetector().detect_clip(frames)
    patch = np.array([[560, 400, 586, 426]], np.float32)
    d = dets[k]
    near = _iou(patch, d.boxes)[0] > 0.3 if len(d) else np.zeros(0, bool)
    assert (d.scores[near] < 0.6).all(), d.scores[near]
    obj = _iou(gts[k], d.boxes)[0] >= 0.7
    assert obj.any() and (d.scores[obj] > 0.7).all()


def test_deterministic(moving_box):
    frames, _, dets = moving_box
    again = MotionDetector().detect_clip(frames)
    for a, b in zip(dets, again):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        assert a.labels == b.labels and a.masks == b.masks
        assert np.array_equal(a.extra["person_score"], b.extra["person_score"])


def _silhouette(mask: np.ndarray, cx: int, top: int, height: int) -> None:
    """Draw a crude pedestrian (head, shoulders / torso, legs apart) into `mask`."""
    import cv2

    hr = max(2, int(0.065 * height))
    cv2.circle(mask, (cx, top + hr), hr, 1, -1)
    cv2.rectangle(mask, (cx - int(0.13 * height), top + 2 * hr), (cx + int(0.13 * height), top + int(0.55 * height)), 1, -1)
    cv2.rectangle(mask, (cx - int(0.15 * height), top + int(0.55 * height)), (cx - int(0.03 * height), top + height), 1, -1)
    cv2.rectangle(mask, (cx + int(0.03 * height), top + int(0.55 * height)), (cx + int(0.15 * height), top + height), 1, -1)


def test_head_split_of_merged_pedestrians():
    det = MotionDetector()
    m = np.zeros((120, 90), np.uint8)
    _silhouette(m, 25, 2, 115)  # two people side by side, touching: one blob
    _silhouette(m, 60, 12, 100)  # the second a little further away (shorter)
    parts = det._head_parts(m, 0, 0, 1.0, 20)
    assert parts is not None and len(parts) == 2
    centres = sorted(float(np.flatnonzero(p[2].any(axis=0)).mean()) for p in parts)
    assert abs(centres[0] - 25) <= 5 and abs(centres[1] - 60) <= 5
    for _, _, pm in parts:  # parts are person-shaped (tall), never overlap
        rows, cols = np.flatnonzero(pm.any(axis=1)), np.flatnonzero(pm.any(axis=0))
        assert (cols[-1] - cols[0] + 1) < 0.6 * (rows[-1] - rows[0] + 1)
    assert int(sum(p[2].astype(int) for p in parts).max()) <= 1
    # one person (head, no second head), two touching discs and a box: no head split
    one = np.zeros((120, 60), np.uint8)
    _silhouette(one, 30, 2, 115)
    import cv2

    discs = np.zeros((80, 160), np.uint8)
    cv2.circle(discs, (40, 40), 39, 1, -1)
    cv2.circle(discs, (119, 40), 39, 1, -1)
    for mask in (one, discs, np.ones((60, 80), np.uint8)):
        assert det._head_parts(mask, 0, 0, 1.0, 20) is None


def test_cast_shadow_and_lighting_drift_make_no_boxes():
    """A soft shadow travelling under the moving box and a slow lighting drift (global +-10 % and a moving light
    gradient) must not make boxes of their own; without the shadow test they do."""
    frames, gts = _render(_scene(BOX, duration_s=4.0))
    hgt, wid = frames[0].shape[:2]
    yy, xx = np.mgrid[0:hgt, 0:wid]
    lit = []
    for i, f in enumerate(frames):
        t = i / 10
        cx, cy = 120 + 95 * t + 30, 200 + 5 * t + 80  # below the box (whose centre moves 120,200 -> 500,220)
        shade = 1 - 0.35 * np.exp(-(((xx - cx) / 70) ** 2 + ((yy - cy) / 22) ** 2))
        drift = 1 + 0.10 * np.sin(2 * np.pi * t / 8) + 0.08 * (xx / wid - 0.5) * np.sin(t)
        lit.append(np.clip(f * (shade * drift)[..., None], 0, 255).astype(np.uint8))
    for shadows in (True, False):
        dets = MotionDetector(shadows=shadows).detect_clip(lit)
        found = sum(len(d) > 0 and _iou(g, d.boxes).max() >= 0.6 for d, g in zip(dets, gts))
        extra = sum(max(0, len(d) - 1) for d in dets)
        assert found >= 0.9 * len(lit)
        if shadows:
            assert extra <= 0.35 * len(lit), f"{extra} extra boxes on {len(lit)} frames"  # a few shadow fringes
        else:
            assert extra >= 0.75 * len(lit)  # the shadow is a blob of its own without the test


def test_an_object_that_stands_still_and_then_moves_is_found_where_it_is():
    """Issue 13's case: a blue square standing still for most of the clip (so the clip's median background holds
    it), then moving down, while a disc crosses the top. The square is found on its frames with its own box and
    its real colour, and no ghost box stays where it stood."""
    from fm_assets.labels.tracking import box_colour

    disc = S.ObjectSpec(1, "object", "red", "disc", 60, 60, _kf((0.0, 60, 50), (8.0, 580, 50)))
    square = S.ObjectSpec(2, "object", "blue", "box", 70, 70, _kf((0.0, 320, 200), (5.5, 320, 200), (8.0, 320, 380)))
    frames, gts = _render(_scene(disc, square, duration_s=8.0))
    dets = MotionDetector().detect_clip(frames)
    start = np.array([[285, 165, 355, 235]], np.float32)
    found = ghosts = 0
    colours = []
    for img, d, g in zip(frames, dets, gts):
        sq = g[1:2]
        if len(d):
            iou = _iou(sq, d.boxes)[0]
            if iou.max() >= 0.6:
                found += 1
                colours.append(box_colour(img, d.boxes[int(iou.argmax())]))
            if _iou(sq, start)[0, 0] < 0.3:  # the square has left its place: nothing may be found there
                ghosts += int((_iou(start, d.boxes)[0] >= 0.5).any())
    assert found >= 0.95 * len(frames), f"square found on {found}/{len(frames)} frames"
    assert ghosts == 0
    assert colours.count("blue") >= 0.9 * len(colours)


def test_a_followed_blob_is_person_checked_on_every_kth_frame_of_its_chain():
    """_chain_checks: a blob followed from frame to frame (mutual best match, IoU > 0.5) is checked on frames
    0, k, 2k, ... and the last of its chain; the others take the nearest check; a blob that appears (or jumps)
    starts its own chain; every = 1 checks every blob."""
    from fm_resources.detection.motion import _chain_checks

    walker = [np.array([[10 + i, 10, 40 + i, 80]], np.float32) for i in range(10)]
    other = [np.zeros((0, 4), np.float32)] * 5 + [np.array([[200, 10, 230, 80]], np.float32)] * 5
    boxes = [np.concatenate([a, b]) for a, b in zip(walker, other)]
    checked = _chain_checks(boxes, 4)
    assert [checked[(i, 0)][0] for i in range(10)] == [0, 0, 0, 4, 4, 4, 4, 8, 8, 9]
    assert all(checked[(i, 0)][1] == 0 for i in range(10))
    assert [checked[(i, 1)] for i in range(5, 10)] == [(5, 1)] * 3 + [(9, 1)] * 2  # its own chain: 5, 9 checked
    jump = [np.array([[10, 10, 40, 80]], np.float32), np.array([[300, 10, 330, 80]], np.float32)]
    assert _chain_checks(jump, 4) == {(0, 0): (0, 0), (1, 0): (1, 0)}  # no overlap: a new chain
    assert all(k == v for k, v in _chain_checks(boxes, 1).items())


def test_person_check_on_chains_labels_a_walker_like_checking_every_frame(moving_box):
    """hog_every only saves work: on a clip, labels and boxes with the default (every 4th frame of a chain)
    equal those of checking every blob of every frame, except where a chain's margin sits at the threshold."""
    frames, _, dets = moving_box
    every = MotionDetector(hog_every=1).detect_clip(frames)
    assert [len(d) for d in dets] == [len(d) for d in every]
    same = sum(a.labels == b.labels for a, b in zip(dets, every))
    assert same >= 0.9 * len(frames)
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(dets, every))


def test_a_followed_wide_blob_is_scanned_for_people_on_every_kth_frame_unless_a_group_is_found():
    """_scan_wide: a wide blob followed over 10 frames is scanned for people side by side on frames 0, 4, 8 and
    9 (the anchors of its chain); a frame between takes its anchor's "no group", and is scanned itself where its
    anchor found a group, which then holds that frame's own parts. With hog_every = 1 every frame is scanned."""

    class Recording(MotionDetector):
        def __init__(self, group_from: int, **kw) -> None:
            super().__init__(**kw)
            self.group_from, self.scanned = group_from, []

        def _hog_parts(self, frame, m, x, y, sx, sy, min_area_px):  # a group from frame `group_from` on
            i = int(frame[0, 0, 0])
            self.scanned.append(i)
            return [(x, y, m[:, :4]), (x + 4, y, m[:, 4:])] if i >= self.group_from else None

    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(10)]
    comps = [[(10 + i, 10, np.ones((10, 12), np.uint8))] for i in range(10)]

    def scan(det: Recording) -> list:
        split: list = [[None] for _ in frames]
        det._scan_wide(frames, comps, split, [[0] for _ in frames], 1.0, 1.0, 4.0)
        return split

    det = Recording(group_from=99)
    assert scan(det) == [[None]] * 10 and sorted(det.scanned) == [0, 4, 8, 9]
    det = Recording(group_from=7)
    split = scan(det)
    assert sorted(det.scanned) == [0, 4, 7, 8, 9]  # frame 7 stands by anchor 8, which found a group
    assert [s[0] is not None for s in split] == [False] * 7 + [True] * 3
    assert split[7][0][1][0] == 10 + 7 + 4  # frame 7's own parts, not its anchor's
    det = Recording(group_from=7, hog_every=1)
    split = scan(det)
    assert sorted(det.scanned) == list(range(10)) and [s[0] is not None for s in split] == [False] * 7 + [True] * 3


def test_a_small_fast_object_persists_like_a_slow_one():
    # a 40 x 24 box moving 26 px a frame hardly overlaps its own box of the next frame (IoU 0.21); it still is one
    # object seen on every frame, so its persistence (and score) is that of the same box moving 5 px a frame
    # (persistence by overlap alone scored it 0.58, under ByteTrack's new-track threshold 0.7)
    def scores(step: float) -> list[float]:
        small = S.ObjectSpec(1, "box", "red", "box", 40, 24, _kf((0.0, 40, 200), (2.0, 40 + 20 * step, 200)))
        frames, gts = _render(_scene(small, duration_s=2.0))
        dets = MotionDetector().detect_clip(frames)
        found = [float(d.scores[_iou(g, d.boxes)[0].argmax()]) for d, g in zip(dets[2:-2], gts[2:-2])
                 if len(d) and _iou(g, d.boxes).max() >= 0.5]
        assert len(found) == len(dets[2:-2])
        return found

    fast, slow = scores(26.0), scores(5.0)
    assert abs(float(np.median(fast)) - float(np.median(slow))) < 0.05
    assert min(fast) >= 0.7


def test_persistence_follows_motion_but_not_a_different_blob():
    from fm_resources.detection.motion import _follows

    a = np.array([[100, 100, 128, 116]], np.float32)
    assert _follows(a, a + np.float32([20, 0, 20, 0]), 1).all()  # moved 20 px: no overlap, same object
    assert not _follows(a, a + np.float32([60, 0, 60, 0]), 1).any()  # 60 px in one frame: more than its size
    assert _follows(a, a + np.float32([50, 0, 50, 0]), 2).all()  # 50 px over two frames: fine
    assert not _follows(a, np.array([[90, 90, 190, 190]], np.float32), 1).any()  # a big blob around it: not it
