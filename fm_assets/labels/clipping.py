"""Pure functions behind `videos` and `raw_clips`: one decode pass that finds shot cuts, measures global
(camera) motion between sampled frame pairs and keeps keyframe thumbnails; then the clip plan.

Shot cuts: PySceneDetect's AdaptiveDetector rule (a content score against its rolling average, robust to
camera motion), vectorized over the luma plane so it costs almost nothing next to decoding. Camera motion: Shi-Tomasi corners (per grid cell) tracked by pyramidal Lucas-Kanade
between two frames `motion_gap_s` apart, every `motion_every_s`, and a RANSAC similarity transform
(cv2.estimateAffinePartial2D): translation (fraction of the frame diagonal), rotation (radians) and scale
(|log s|), each per second. A clip's score follows the reference's formula over its pairs:
mean(dt) + mean(dR) + 0.5 max(dt) + 0.5 max(dR), with dt = translation + scale and dR = rotation.
"""

from __future__ import annotations

import bisect
import io
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from fm_assets.labels.ids import seed_for
from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.plots import jpeg
from fm_assets.labels.types import VideoFrame


@dataclass(frozen=True)
class ClipParams:
    """How raw videos become clips (all times in seconds)."""

    min_clip_s: float = param(5.0, "shortest clip when a shot is tiled", gt=0)
    max_clip_s: float = param(10.0, "longest clip", gt=0)
    min_shot_s: float = param(2.0, "shots shorter than this are dropped (drop_reason=short_shot)", ge=0)
    camera_motion_max: float = param(0.05, "clips scoring above are kept=false, drop_reason=camera_motion", gt=0)
    cut_threshold: float = param(3.0, "AdaptiveDetector adaptive_threshold", gt=0)
    cut_min_content: float = param(15.0, "AdaptiveDetector min_content_val", ge=0)
    min_shot_gap_s: float = param(0.6, "no two cuts closer than this", ge=0)
    motion_every_s: float = param(1.0, "one camera-motion measurement per this many seconds", gt=0)
    motion_gap_s: float = param(0.2, "time between the two frames of a measurement", gt=0)
    analysis_width: int = param(192, "luma width used for motion analysis", ge=64)
    thumb_every_s: float = param(2.0, "one keyframe thumbnail per this many seconds", gt=0)
    thumb_width: int = param(256, "thumbnail width in pixels", ge=32)
    max_gap_s: float = param(2.0, "a PTS gap longer than this between two frames starts a new shot (no clip spans "
                                  "it); a video whose typical frame interval is longer has broken timing (error)", gt=0)

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.max_clip_s < self.min_clip_s:
            raise ValueError(f"max_clip_s ({self.max_clip_s}) < min_clip_s ({self.min_clip_s})")


@dataclass
class MotionPair:
    idx_a: int
    idx_b: int
    t_a: float
    t_b: float
    translation: float  # fraction of the frame diagonal per second
    rotation: float  # radians per second
    scale: float  # |log scale| per second
    inliers: int


@dataclass
class Scan:
    times: list[float] = field(default_factory=list)  # PTS seconds of every frame, in decode order
    rotation: int = 0  # display rotation of the first frame
    cuts: list[int] = field(default_factory=list)  # frame indices that start a new shot
    motion: list[MotionPair] = field(default_factory=list)
    thumbs: list[tuple[float, bytes]] = field(default_factory=list)  # (t, JPEG)
    cut_scores: list[float] = field(default_factory=list)


class CutFinder:
    """PySceneDetect's AdaptiveDetector rule, streamed: frame i starts a new shot when its content change content[i]
    (mean absolute luma difference to frame i-1) is at least `min_content` and at least `threshold` times the mean
    change of the `window` frames on each side (the first and last frame repeated at the ends); cuts are `min_gap`
    frames apart. Frame i is decided once frame i + window has been added (`decided` frames are final)."""

    def __init__(self, window: int, threshold: float, min_content: float, min_gap: int):
        self.window, self.threshold, self.min_content, self.min_gap = window, threshold, min_content, min_gap
        self.content: list[float] = []
        self.cuts: list[int] = []
        self.decided = 0

    def add(self, change: float) -> None:
        self.content.append(change)
        while self.decided + self.window < len(self.content):
            self._decide(self.decided)

    def finish(self) -> None:
        while self.decided < len(self.content):
            self._decide(self.decided)

    def _decide(self, i: int) -> None:
        c, w, last = self.content, self.window, len(self.content) - 1
        around = sum(c[min(max(i + d, 0), last)] for d in range(-w, w + 1) if d) / (2 * w)
        ratio = c[i] / around if around > 1e-6 else (255.0 if c[i] >= self.min_content else 0.0)
        if i > 0 and ratio >= self.threshold and c[i] >= self.min_content and (
                not self.cuts or i - self.cuts[-1] >= self.min_gap):
            self.cuts.append(i)
        self.decided = i + 1


def detect_cuts(content: np.ndarray, window: int, threshold: float, min_content: float, min_gap: int) -> list[int]:
    """The cuts CutFinder finds in a whole sequence of content changes."""
    finder = CutFinder(window, threshold, min_content, min_gap)
    for change in content:
        finder.add(float(change))
    finder.finish()
    return finder.cuts


def _corners(img: np.ndarray, grid: int = 4, per_cell: int = 8) -> np.ndarray | None:
    """Shi-Tomasi corners found cell by cell, so that a large textured object cannot take them all."""
    h, w = img.shape
    found = []
    for gy in range(grid):
        for gx in range(grid):
            y0, y1, x0, x1 = gy * h // grid, (gy + 1) * h // grid, gx * w // grid, (gx + 1) * w // grid
            c = cv2.goodFeaturesToTrack(img[y0:y1, x0:x1], maxCorners=per_cell, qualityLevel=0.02, minDistance=5)
            if c is not None:
                found.append(c + np.array([x0, y0], dtype=np.float32))
    return np.concatenate(found) if found else None


def global_motion(
    a: np.ndarray, b: np.ndarray, static_px: float = 0.35, static_diff: float = 2.5
) -> tuple[float, float, float, float, int] | None:
    """Similarity transform of the background from grey image a to b: (tx, ty, angle_rad, log_scale, inliers),
    or None when too few corners can be tracked to say. The camera counts as static (identity) when at least
    half of an 8x8 grid of cells is photometrically unchanged (mean |b - a - median(b - a)| < static_diff
    grey levels; the median removes exposure changes), or
    when at least half of the cells with tracked corners did not move (median flow < static_px): then moving
    objects, not the camera, are what moved."""
    h, w = a.shape
    gh, gw = h // 8 * 8, w // 8 * 8
    diff = b[:gh, :gw].astype(np.int16) - a[:gh, :gw]
    diff -= int(np.median(diff))  # auto-exposure shifts all pixels alike; that is not motion
    cell_diff = np.abs(diff).reshape(8, gh // 8, 8, gw // 8).mean(axis=(1, 3))
    if (cell_diff < static_diff).mean() >= 0.5:
        return 0.0, 0.0, 0.0, 0.0, 0
    pts = _corners(a)
    if pts is None or len(pts) < 12:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload]  # cv2 stubs reject nextPts=None
        a, b, pts, None, winSize=(15, 15), maxLevel=2)
    good = status.ravel() == 1
    if good.sum() < 10:
        return None
    p0, p1 = pts[good].reshape(-1, 2), nxt[good].reshape(-1, 2)
    flow = np.linalg.norm(p1 - p0, axis=1)
    cell = (np.minimum(p0[:, 1] * 4 // h, 3) * 4 + np.minimum(p0[:, 0] * 4 // w, 3)).astype(int)
    cells = np.unique(cell)
    static = sum(np.median(flow[cell == c]) < static_px for c in cells)
    if static * 2 >= len(cells):
        return 0.0, 0.0, 0.0, 0.0, int(good.sum())
    m, inl = cv2.estimateAffinePartial2D(p0, p1, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=2000,
                                         confidence=0.99, refineIters=10)
    if m is None or inl is None or int(inl.sum()) < 8:
        return None
    scale = math.hypot(m[0, 0], m[1, 0])
    angle = math.atan2(m[1, 0], m[0, 0])
    return float(m[0, 2]), float(m[1, 2]), angle, math.log(max(scale, 1e-6)), int(inl.sum())


class Scanner:
    """The ingest scan, one frame at a time: PTS times, shot cuts, camera-motion pairs and thumbnails (a Scan)."""

    def __init__(self, width: int, fps_hint: float | None, p: ClipParams):
        self.scan, self.p = Scan(), p
        self.step = max(1, width // p.analysis_width)
        self.cut_step = max(1, width // 64)
        fps = float(fps_hint) if fps_hint and fps_hint > 0 else 25.0
        self.cuts = CutFinder(2, p.cut_threshold, p.cut_min_content, max(1, int(round(p.min_shot_gap_s * fps))))
        self.prev_small: np.ndarray | None = None
        self.pending: list[tuple[int, float, np.ndarray]] = []  # first frames of motion pairs waiting for their second
        self.next_motion_t, self.next_thumb_t = 0.0, 0.0

    def add(self, frame: VideoFrame) -> None:
        scan, p = self.scan, self.p
        if not scan.times:
            scan.rotation = frame.rotation
        scan.times.append(frame.t_s)
        small = frame.luma(self.cut_step).astype(np.int16)
        self.cuts.add(float(np.abs(small - self.prev_small).mean()) if self.prev_small is not None else 0.0)
        self.prev_small = small
        # Complete the pairs whose second frame is due (the gap is measured in PTS time, so VFR is fine).
        pending = self.pending
        due = pending and frame.t_s - pending[0][1] >= p.motion_gap_s - 1e-6
        want = frame.t_s >= self.next_motion_t - 1e-6
        if due or want:
            y = frame.luma(self.step)
        while pending and frame.t_s - pending[0][1] >= p.motion_gap_s - 1e-6:
            idx_a, t_a, y_a = pending.pop(0)
            est = global_motion(y_a, y)
            if est is not None:
                dt = max(frame.t_s - t_a, 1e-3)
                diag = math.hypot(*y.shape)
                tx, ty, ang, log_s, inl = est
                scan.motion.append(
                    MotionPair(idx_a, frame.idx, t_a, frame.t_s, math.hypot(tx, ty) / diag / dt, abs(ang) / dt,
                               abs(log_s) / dt, inl)
                )
        if want:
            pending.append((frame.idx, frame.t_s, y.copy()))
            self.next_motion_t = frame.t_s + p.motion_every_s
        if frame.t_s >= self.next_thumb_t - 1e-6:
            scan.thumbs.append((frame.t_s, jpeg(frame.rgb(p.thumb_width))))
            self.next_thumb_t = frame.t_s + p.thumb_every_s

    @property
    def decided(self) -> int:
        """How many frames (from the first) have a final shot-cut decision."""
        return self.cuts.decided

    def finish(self) -> Scan:
        self.cuts.finish()
        self.scan.cut_scores, self.scan.cuts = self.cuts.content, self.cuts.cuts
        return self.scan


class ClipWatcher(Protocol):
    """What sees a video's frames and clips during its scan (tracking.DetectionPass): `frame` gets every frame once
    its shot is known (with the first frame of that shot), `clip` every clip once it is final."""

    def frame(self, fr: VideoFrame, origin: int) -> None: ...

    def clip(self, c: dict) -> None: ...


def scan_video(frames: Iterable[VideoFrame], width: int, fps_hint: float | None, video_id: str, p: ClipParams,
               watch: ClipWatcher | None = None) -> tuple[Scan, list[dict]]:
    """The one pass over a video's decoded frames: the scan (Scanner) and the clip plan (ClipPlanner), made together,
    so that `watch` can work on each clip as soon as it is final while the video is still being decoded (the
    `ingest` step detects objects this way: no frame is decoded twice). Frames reach `watch` in the display
    orientation of the first frame, two frames behind the decoder (the shot-cut rule looks two frames ahead).
    Clips carry video_id, clip_idx, clip_id and, for `watch`, sample_origin (the first frame of their shot)."""
    scanner = Scanner(width, fps_hint, p)
    planner = ClipPlanner(scanner.scan, video_id, fps_hint, p)
    held: deque[VideoFrame] = deque()
    next_cut, n_ready = 0, 0

    def settle(upto: int) -> None:
        nonlocal next_cut
        cuts = scanner.cuts.cuts
        while planner.known < upto:
            k = planner.known
            cut = next_cut < len(cuts) and cuts[next_cut] == k
            next_cut += cut
            for c in planner.add(k, cut):
                ready(c)
            if watch is not None:
                fr = held.popleft()
                fr.rotation = scanner.scan.rotation
                watch.frame(fr, planner.shot_start)

    def ready(c: dict) -> None:
        nonlocal n_ready
        k, n_ready = n_ready, n_ready + 1
        c.update(video_id=video_id, clip_idx=k, clip_id=f"{video_id}-{k:03d}")
        if watch is not None:
            watch.clip({**c, "sample_origin": planner.origins[k]})

    for fr in frames:
        scanner.add(fr)
        if watch is not None:
            held.append(fr)
        settle(scanner.decided)
    scan = scanner.finish()
    settle(len(scan.times))
    for c in planner.finish():
        ready(c)
    return scan, planner.clips


def frame_duration(times: list[float], fps_hint: float | None) -> float:
    if len(times) > 1:
        return float(np.median(np.diff(times)))
    return 1.0 / fps_hint if fps_hint else 1.0 / 25


def gap_cuts(times: list[float], max_gap_s: float) -> list[int]:
    """Frame indices that follow a presentation-time gap longer than max_gap_s (a hole in the PTS: a cut)."""
    return [j for j in range(1, len(times)) if times[j] - times[j - 1] > max_gap_s]


def timing_error(times: list[float], dur: float, p: ClipParams) -> str | None:
    """Why a video's timestamps cannot be trusted (None when they can): its typical frame interval is longer than
    max_gap_s (e.g. one frame said to last 58 hours), or most of its frames are separated by such gaps."""
    n = len(times)
    span = times[-1] - times[0] + dur if n else 0.0
    if n and dur > p.max_gap_s:
        return (f"broken timing: {n} frame(s) over {span:.6g} s, a frame every {dur:.6g} s "
                f"(more than max_gap_s={p.max_gap_s:g} s): duration and frame count disagree")
    gaps = len(gap_cuts(times, p.max_gap_s))
    if n > 1 and gaps * 2 >= n:
        return f"broken timing: {gaps} of {n - 1} frame intervals are gaps longer than max_gap_s={p.max_gap_s:g} s"
    return None


def camera_motion_score(pairs: list[MotionPair]) -> float | None:
    """The reference's camera-motion score over the pairs: mean(dt) + mean(dR) + 0.5 max(dt) + 0.5 max(dR)."""
    if not pairs:
        return None
    dt = np.array([m.translation + m.scale for m in pairs])
    dr = np.array([m.rotation for m in pairs])
    return float(dt.mean() + dr.mean() + 0.5 * dt.max() + 0.5 * dr.max())


class ClipPlanner:
    """The clip plan, made as the frames go by: every shot is tiled with clips of random length in [min_clip_s,
    max_clip_s] (seeded by the video id); shots between min_shot_s and max_clip_s stay whole; shorter shots are kept
    as dropped rows (short_shot), a clip scoring above camera_motion_max as dropped (camera_motion).

    Frames are given in order with `add(k, cut)` once frame k's shot is known (`cut`: it starts a new shot; a PTS
    gap longer than max_gap_s also starts one, and no clip spans it). A clip is final, and returned, as soon as no
    later frame can change it: a shot's next clip once the shot has gone on max_clip_s + min_clip_s past the clip's
    start (its length is then drawn whatever follows), the rest of a shot at its cut, the last shot at `finish`.
    So a clip can be worked on while the video is still being decoded, max_clip_s + min_clip_s behind it. The frame
    interval (`dur`) is the median one of the frames given so far, PTS gaps left out. `scan` holds the times and camera-motion pairs
    (filled ahead of the frames given here)."""

    def __init__(self, scan: Scan, video_id: str, fps_hint: float | None, p: ClipParams):
        self.scan, self.fps_hint, self.p = scan, fps_hint, p
        self.rng = np.random.default_rng(seed_for(video_id, "clips"))
        self.known = 0  # frames given so far
        self.shot, self.shot_start, self.tile = 0, 0, 0  # the open shot: its index, first frame, next clip's start
        self.clips: list[dict] = []
        self.origins: list[int] = []  # the first frame of each clip's shot

    def add(self, k: int, cut: bool = False) -> list[dict]:
        """Frame k (the next one) with its shot decision; returns the clips this makes final."""
        assert k == self.known, f"frames are given in order: expected {self.known}, got {k}"
        times, out = self.scan.times, []
        gap = k > 0 and times[k] - times[k - 1] > self.p.max_gap_s
        if k > 0 and (cut or gap):
            out += self._close(k, hole=gap)
        self.known = k + 1
        p, last = self.p, times[k]
        while (last - times[self.tile] > p.max_clip_s + p.min_clip_s
               and last - times[self.shot_start] >= p.min_shot_s):
            dur = self._dur()
            length = float(self.rng.uniform(p.min_clip_s, p.max_clip_s - dur)) if p.max_clip_s - dur >= p.min_clip_s \
                else p.max_clip_s - dur
            out.append(self._tile(self.tile, self._after(times[self.tile] + length), None))
        return out

    def finish(self) -> list[dict]:
        """The clips of the last shot, once every frame has been given."""
        return self._close(self.known, hole=True) if self.known else []

    def _dur(self) -> float:
        """The median frame interval of the frames given so far, PTS gaps (holes) left out."""
        steps = np.diff(self.scan.times[:self.known])
        steps = steps[steps <= self.p.max_gap_s]
        return float(np.median(steps)) if len(steps) else frame_duration([], self.fps_hint)

    def _after(self, t: float) -> int:
        """The first frame given at or after time t (at least one frame after the open clip's start)."""
        return max(bisect.bisect_left(self.scan.times, t - 1e-9, 0, self.known), self.tile + 1)

    def _close(self, b: int, hole: bool) -> list[dict]:
        """The open shot ends before frame b (`hole`: after a PTS gap, or at the end of the video): its clips."""
        times, p, dur, a, out = self.scan.times, self.p, self._dur(), self.shot_start, []
        end = times[b - 1] + dur if hole else times[b]
        if self.tile == a and end - times[a] < p.min_shot_s - 1e-9:
            out.append(self._tile(a, b, "short_shot", end))
        while self.tile < b:
            i = self.tile
            remaining = end - times[i]
            if remaining <= p.max_clip_s + 1e-9:
                out.append(self._tile(i, b, "short_tail" if i > a and remaining < p.min_clip_s - 1e-9 else None, end))
                break
            hi = min(p.max_clip_s - dur, remaining - p.min_clip_s)  # leave at least min_clip_s behind
            if hi >= p.min_clip_s:
                length = float(self.rng.uniform(p.min_clip_s, hi))
            else:  # only when max_clip_s < 2 * min_clip_s: take a longest clip; the tail may be short
                length = p.max_clip_s - dur
            j = min(self._after(times[i] + length), b)
            out.append(self._tile(i, j, None, end if j == b else None))
        self.shot, self.shot_start, self.tile = self.shot + 1, b, b
        return out

    def _tile(self, a: int, b: int, drop: str | None, end: float | None = None) -> dict:
        """Clip [a, b) of the open shot, with its camera-motion score (`end`: its end time when b is not a frame of
        the shot that follows)."""
        times, p = self.scan.times, self.p
        inside = [m for m in self.scan.motion if a <= m.idx_a and m.idx_b < b]
        score = camera_motion_score(inside)
        if drop is None and score is not None and score > p.camera_motion_max:
            drop = "camera_motion"
        c: dict = {"shot_idx": self.shot, "start_frame": a, "end_frame": b, "start_s": times[a],
                   "end_s": times[b] if end is None else end, "n_frames": b - a, "drop_reason": drop,
                   "camera_motion": score, "n_motion_pairs": len(inside), "kept": drop is None}
        span = times[b - 1] - times[a]
        c["fps"] = (b - a - 1) / span if b - a > 1 and span > 0 else (self.fps_hint or 1.0 / self._dur())
        self.clips.append(c)
        self.origins.append(self.shot_start)
        self.tile = b
        return c


def plan_clips(scan: Scan, video_id: str, fps_hint: float | None, p: ClipParams) -> list[dict]:
    """The clip plan (ClipPlanner) of a whole scan."""
    planner, cuts = ClipPlanner(scan, video_id, fps_hint, p), set(scan.cuts)
    for k in range(len(scan.times)):
        planner.add(k, k in cuts)
    planner.finish()
    return planner.clips


def nearest_thumb(scan: Scan, t: float) -> bytes | None:
    if not scan.thumbs:
        return None
    return min(scan.thumbs, key=lambda th: abs(th[0] - t))[1]


def contact_sheet(images: list[bytes], columns: int = 4, width: int = 192) -> bytes:
    """A grid of JPEG thumbnails as one JPEG (for the Dagster UI; a PNG costs 5-10x more to encode)."""
    tiles = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
    tiles = [im.resize((width, max(1, round(im.height * width / im.width)))) for im in tiles]
    if not tiles:
        tiles = [Image.new("RGB", (width, width * 3 // 4), (40, 40, 40))]
    rows = math.ceil(len(tiles) / columns)
    cell_h = max(im.height for im in tiles)
    sheet = Image.new("RGB", (width * min(columns, len(tiles)), cell_h * rows), (20, 20, 20))
    for k, im in enumerate(tiles):
        sheet.paste(im, ((k % columns) * width, (k // columns) * cell_h))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
