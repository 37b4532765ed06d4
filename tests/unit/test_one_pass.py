"""The one decode pass of `ingest` (issue 14): the scan plans each clip as soon as no later frame can change it, and
whatever watches the pass (the detector) gets every frame once, in order, with its shot, and every clip once all
its frames have gone by; the plan is the one the whole scan gives. Constructed frames, no video file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from fm_assets.labels.clipping import ClipParams, plan_clips, scan_video
from fm_assets.labels.tracking import sampled_frames, still_frame


@dataclass
class FakeFrame:
    """A decoded frame (labels.types.VideoFrame): a grey level per shot, a small square moving across it."""

    idx: int
    t_s: float
    shot: int
    rotation: int = 0

    def image(self) -> np.ndarray:
        img = np.full((48, 64), 40 + 70 * (self.shot % 3), np.uint8)
        x = self.idx % 50
        img[20:28, x:x + 8] = 250  # a small square moving inside the shot
        return img

    def luma(self, step: int = 1) -> np.ndarray:
        return self.image()[::step, ::step]

    def rgb(self, width: int | None = None) -> np.ndarray:
        return np.repeat(self.image()[:, :, None], 3, axis=2)


def frames(fps: float, shots_s: list[float], gap_after: int | None = None) -> list[FakeFrame]:
    out, t, k = [], 0.0, 0
    for shot, length in enumerate(shots_s):
        for _ in range(int(round(length * fps))):
            out.append(FakeFrame(k, t, shot))
            k += 1
            t += 1.0 / fps
            if gap_after is not None and k == gap_after:
                t += 3.0  # a hole in the presentation times: a cut no clip spans
    return out


class Watcher:
    def __init__(self, fps: float, p: ClipParams):
        self.fps, self.p = fps, p
        self.seen: list[tuple[int, int]] = []  # (frame, its shot's first frame)
        self.clips: list[tuple[dict, int]] = []  # (clip, frames seen when it came)

    def frame(self, fr, origin: int) -> None:
        self.seen.append((fr.idx, origin))

    def clip(self, c: dict) -> None:
        self.clips.append((c, len(self.seen)))


@pytest.mark.parametrize("fps, shots_s, gap_after", [
    (25.0, [63.0], None),  # one long shot
    (10.0, [12.0, 1.0, 31.0, 4.0], None),  # a short shot, a whole shot, tiled shots
    (30.0, [22.0, 17.0], 200),  # a PTS hole inside the first shot
])
def test_the_pass_gives_the_whole_scans_plan_with_each_clip_as_soon_as_it_is_final(fps, shots_s, gap_after):
    p = ClipParams()
    given = frames(fps, shots_s, gap_after)
    w = Watcher(fps, p)
    scan, clips = scan_video(iter(given), 64, fps, "vid-x", p, w)
    assert len(scan.cuts) == len(shots_s) - 1
    assert [{k: v for k, v in c.items() if k != "sample_origin"} for c, _ in w.clips] == clips
    # the streamed plan is the plan of the finished scan (ClipPlanner over every frame at once)
    replay = plan_clips(scan, "vid-x", fps, p)
    assert [{k: c[k] for k in r} for c, r in zip(clips, replay)] == replay
    assert [c["clip_id"] for c in clips] == [f"vid-x-{k:03d}" for k in range(len(clips))]
    # every frame once, in order, with the first frame of its shot
    assert [i for i, _ in w.seen] == list(range(len(given)))
    bounds = sorted({0, *scan.cuts, *( [gap_after] if gap_after else [])})
    assert all(origin == max(b for b in bounds if b <= i) for i, origin in w.seen)
    for c, seen_then in w.clips:
        assert c["sample_origin"] == max(b for b in bounds if b <= c["start_frame"])
        assert seen_then >= c["end_frame"]  # all its frames went by first
        # ... and it came within max_clip_s + min_clip_s (+ the 2 frames the cut rule looks ahead) of its start
        assert seen_then <= c["start_frame"] + (p.max_clip_s + p.min_clip_s) * fps + 4 or c is clips[-1] or \
            clips[clips.index(c) + 1]["shot_idx"] != c["shot_idx"]
    long_shot_clips = [(c, s) for c, s in w.clips if s < len(given) - 1]
    assert long_shot_clips, "no clip was final before the end of the video"


def test_a_shot_decides_its_clips_at_its_cut():
    p = ClipParams()
    fps = 10.0
    given = frames(fps, [14.0, 30.0])
    w = Watcher(fps, p)
    scan, clips = scan_video(iter(given), 64, fps, "vid-y", p, w)
    assert scan.cuts == [140]
    first_shot = [(c, s) for c, s in w.clips if c["shot_idx"] == 0]
    assert first_shot and max(s for _, s in first_shot) <= 140 + 3  # at the cut (two frames of look-ahead)
    assert first_shot[-1][0]["end_frame"] == 140


def test_sampling_grid_counts_from_the_shot():
    assert sampled_frames(10, 20, 3) == [10, 13, 16, 19]
    assert sampled_frames(10, 20, 3, origin=0) == [12, 15, 18]  # the shot started at 0: its grid
    assert sampled_frames(12, 13, 3, origin=0) == [12]
    assert sampled_frames(13, 15, 3, origin=0) == []
    assert sampled_frames(5, 9, 1, origin=0) == [5, 6, 7, 8]


def test_the_still_is_the_sampled_frame_nearest_the_middle():
    assert still_frame(0, 10) == 4  # every frame sampled: the middle frame
    assert still_frame(10, 20, 3, origin=0) == 15  # sampled 12, 15, 18; middle 14
    assert still_frame(10, 21, 3, origin=0) == 15  # middle 15
    assert still_frame(0, 8, 4) == 4  # sampled 0, 4; middle 3: 4 is nearer
    assert still_frame(0, 6, 4) == 0  # middle 2: a tie, the earlier one
    assert still_frame(0, 5, 4) == 0  # middle 2, and 4 is the clip's last frame: still a tie
    assert still_frame(13, 14, 3, origin=0) == 13  # nothing sampled: the first frame
