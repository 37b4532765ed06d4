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

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

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


def detect_cuts(content: np.ndarray, window: int, threshold: float, min_content: float, min_gap: int) -> list[int]:
    """PySceneDetect's AdaptiveDetector rule, vectorized: frame i starts a new shot when its content change
    content[i] (mean absolute luma difference to frame i-1) is at least `min_content` and at least
    `threshold` times the mean change of the `window` frames on each side; cuts are `min_gap` frames apart."""
    n = len(content)
    cuts: list[int] = []
    if n < 2:
        return cuts
    padded = np.pad(content, window, mode="edge")
    kernel = np.ones(2 * window + 1)
    kernel[window] = 0
    neighbours = np.convolve(padded, kernel, mode="valid") / (2 * window)
    ratio = np.where(neighbours > 1e-6, content / np.maximum(neighbours, 1e-6), np.where(content >= min_content, 255.0, 0.0))
    for i in np.flatnonzero((ratio >= threshold) & (content >= min_content)):
        if i > 0 and (not cuts or i - cuts[-1] >= min_gap):
            cuts.append(int(i))
    return cuts


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


def scan_frames(frames: Iterable[VideoFrame], width: int, fps_hint: float, p: ClipParams) -> Scan:
    """One pass over the decoded frames: PTS times, shot cuts, camera-motion pairs and thumbnails."""
    scan = Scan()
    step = max(1, width // p.analysis_width)
    cut_step = max(1, width // 64)
    fps = float(fps_hint) if fps_hint and fps_hint > 0 else 25.0
    content: list[float] = []
    prev_small: np.ndarray | None = None
    pending: list[tuple[int, float, np.ndarray]] = []  # first frames of motion pairs waiting for their second
    next_motion_t, next_thumb_t = 0.0, 0.0
    for frame in frames:
        if not scan.times:
            scan.rotation = frame.rotation
        scan.times.append(frame.t_s)
        small = frame.luma(cut_step).astype(np.int16)
        content.append(float(np.abs(small - prev_small).mean()) if prev_small is not None else 0.0)
        prev_small = small
        # Complete the pairs whose second frame is due (the gap is measured in PTS time, so VFR is fine).
        due = pending and frame.t_s - pending[0][1] >= p.motion_gap_s - 1e-6
        want = frame.t_s >= next_motion_t - 1e-6
        if due or want:
            y = frame.luma(step)
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
            next_motion_t = frame.t_s + p.motion_every_s
        if frame.t_s >= next_thumb_t - 1e-6:
            scan.thumbs.append((frame.t_s, jpeg(frame.rgb(p.thumb_width))))
            next_thumb_t = frame.t_s + p.thumb_every_s
    scan.cut_scores = content
    scan.cuts = detect_cuts(np.asarray(content), window=2, threshold=p.cut_threshold, min_content=p.cut_min_content,
                            min_gap=max(1, int(round(p.min_shot_gap_s * fps))))
    return scan


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


def plan_clips(scan: Scan, video_id: str, fps_hint: float | None, p: ClipParams) -> list[dict]:
    """Tile every shot with clips of random length in [min_clip_s, max_clip_s] (seeded by the video id);
    shots between min_shot_s and max_clip_s stay whole; shorter shots are kept as dropped rows."""
    times = scan.times
    n = len(times)
    if n == 0:
        return []
    dur = frame_duration(times, fps_hint)
    t = np.asarray(times)
    holes = set(gap_cuts(times, p.max_gap_s))  # a gap in the PTS is a cut: no clip spans it
    end_of = lambda j: times[j] if j < n and j not in holes else times[j - 1] + dur
    rng = np.random.default_rng(seed_for(video_id, "clips"))
    bounds = sorted({0, *scan.cuts, *holes, n})
    clips: list[dict] = []

    def emit(shot: int, a: int, b: int, drop: str | None) -> None:
        clips.append({"shot_idx": shot, "start_frame": a, "end_frame": b, "start_s": times[a], "end_s": end_of(b),
                      "n_frames": b - a, "drop_reason": drop})

    for shot, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        length = end_of(b) - times[a]
        if length < p.min_shot_s - 1e-9:
            emit(shot, a, b, "short_shot")
            continue
        i = a
        while i < b:
            remaining = end_of(b) - times[i]
            if remaining <= p.max_clip_s + 1e-9:
                emit(shot, i, b, "short_tail" if i > a and remaining < p.min_clip_s - 1e-9 else None)
                break
            hi = min(p.max_clip_s - dur, remaining - p.min_clip_s)  # leave at least min_clip_s behind
            if hi >= p.min_clip_s:
                length = float(rng.uniform(p.min_clip_s, hi))
            else:  # only when max_clip_s < 2 * min_clip_s: take a longest clip; the tail may be short
                length = p.max_clip_s - dur
            j = int(np.searchsorted(t, times[i] + length - 1e-9))
            j = min(max(j, i + 1), b)
            emit(shot, i, j, None)
            i = j
    for c in clips:
        inside = [m for m in scan.motion if c["start_frame"] <= m.idx_a and m.idx_b < c["end_frame"]]
        c["camera_motion"] = camera_motion_score(inside)
        c["n_motion_pairs"] = len(inside)
        if c["drop_reason"] is None and c["camera_motion"] is not None and c["camera_motion"] > p.camera_motion_max:
            c["drop_reason"] = "camera_motion"
        c["kept"] = c["drop_reason"] is None
        span = times[c["end_frame"] - 1] - times[c["start_frame"]]
        c["fps"] = (c["n_frames"] - 1) / span if c["n_frames"] > 1 and span > 0 else (fps_hint or 1.0 / dur)
    return clips


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
