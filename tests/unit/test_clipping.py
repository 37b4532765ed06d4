"""Pure clip planning, cut detection and global-motion estimation, on constructed inputs."""

import math

import cv2
import numpy as np
import pytest

from fm_assets.labels.clipping import (
    ClipParams,
    MotionPair,
    Scan,
    camera_motion_score,
    detect_cuts,
    global_motion,
    plan_clips,
)


def scan_of(duration_s: float, fps: float = 25.0, cuts_s: tuple = (), motion: list | None = None) -> Scan:
    n = int(round(duration_s * fps))
    times = [i / fps for i in range(n)]
    return Scan(times=times, cuts=[int(round(c * fps)) for c in cuts_s], motion=motion or [])


def lengths(clips):
    return [c["end_s"] - c["start_s"] for c in clips]


def test_long_shot_is_tiled_into_5_to_10_s_clips_covering_it():
    clips = plan_clips(scan_of(63.0), "vid-a", 25.0, ClipParams())
    assert len(clips) >= 7
    assert all(5.0 - 1e-9 <= L <= 10.0 + 1e-9 for L in lengths(clips)), lengths(clips)
    assert clips[0]["start_s"] == 0.0 and abs(clips[-1]["end_s"] - 63.0) < 1e-9
    for a, b in zip(clips, clips[1:]):  # contiguous, no gaps, no overlaps
        assert a["end_frame"] == b["start_frame"] and a["end_s"] == b["start_s"]
    assert sum(c["n_frames"] for c in clips) == int(63 * 25)
    assert all(c["kept"] and c["drop_reason"] is None for c in clips)


def test_lengths_are_random_but_seeded_by_video_id():
    p = ClipParams()
    a1 = lengths(plan_clips(scan_of(120.0), "vid-a", 25.0, p))
    a2 = lengths(plan_clips(scan_of(120.0), "vid-a", 25.0, p))
    b = lengths(plan_clips(scan_of(120.0), "vid-b", 25.0, p))
    assert a1 == a2
    assert a1 != b
    assert len({round(x, 2) for x in a1}) > 3  # not a constant length


def test_clips_never_cross_shot_cuts_and_short_shots_are_dropped_with_reason():
    # shots: [0, 1.6) too short, [1.6, 4.4) whole (2-5 s), [4.4, 30) tiled
    clips = plan_clips(scan_of(30.0, cuts_s=(1.6, 4.4)), "vid", 25.0, ClipParams())
    assert clips[0]["drop_reason"] == "short_shot" and not clips[0]["kept"]
    assert (clips[1]["start_s"], clips[1]["end_s"]) == (1.6, 4.4) and clips[1]["kept"]
    rest = clips[2:]
    assert rest[0]["start_s"] == 4.4 and abs(rest[-1]["end_s"] - 30.0) < 1e-9
    assert all(5.0 - 1e-9 <= L <= 10.0 + 1e-9 for L in lengths(rest))
    assert {c["shot_idx"] for c in clips} == {0, 1, 2}


def test_whole_video_shorter_than_a_clip_is_kept_whole():
    clips = plan_clips(scan_of(3.2), "vid", 25.0, ClipParams())
    assert len(clips) == 1 and clips[0]["kept"] and abs(clips[0]["end_s"] - 3.2) < 1e-9


def test_variable_frame_rate_times_are_used_as_given():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.choice([0.03, 0.07], size=400)).tolist()
    times = [0.0] + times[:-1]
    clips = plan_clips(Scan(times=times), "vfr", None, ClipParams())
    for c in clips:
        assert c["start_s"] == times[c["start_frame"]]
        assert 5.0 - 1e-9 <= c["end_s"] - c["start_s"] <= 10.0 + 0.07


def test_config_rejects_inverted_lengths():
    with pytest.raises(ValueError):
        ClipParams(min_clip_s=8, max_clip_s=6)


def test_camera_motion_threshold_drops_clip():
    moving = [MotionPair(i * 25, i * 25 + 5, i, i + 0.2, 0.3, 0.0, 0.0, 50) for i in range(4)]
    still = [MotionPair(i * 25, i * 25 + 5, i, i + 0.2, 0.001, 0.0, 0.0, 50) for i in range(5, 9)]
    clips = plan_clips(scan_of(9.0, cuts_s=(4.6,), motion=moving + still), "vid", 25.0, ClipParams())
    assert clips[0]["drop_reason"] == "camera_motion" and clips[0]["camera_motion"] == pytest.approx(0.45)
    assert clips[1]["kept"] and clips[1]["camera_motion"] < 0.01


def test_camera_motion_score_follows_reference_formula():
    pairs = [MotionPair(0, 1, 0, 0.2, t, r, s, 9) for t, r, s in [(0.1, 0.02, 0.0), (0.3, 0.0, 0.1)]]
    dt = np.array([0.1, 0.4])
    dr = np.array([0.02, 0.0])
    assert camera_motion_score(pairs) == pytest.approx(dt.mean() + dr.mean() + 0.5 * dt.max() + 0.5 * dr.max())
    assert camera_motion_score([]) is None


def test_detect_cuts_finds_spikes_not_steady_motion():
    content = np.full(200, 4.0)
    content[50] = content[120] = 60.0
    content[150:170] = 25.0  # steady high change (fast pan): not a cut
    assert detect_cuts(content, 2, 3.0, 15.0, 10) == [50, 120]
    assert detect_cuts(np.zeros(10), 2, 3.0, 15.0, 10) == []


def texture(seed: int, h: int = 240, w: int = 360) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w)).astype(np.uint8), (0, 0), 2)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def test_global_motion_measures_a_pan():
    big = texture(1, 300, 420)
    a, b = big[20:260, 20:380], big[20:260, 26:386]  # the camera moved right: content shifts 6 px left
    tx, ty, ang, log_s, inl = global_motion(a, b)
    assert tx == pytest.approx(-6, abs=0.3) and abs(ty) < 0.3 and abs(ang) < 0.01 and abs(log_s) < 0.01
    assert inl > 20


def test_global_motion_measures_a_zoom():
    a = texture(2)
    h, w = a.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, 1.05)
    b = cv2.warpAffine(a, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    _, _, _, log_s, _ = global_motion(a, b)
    assert log_s == pytest.approx(math.log(1.05), abs=0.01)


def test_static_camera_with_a_big_moving_object_is_static():
    a = texture(3)
    b = a.copy()
    patch = texture(9, 100, 120)
    a[60:160, 40:160] = patch
    b[60:160, 70:190] = patch  # a large textured object moved 30 px; the background did not
    b = np.clip(b.astype(int) + 6, 0, 255).astype(np.uint8)  # plus an auto-exposure change
    assert global_motion(a, b)[:4] == (0.0, 0.0, 0.0, 0.0)


def test_textureless_changing_frames_give_no_estimate():
    flat = np.full((240, 320), 128, np.uint8)
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))  # changes everywhere, no corners
    assert global_motion(flat, gradient) is None
    assert global_motion(flat, flat)[:4] == (0.0, 0.0, 0.0, 0.0)
