"""The second synthetic scene family, "wild": procedural scenes drawn from a seed, generated differently from the
keyframed scenes of generator.py, for measuring the pipeline on footage nobody tuned for.

Everything is drawn from numpy Generators seeded from ("wild", seed, purpose): the same seed gives the same scene
spec, the same pixels and (given the same PyAV/FFmpeg/x264 build) the same mp4 bytes.

What a scene holds
------------------
- Frame 640x360 or 480x360, 10, 12 or 15 fps, 6-16 s (so many scenes are longer than the pipeline's 10 s clips).
- A procedural background (multi-octave noise, planks / stripes, tiles or blotches, in two muted colours, with a
  few static muted shapes), different for every seed.
- 2-8 objects: disk, square, rectangle, triangle, ellipse or rounded blob, 3.5-15 % of the frame diagonal
  (``size``: the shape's largest nominal dimension - diameter, side, long axis - before rotation), each a named
  colour of fm_assets.labels.vocab.COLORS (distinct within a scene, except one repeat in about a fifth of the
  scenes with three or more objects), modulated by the object's own texture (noise, stripes or spots, plus a
  shading gradient and grain).
- Motion in world coordinates: the centre is piecewise linear between keyframes, i.e. piecewise-constant
  velocities, with speeds of 0.05-0.35 frame diagonals per second.  ``behaviour`` says how it was drawn:
  ``static`` (never moves), ``late_start`` (still, then moves), ``stop_go`` (moves, stops, moves again),
  ``wander`` (moves with turns, rarely stops), ``enter`` (comes in through an edge, having waited outside),
  ``exit`` (heads out through an edge and stays out once gone; a slow one may still be in view at the end),
  ``cross`` (comes in through one edge, heads out through another).  At most half of a scene's objects use the
  edges.  Some legs are aimed through another object's place, so paths cross and objects occlude each other by
  their fixed ``z`` (higher is in front).  The motion is redrawn until at least two objects move at least 10 % of
  the frame diagonal while in view and every object is in view for at least one second.
- Shadows in about half of the scenes: a soft dark ellipse beside / under some of the moving objects, drawn on the
  ground under every object (not part of any box).
- Camera jitter: a random walk (AR(1)) of the whole image, std 0.4-0.9 px, clipped to +-2 px; background,
  shadows and objects move together: image coordinates = world coordinates + ``jitter[i]``.
- Illumination: a global gain per frame that changes by 15-25 % (peak to peak) over the clip, either as a ramp or
  as part of a slow sinusoid, times a soft light spot (+-6-12 %) that drifts slowly across the frame, then
  sensor noise (std 0.8-1.6 grey levels).

Files (``render_wild`` / ``render_wild_scene``) in out_dir, for scene ``wild-0007`` (seed 7)::

    wild-0007.mp4         H.264 with generator.py's encoder settings (libx264 C code, yuv420p, crf 18, preset
                          veryfast, one encoder thread, bitexact mp4); frame i has pts i in time base 1/fps.
    wild-0007.gt.txt      MOTChallenge ``frame,id,x,y,w,h,1,-1,vis,-1``: frame 1-based over the video's frames;
                          (x, y, w, h) the tight box of the part of the object's outline that is in the frame
                          (jitter included; an object cut by the frame's edge gets the box of its part inside);
                          one line per object per frame where that box is at least 1 px wide and high - including
                          frames where the object is hidden behind another -;
                          ``vis`` (column 9) the fraction of the object's area that is seen (not behind an object in
                          front, not outside the frame), 0-1, from the rendered coverage; sorted by frame then id.
    wild-0007.truth.json  scene, family ("wild"), seed, version, width, height, fps, n_frames, duration_s,
                          background, noise_sigma, gt_columns, illumination {kind, peak_to_peak, gain per frame,
                          light spot}, camera {jitter per frame, max_abs_px}, objects (below), mp4_sha256,
                          gt_sha256 and render_key (used to skip re-renders).

Per object in truth.json: obj_id, label ("object"), shape, color, size (px), size_frac (of the diagonal), w, h (box
at rest, px), z, behaviour, moves (centre moves at all), shadow (dx, dy, ax, ay, darkness, or null),
first_frame / last_frame (1-based, as in gt.txt; null if never in view), n_frames_visible (lines in gt.txt),
n_frames_hidden (vis 0), n_frames_occluded (vis < 0.5), keyframes ([t, cx, cy] world centre, the first at 0 and
the last at duration_s), segments ({t0, t1, kind: move | stop, vx, vy in px/s, speed as diagonals/s}) and outline
(the polygon around the centre, px, y down).  Per-frame boxes are in gt.txt.

API
---
``WILD_DEV_SEEDS`` (0-11, for development), ``WILD_HELDOUT_SEEDS`` (1000-1011, never tuned on) and
``WILD_FRESH_SEEDS`` (2000-2011, added once the held-out figures had been published: reported, never looked at),
``WILD_LATE_SEEDS`` (3000-3011, added with the entering / leaving questions: reported, never looked at);
``wild_scene(seed) -> WildScene`` (the spec, no pixels); ``wild_gt_rows(scene)`` and ``wild_truth(scene)`` (the
gt.txt rows and the truth.json content, without rendering any texture); ``render_wild_frames(scene)`` (RGB
frames); ``render_wild(seed, out_dir, force=False) -> WildTruth`` (paths + truth; skipped when up to date);
``render_wild_scene(scene, out_dir, force=False)`` (the same for a given spec, e.g. ``wild_scene(s).head(n)``);
``make_wild_videos(out_dir, seeds=WILD_DEV_SEEDS) -> list[Path]`` (the mp4 paths, in the order of seeds).
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from fm_assets.labels.vocab import COLORS
from fm_assets.synthetic.generator import (
    ENCODER_OPTIONS,
    ENCODER_THREADS,
    Keyframe,
    _sha256,
    _write_text_if_changed,
    encode_if_changed,
    write_h264,
)

FAMILY = "wild"
WILD_VERSION = 1
WILD_DEV_SEEDS: tuple[int, ...] = tuple(range(12))  # for development
WILD_HELDOUT_SEEDS: tuple[int, ...] = tuple(range(1000, 1012))  # never tuned on
# first used on 2026-12-05, after the held-out figures had been published once: never looked at, only reported
WILD_FRESH_SEEDS: tuple[int, ...] = tuple(range(2000, 2012))
# first used on 2026-12-05 (session 6), to test the entering / leaving questions after the fresh set had shown
# them: never looked at, only reported
WILD_LATE_SEEDS: tuple[int, ...] = tuple(range(3000, 3012))
WILD_SHAPES = ("disk", "square", "rectangle", "triangle", "ellipse", "blob")
BEHAVIOURS = ("static", "late_start", "stop_go", "wander", "enter", "exit", "cross")
FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (480, 360))
FPS_CHOICES: tuple[int, ...] = (10, 12, 15)
DURATION_RANGE_S = (6.0, 16.0)
SIZE_RANGE = (0.035, 0.15)  # of the frame diagonal
SPEED_RANGE = (0.05, 0.35)  # frame diagonals per second
GAIN_RANGE = (0.15, 0.25)  # peak-to-peak change of the global gain over the clip
MAX_JITTER_PX = 2.0
MIN_MOVE_FRAC = 0.10  # a mover travels at least this (of the diagonal) while in view
GT_COLUMNS = "frame,id,x,y,w,h,1,-1,visibility,-1"

_PAD = 4  # background margin (px) around the frame, for the jitter
_EDGE = 3.0  # objects kept inside the frame keep this margin (px) to the edges
_SS = 4  # supersampling of the outlines
_EDGE_BEHAVIOURS = ("enter", "exit", "cross")
_BEHAVIOUR_P = {"late_start": 0.2, "stop_go": 0.25, "wander": 0.13, "enter": 0.15, "exit": 0.12, "cross": 0.15}


def wild_name(seed: int) -> str:
    return f"{FAMILY}-{seed:04d}"


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    key = [zlib.crc32(FAMILY.encode()), seed & 0xFFFFFFFF] + [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(key)


# --------------------------------------------------------------------------------------------------
# Spec


@dataclass(frozen=True)
class WildObject:
    """One object: a polygon outline around its centre and its world-centre keyframes (scale always 1)."""

    obj_id: int
    shape: str
    color: str
    size: float  # largest nominal dimension (px) before rotation
    outline: tuple[tuple[float, float], ...]  # polygon around the centre (px, y down)
    keyframes: tuple[Keyframe, ...]  # linear between, held after the last; the first is at t = 0
    z: int  # drawing order: higher is in front
    behaviour: str
    shadow: tuple[float, float, float, float, float] | None = None  # dx, dy, ax, ay, darkness

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(min x, min y, max x, max y) of the outline relative to the centre."""
        xs, ys = [p[0] for p in self.outline], [p[1] for p in self.outline]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def w(self) -> float:
        e = self.extent
        return e[2] - e[0]

    @property
    def h(self) -> float:
        e = self.extent
        return e[3] - e[1]

    def centre(self, t: float) -> tuple[float, float]:
        """World centre at time t."""
        kfs = self.keyframes
        if t <= kfs[0].t:
            return kfs[0].cx, kfs[0].cy
        for a, b in zip(kfs, kfs[1:]):
            if t < b.t:
                u = (t - a.t) / (b.t - a.t)
                return a.cx + u * (b.cx - a.cx), a.cy + u * (b.cy - a.cy)
        return kfs[-1].cx, kfs[-1].cy


@dataclass(frozen=True)
class WildScene:
    """A wild scene; per-frame camera jitter and global gain are part of the spec (the truth depends on them)."""

    name: str
    seed: int
    width: int
    height: int
    fps: int
    n_frames: int
    objects: tuple[WildObject, ...]
    background: str  # noise | planks | tiles | blotches
    jitter: tuple[tuple[float, float], ...]  # camera offset (px) per frame: image = world + jitter
    gain_kind: str  # ramp | sine
    gain: tuple[float, ...]  # global illumination factor per frame
    light: tuple[float, float, float, float, float, float]  # spot x0, y0 (px), vx, vy (px/s), sigma (px), amplitude
    noise: float  # sensor noise std (grey levels)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def diag(self) -> float:
        return math.hypot(self.width, self.height)

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps)

    def head(self, n_frames: int) -> WildScene:
        """The first n_frames of the scene (same pixels on those frames), e.g. for quick tests."""
        n = max(1, min(self.n_frames, int(n_frames)))
        return replace(self, n_frames=n, jitter=self.jitter[:n], gain=self.gain[:n])


@dataclass(frozen=True)
class WildTruth:
    """What ``render_wild_scene`` wrote."""

    mp4: Path
    gt: Path
    truth_path: Path
    truth: dict[str, Any] = field(compare=False)


def _outline(shape: str, size: float, rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
    """Polygon (centred on the origin) of a shape whose largest nominal dimension is `size`."""
    n = 96
    th = np.linspace(0, 2 * math.pi, n, endpoint=False)
    if shape == "disk":
        pts = np.c_[np.cos(th), np.sin(th)] * size / 2
        angle = 0.0
    elif shape == "ellipse":
        pts = np.c_[np.cos(th) * size / 2, np.sin(th) * size / 2 / rng.uniform(1.35, 2.2)]
        angle = rng.uniform(0, math.pi)
    elif shape == "blob":
        r = np.ones(n)
        for k in (2, 3, 4):
            r += rng.uniform(0.0, 0.12) * np.cos(k * th + rng.uniform(0, 2 * math.pi))
        pts = np.c_[np.cos(th), np.sin(th)] * r[:, None]
        pts *= size / max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
        pts -= (pts.max(0) + pts.min(0)) / 2
        angle = rng.uniform(0, 2 * math.pi)
    elif shape in ("square", "rectangle"):
        a, b = size / 2, size / 2 / (1.0 if shape == "square" else rng.uniform(1.5, 3.0))
        pts = np.array([(-a, -b), (a, -b), (a, b), (-a, b)])
        angle = 0.0 if rng.random() < 0.5 else rng.uniform(0, math.pi / 2 if shape == "square" else math.pi)
    elif shape == "triangle":
        ang = math.pi / 2 + np.arange(3) * 2 * math.pi / 3 + rng.uniform(-0.25, 0.25, 3)
        pts = np.c_[np.cos(ang), -np.sin(ang)]
        pts *= size / max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
        pts -= (pts.max(0) + pts.min(0)) / 2
        angle = 0.0 if rng.random() < 0.5 else rng.uniform(0, 2 * math.pi)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {WILD_SHAPES}")
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    return tuple((round(float(x), 3), round(float(y), 3)) for x, y in pts)


class _Planner:
    """Draws one object's motion (world keyframes) for a given behaviour."""

    def __init__(self, rng: np.random.Generator, ext: tuple[float, float, float, float], width: int, height: int,
                 duration: float, anchors: list[tuple[float, float]]) -> None:
        self.rng, self.ext, self.w, self.h, self.T, self.anchors = rng, ext, width, height, duration, anchors
        self.diag = math.hypot(width, height)
        minx, miny, maxx, maxy = ext
        self.xr = (_EDGE - minx, width - _EDGE - maxx)
        self.yr = (_EDGE - miny, height - _EDGE - maxy)
        lo, hi = (math.log(0.06), math.log(0.30))
        self.base = self.diag * math.exp(rng.uniform(lo, hi))
        self.kfs: list[tuple[float, float, float]] = []

    def inside(self) -> tuple[float, float]:
        return float(self.rng.uniform(*self.xr)), float(self.rng.uniform(*self.yr))

    def clamp(self, p: tuple[float, float]) -> tuple[float, float]:
        return float(np.clip(p[0], *self.xr)), float(np.clip(p[1], *self.yr))

    def outside(self, edge: int, near: tuple[float, float] | None = None) -> tuple[float, float]:
        """A centre just beyond an edge (0 left, 1 right, 2 top, 3 bottom): the object fully out of view."""
        minx, miny, maxx, maxy = self.ext
        gap = MAX_JITTER_PX + 1 + float(self.rng.uniform(0, 12))
        x, y = self.inside() if near is None else near
        if edge == 0:
            return -maxx - gap, y
        if edge == 1:
            return self.w - minx + gap, y
        if edge == 2:
            return x, -maxy - gap
        return x, self.h - miny + gap

    def speed(self) -> float:
        lo, hi = SPEED_RANGE
        return float(np.clip(self.base * self.rng.uniform(0.75, 1.3), lo * self.diag, hi * self.diag))

    @property
    def t(self) -> float:
        return self.kfs[-1][0]

    @property
    def cur(self) -> tuple[float, float]:
        return self.kfs[-1][1], self.kfs[-1][2]

    def go(self, p: tuple[float, float]) -> None:
        d = math.hypot(p[0] - self.cur[0], p[1] - self.cur[1])
        if d > 1e-6:
            self.kfs.append((self.t + d / self.speed(), p[0], p[1]))

    def hold(self, s: float) -> None:
        if s > 0:
            self.kfs.append((self.t + s, *self.cur))

    def target(self) -> tuple[float, float]:
        """A point inside the frame, at least 15 % of the diagonal away; sometimes past another object's place."""
        cur = self.cur
        if self.anchors and self.rng.random() < 0.3:
            a = self.anchors[int(self.rng.integers(len(self.anchors)))]
            d = (a[0] - cur[0], a[1] - cur[1])
            if math.hypot(*d) > 0.1 * self.diag:
                u = float(self.rng.uniform(0.2, 0.9))
                p = self.clamp((a[0] + u * d[0], a[1] + u * d[1]))
                if math.hypot(p[0] - cur[0], p[1] - cur[1]) > 0.1 * self.diag:
                    return p
        p = self.inside()
        for _ in range(30):
            if math.hypot(p[0] - cur[0], p[1] - cur[1]) >= 0.15 * self.diag:
                break
            p = self.inside()
        return p

    def plan(self, behaviour: str, start: tuple[float, float]) -> tuple[Keyframe, ...]:
        rng, T = self.rng, self.T
        if behaviour in ("enter", "cross"):
            e_in = int(rng.integers(4))
            self.kfs = [(0.0, *self.outside(e_in))]
            self.hold(float(rng.uniform(0, 0.3 * T)))
        else:
            self.kfs = [(0.0, *start)]
            first_hold = {"static": T, "late_start": rng.uniform(1.0, max(1.0, min(5.0, 0.5 * T))),
                          "stop_go": rng.uniform(0, 1.5), "wander": rng.uniform(0, 0.5), "exit": rng.uniform(0, 2.0)}
            self.hold(float(first_hold[behaviour]))
        if behaviour == "cross":
            e_in = 0 if self.cur[0] < 0 else 1 if self.cur[0] > self.w else 2 if self.cur[1] < 0 else 3
            e_out = e_in ^ 1 if rng.random() < 0.7 else int(rng.choice([e for e in range(4) if e != e_in]))
            end = self.outside(e_out)
            if rng.random() < 0.35:  # stops once on the way
                u = float(rng.uniform(0.3, 0.7))
                x, y = self.cur
                self.go(self.clamp((x + u * (end[0] - x), y + u * (end[1] - y))))
                self.hold(float(rng.uniform(0.6, 2.0)))
            self.go(end)
        elif behaviour == "exit":
            for _ in range(int(rng.integers(0, 2))):
                self.go(self.target())
                if rng.random() < 0.4:
                    self.hold(float(rng.uniform(0.6, 2.0)))
            self.go(self.outside(int(rng.integers(4)), near=self.cur))
        elif behaviour != "static":
            p_hold = {"stop_go": 0.7, "late_start": 0.35, "wander": 0.1, "enter": 0.4}[behaviour]
            legs = 0
            while self.t < T:
                self.go(self.target())
                legs += 1
                if (behaviour == "stop_go" and legs == 1) or rng.random() < p_hold:
                    self.hold(float(rng.uniform(0.6, 2.5)))
        return _cut(self.kfs, T)


def _cut(kfs: list[tuple[float, float, float]], T: float) -> tuple[Keyframe, ...]:
    """Keyframes up to T, the last exactly at T (interpolated, or a hold)."""
    out = [kfs[0]]
    for a, b in zip(kfs, kfs[1:]):
        if b[0] < T:
            out.append(b)
            continue
        u = (T - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 1.0
        out.append((T, a[1] + u * (b[1] - a[1]), a[2] + u * (b[2] - a[2])))
        break
    if out[-1][0] < T:
        out.append((T, out[-1][1], out[-1][2]))
    return tuple(Keyframe(round(t, 4), round(x, 3), round(y, 3)) for t, x, y in out)


def _in_view_box(obj: WildObject, cx: float, cy: float, width: int, height: int
                 ) -> tuple[float, float, float, float] | None:
    """The tight box (x, y, w, h) of the part of the object's outline (centred at (cx, cy) in image coordinates) that
    lies in the frame, or None when that part is less than 1 px wide or high."""
    minx, miny, maxx, maxy = obj.extent
    if cx + minx >= 0 and cy + miny >= 0 and cx + maxx <= width and cy + maxy <= height:
        return cx + minx, cy + miny, maxx - minx, maxy - miny
    if cx + maxx <= 0 or cy + maxy <= 0 or cx + minx >= width or cy + miny >= height:
        return None
    # clip the polygon to the frame: its extent is that of its vertices inside the frame and of the points where its
    # edges cross the frame's sides (a frame corner inside the polygon adds no new extreme)
    p = np.asarray(obj.outline, np.float64) + (cx, cy)
    q = np.roll(p, -1, axis=0)
    cand = [p]
    for axis, c in ((0, 0.0), (0, float(width)), (1, 0.0), (1, float(height))):
        a, b = p[:, axis] - c, q[:, axis] - c
        cross = (a * b < 0) | ((a == 0) & (b != 0))
        if cross.any():
            t = (a[cross] / (a[cross] - b[cross]))[:, None]
            cand.append(p[cross] + t * (q[cross] - p[cross]))
    pts = np.concatenate(cand)
    eps = 1e-9
    pts = pts[(pts[:, 0] >= -eps) & (pts[:, 0] <= width + eps) & (pts[:, 1] >= -eps) & (pts[:, 1] <= height + eps)]
    if not len(pts):
        return None
    x0, y0 = max(0.0, float(pts[:, 0].min())), max(0.0, float(pts[:, 1].min()))
    x1, y1 = min(float(width), float(pts[:, 0].max())), min(float(height), float(pts[:, 1].max()))
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _motion_ok(objs: list[WildObject], width: int, height: int, fps: int, n_frames: int) -> bool:
    """At least two objects travel >= MIN_MOVE_FRAC of the diagonal while in view; every object is in view >= 1 s."""
    diag = math.hypot(width, height)
    movers = 0
    for o in objs:
        path, seen, prev = 0.0, 0, None
        for i in range(n_frames):
            c = o.centre(i / fps)
            if _in_view_box(o, c[0], c[1], width, height) is None:
                prev = None
                continue
            seen += 1
            if prev is not None:
                path += math.hypot(c[0] - prev[0], c[1] - prev[1])
            prev = c
        if seen < fps:
            return False
        movers += path >= MIN_MOVE_FRAC * diag
    return movers >= 2


def wild_scene(seed: int) -> WildScene:
    """The scene of a seed (pure: no pixels)."""
    rng = _rng(seed, "scene")
    width, height = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
    fps = FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))]
    n_frames = int(round(rng.uniform(*DURATION_RANGE_S) * fps))
    T, diag = n_frames / fps, math.hypot(width, height)
    n_obj = int(rng.choice(np.arange(2, 9), p=[0.08, 0.16, 0.2, 0.2, 0.16, 0.12, 0.08]))

    colours = [str(c) for c in rng.permutation(sorted(COLORS))[:n_obj]]
    if n_obj >= 3 and rng.random() < 0.2:
        k = int(rng.integers(1, n_obj))
        colours[k] = colours[int(rng.integers(0, k))]
    shapes = [str(s) for s in rng.choice(WILD_SHAPES, n_obj)]
    sizes = [diag * math.exp(rng.uniform(math.log(SIZE_RANGE[0]), math.log(SIZE_RANGE[1]))) for _ in range(n_obj)]
    outlines = [_outline(s, sz, _rng(seed, "outline", k)) for k, (s, sz) in enumerate(zip(shapes, sizes))]
    n_static = int(rng.binomial(n_obj - 2, 0.2))
    kinds, p = list(_BEHAVIOUR_P), np.array(list(_BEHAVIOUR_P.values()))
    behaviours = ["static"] * n_static + [str(b) for b in rng.choice(kinds, n_obj - n_static, p=p / p.sum())]
    behaviours = [behaviours[k] for k in rng.permutation(n_obj)]
    edge = [k for k, b in enumerate(behaviours) if b in _EDGE_BEHAVIOURS]
    for k in edge[n_obj // 2 :]:  # at most half the objects come or go through an edge: most stay in view
        behaviours[k] = str(rng.choice(["late_start", "stop_go", "wander"]))
    z = [int(v) for v in rng.permutation(n_obj)]

    sunny = rng.random() < 0.5
    sun = float(rng.uniform(math.radians(25), math.radians(155)))  # shadow direction, y down: below the objects

    def ext_of(k: int) -> tuple[float, float, float, float]:
        xs, ys = [q[0] for q in outlines[k]], [q[1] for q in outlines[k]]
        return min(xs), min(ys), max(xs), max(ys)

    # start places of the objects that start in view: spread out (no overlap when it can be helped)
    starts: list[tuple[float, float]] = []
    radii: list[float] = []
    for k in range(n_obj):
        ext = ext_of(k)
        xr, yr = (_EDGE - ext[0], width - _EDGE - ext[2]), (_EDGE - ext[1], height - _EDGE - ext[3])
        r = 0.5 * math.hypot(ext[2] - ext[0], ext[3] - ext[1])
        best, best_gap = (0.0, 0.0), -math.inf
        for _ in range(60):
            c = (float(rng.uniform(*xr)), float(rng.uniform(*yr)))
            gap = min((math.hypot(c[0] - s[0], c[1] - s[1]) - 0.7 * (r + rs) for s, rs in zip(starts, radii)),
                      default=math.inf)
            if gap > best_gap:
                best, best_gap = c, gap
            if gap > 0:
                break
        starts.append(best)
        radii.append(r)

    objects: list[WildObject] = []
    for _attempt in range(50):
        objects = []
        for k in range(n_obj):
            anchors = [s for j, s in enumerate(starts) if j != k and behaviours[j] not in ("enter", "cross")]
            kfs = _Planner(rng, ext_of(k), width, height, T, anchors).plan(behaviours[k], starts[k])
            shadow = None
            if sunny and behaviours[k] != "static" and rng.random() < 0.75:
                ext = ext_of(k)
                w, h = ext[2] - ext[0], ext[3] - ext[1]
                off = 0.3 * sizes[k]
                shadow = (round(off * math.cos(sun), 2), round(off * math.sin(sun) + 0.25 * h, 2),
                          round(0.55 * w, 2), round(0.28 * h + 0.1 * w, 2), round(float(rng.uniform(0.25, 0.45)), 3))
            objects.append(WildObject(k + 1, shapes[k], colours[k], round(sizes[k], 2), outlines[k], kfs, z[k],
                                      behaviours[k], shadow))
        if _motion_ok(objects, width, height, fps, n_frames):
            break
        # not enough movement (or an object hardly in view): turn one static object into a mover and redraw
        if "static" in behaviours and _attempt % 5 == 4:
            behaviours[behaviours.index("static")] = "stop_go"

    jitter = _jitter(_rng(seed, "jitter"), n_frames)
    gain_kind, gain = _gain(_rng(seed, "gain"), n_frames, fps)
    lr = _rng(seed, "light")
    x0, y0 = float(lr.uniform(0, width)), float(lr.uniform(0, height))
    ang, dist = float(lr.uniform(0, 2 * math.pi)), float(lr.uniform(0.3, 0.8)) * width
    light = (round(x0, 2), round(y0, 2), round(dist * math.cos(ang) / T, 3), round(dist * math.sin(ang) / T, 3),
             round(float(lr.uniform(0.4, 0.8)) * width, 2), round(float(lr.uniform(0.06, 0.12)), 4))
    background = str(rng.choice(["noise", "planks", "tiles", "blotches"]))
    return WildScene(
        name=wild_name(seed), seed=seed, width=width, height=height, fps=fps, n_frames=n_frames,
        objects=tuple(objects), background=background, jitter=jitter, gain_kind=gain_kind, gain=gain, light=light,
        noise=round(float(rng.uniform(0.8, 1.6)), 3),
    )


def _jitter(rng: np.random.Generator, n: int) -> tuple[tuple[float, float], ...]:
    """Camera shake: AR(1) random walk per axis, std 0.4-0.9 px, clipped to +-MAX_JITTER_PX."""
    rho, sd = float(rng.uniform(0.8, 0.95)), float(rng.uniform(0.4, 0.9))
    j = rng.normal(0, sd, 2)
    out: list[tuple[float, float]] = []
    for _ in range(n):
        jx, jy = np.clip(j, -MAX_JITTER_PX, MAX_JITTER_PX)
        out.append((round(float(jx), 3), round(float(jy), 3)))
        j = rho * j + sd * math.sqrt(1 - rho * rho) * rng.normal(0, 1, 2)
    return tuple(out)


def _gain(rng: np.random.Generator, n: int, fps: int) -> tuple[str, tuple[float, ...]]:
    """Global illumination per frame, changing by GAIN_RANGE peak to peak: a ramp or a slow sinusoid."""
    t = np.arange(n) / fps
    T = n / fps
    kind = "ramp" if rng.random() < 0.5 else "sine"
    if kind == "ramp":
        f = t / max(T, 1e-9) * (1 if rng.random() < 0.5 else -1)
    else:
        f = np.sin(2 * math.pi * t / (T * rng.uniform(0.8, 2.0)) + rng.uniform(0, 2 * math.pi))
    span = float(f.max() - f.min()) if n > 1 else 0.0
    p2p = rng.uniform(*GAIN_RANGE)
    g = 1 + p2p * (f - (f.max() + f.min()) / 2) / span if span > 1e-6 else np.ones(n)
    return kind, tuple(round(float(v), 5) for v in g)


def _validate(scene: WildScene) -> None:
    if scene.width % 2 or scene.height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    if scene.n_frames < 1 or scene.fps <= 0:
        raise ValueError("n_frames and fps must be positive")
    if len(scene.jitter) < scene.n_frames or len(scene.gain) < scene.n_frames:
        raise ValueError("jitter and gain need one value per frame")
    ids = [o.obj_id for o in scene.objects]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate obj_id")
    for o in scene.objects:
        if o.color not in COLORS:
            raise ValueError(f"unknown colour {o.color!r}")
        if o.shape not in WILD_SHAPES:
            raise ValueError(f"unknown shape {o.shape!r}")
        if not o.keyframes or any(b.t < a.t for a, b in zip(o.keyframes, o.keyframes[1:])):
            raise ValueError(f"object {o.obj_id}: keyframes must be non-empty and sorted by t")


# --------------------------------------------------------------------------------------------------
# Geometry per frame: the rasterised outlines placed in the image (shared by the renderer and the ground truth)


class _Layout:
    """Anti-aliased coverage sprites of the outlines, and their placement on each frame."""

    def __init__(self, scene: WildScene) -> None:
        _validate(scene)
        self.scene = scene
        self.objs = sorted(scene.objects, key=lambda o: o.obj_id)
        self.sprites: dict[int, tuple[int, int, np.ndarray, float]] = {}  # id -> ox, oy, alpha, area
        for o in self.objs:
            minx, miny, maxx, maxy = o.extent
            ox, oy = math.floor(minx) - 2, math.floor(miny) - 2
            sw, sh = math.ceil(maxx) + 2 - ox, math.ceil(maxy) + 2 - oy
            big = np.zeros((sh * _SS, sw * _SS), np.uint8)
            # fillPoly puts integer coordinates on pixel centres; a continuous x is at x * SS - 0.5 there
            pts = np.array([[((x - ox) * _SS - 0.5) * 16, ((y - oy) * _SS - 0.5) * 16] for x, y in o.outline])
            cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
            alpha = big.reshape(sh, _SS, sw, _SS).astype(np.float32).mean(axis=(1, 3)) / 255.0
            self.sprites[o.obj_id] = (ox, oy, alpha, float(alpha.sum()))

    def centre(self, o: WildObject, i: int) -> tuple[float, float]:
        """Image centre of an object on frame i (world + camera jitter)."""
        cx, cy = o.centre(i / self.scene.fps)
        jx, jy = self.scene.jitter[i]
        return cx + jx, cy + jy

    def place(self, o: WildObject, i: int, img: np.ndarray | None = None) -> tuple[int, int, np.ndarray] | None:
        """(x, y, patch): the object's sprite (alpha, or the RGBA image `img` of the sprite) shifted to its sub-pixel
        place on frame i, clipped to the frame, with its top-left pixel (x, y); None when out of the frame."""
        ox, oy, alpha, _ = self.sprites[o.obj_id]
        src = alpha if img is None else img
        cx, cy = self.centre(o, i)
        ix, iy = math.floor(cx), math.floor(cy)
        fx, fy = cx - ix, cy - iy
        sh, sw = alpha.shape
        m = np.array([[1, 0, fx], [0, 1, fy]], np.float32)
        patch = cv2.warpAffine(src, m, (sw + 1, sh + 1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)
        x0, y0 = ix + ox, iy + oy
        W, H = self.scene.width, self.scene.height
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + sw + 1), min(H, y0 + sh + 1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        return cx0, cy0, patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]

    def frame_rows(self, i: int) -> list[tuple[int, int, float, float, float, float, float]]:
        """gt rows of frame i: (frame 1-based, id, x, y, w, h, visibility)."""
        W, H = self.scene.width, self.scene.height
        cover = np.zeros((H, W), np.float32)
        vis: dict[int, float] = {}
        for o in sorted(self.objs, key=lambda o: -o.z):  # front to back
            placed = self.place(o, i)
            if placed is None:
                vis[o.obj_id] = 0.0
                continue
            x, y, a = placed
            h, w = a.shape
            c = cover[y : y + h, x : x + w]
            seen = a * (1 - c)
            vis[o.obj_id] = min(1.0, float(seen.sum()) / max(self.sprites[o.obj_id][3], 1e-6))
            c += seen
        rows = []
        for o in self.objs:
            box = _in_view_box(o, *self.centre(o, i), W, H)
            if box is not None:
                rows.append((i + 1, o.obj_id, *box, vis[o.obj_id]))
        return rows


def wild_gt_rows(scene: WildScene) -> list[tuple[int, int, float, float, float, float, float]]:
    """MOTChallenge rows (frame 1-based, id, x, y, w, h, visibility), sorted by frame then id."""
    lay = _Layout(scene)
    return [r for i in range(scene.n_frames) for r in lay.frame_rows(i)]


def _gt_text(rows: Sequence[tuple[int, int, float, float, float, float, float]]) -> str:
    return "".join(f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,{v:.3f},-1\n" for f, i, x, y, w, h, v in rows)


def _segments(o: WildObject, diag: float) -> list[dict[str, Any]]:
    out = []
    for a, b in zip(o.keyframes, o.keyframes[1:]):
        if b.t <= a.t:
            continue
        vx, vy = (b.cx - a.cx) / (b.t - a.t), (b.cy - a.cy) / (b.t - a.t)
        moving = abs(vx) + abs(vy) > 1e-9
        out.append({"t0": a.t, "t1": b.t, "kind": "move" if moving else "stop", "vx": round(vx, 3),
                    "vy": round(vy, 3), "speed": round(math.hypot(vx, vy) / diag, 4)})
    return out


def wild_truth(scene: WildScene, rows: Sequence[tuple[int, int, float, float, float, float, float]] | None = None
               ) -> dict[str, Any]:
    """The truth.json content (without mp4_sha256 / gt_sha256 / render_key)."""
    rows = wild_gt_rows(scene) if rows is None else rows
    per: dict[int, list[tuple[int, float]]] = {}
    for f, oid, *_, v in rows:
        per.setdefault(oid, []).append((f, v))
    objects = []
    for o in sorted(scene.objects, key=lambda o: o.obj_id):
        seen = per.get(o.obj_id, [])
        # frame values are rounded as in gt.txt
        objects.append({
            "obj_id": o.obj_id, "label": "object", "shape": o.shape, "color": o.color, "size": o.size,
            "size_frac": round(o.size / scene.diag, 4), "w": round(o.w, 2), "h": round(o.h, 2), "z": o.z,
            "behaviour": o.behaviour,
            "moves": any((a.cx, a.cy) != (b.cx, b.cy) for a, b in zip(o.keyframes, o.keyframes[1:])),
            "shadow": None if o.shadow is None else dict(zip(("dx", "dy", "ax", "ay", "darkness"), o.shadow)),
            "first_frame": seen[0][0] if seen else None, "last_frame": seen[-1][0] if seen else None,
            "n_frames_visible": len(seen), "n_frames_hidden": sum(round(v, 3) == 0 for _, v in seen),
            "n_frames_occluded": sum(round(v, 3) < 0.5 for _, v in seen),
            "keyframes": [[k.t, k.cx, k.cy] for k in o.keyframes], "segments": _segments(o, scene.diag),
            "outline": [list(p) for p in o.outline],
        })
    g = scene.gain[: scene.n_frames]
    x0, y0, vx, vy, sigma, amp = scene.light
    return {
        "scene": scene.name, "family": FAMILY, "seed": scene.seed, "version": WILD_VERSION,
        "width": scene.width, "height": scene.height, "fps": scene.fps, "n_frames": scene.n_frames,
        "duration_s": round(scene.duration_s, 4), "background": scene.background, "noise_sigma": scene.noise,
        "gt_columns": GT_COLUMNS,
        "illumination": {"kind": scene.gain_kind, "peak_to_peak": round(max(g) - min(g), 4), "gain": list(g),
                         "light": {"x0": x0, "y0": y0, "vx": vx, "vy": vy, "sigma": sigma, "amplitude": amp}},
        "camera": {"jitter": [list(j) for j in scene.jitter[: scene.n_frames]],
                   "max_abs_px": max(max(abs(a), abs(b)) for a, b in scene.jitter[: scene.n_frames])},
        "objects": objects,
    }


# --------------------------------------------------------------------------------------------------
# Textures


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in [0, 1], base cell `cell` px, persistence 0.5."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        c = max(2.0, cell)
        gh, gw = int(h / c) + 3, int(w / c) + 3
        grid = rng.random((gh, gw), dtype=np.float32)
        big = cv2.resize(grid, (int(gw * c), int(gh * c)), interpolation=cv2.INTER_CUBIC)
        oy, ox = int(rng.integers(0, max(1, big.shape[0] - h))), int(rng.integers(0, max(1, big.shape[1] - w)))
        out += amp * big[oy : oy + h, ox : ox + w]
        total += amp
        amp *= 0.5
        cell /= 2
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _muted(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float],
           hue: float | None = None) -> np.ndarray:
    h = int(rng.uniform(0, 180)) if hue is None else int(hue) % 180
    hsv = np.array([[[h, int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(scene: WildScene, h: int, w: int) -> np.ndarray:
    """The world background (float32 RGB) of a scene, of size (h, w)."""
    rng = _rng(scene.seed, "background")
    c1 = _muted(rng, (0.04, 0.3), (0.3, 0.75))
    hue1 = float(cv2.cvtColor(c1.astype(np.uint8)[None, None], cv2.COLOR_RGB2HSV)[0, 0, 0])
    c2 = _muted(rng, (0.04, 0.3), (0.25, 0.8), hue=hue1 + rng.uniform(-20, 20))
    mix = _value_noise(rng, h, w, float(rng.uniform(60, 160)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = scene.background
    if kind == "noise":
        lum = 0.75 + 0.5 * _value_noise(rng, h, w, float(rng.uniform(8, 24)), 3)
    elif kind in ("planks", "tiles"):
        th = float(rng.uniform(0, math.pi)) if kind == "planks" else float(rng.uniform(-0.3, 0.3))
        u = xx * math.cos(th) + yy * math.sin(th)
        v = -xx * math.sin(th) + yy * math.cos(th)
        pu = float(rng.uniform(14, 60))
        iu = np.floor(u / pu).astype(np.int64)
        shades = rng.uniform(0.8, 1.2, 4096).astype(np.float32)
        if kind == "planks":
            ids = iu
            grain = _value_noise(rng, h, w, 6.0, 2)  # streaks along the planks: blur across them
            grain = cv2.GaussianBlur(grain, (0, 0), sigmaX=1.0 + 6 * abs(math.cos(th)),
                                     sigmaY=1.0 + 6 * abs(math.sin(th)))
            lum = shades[ids % 4096] * (0.9 + 0.2 * grain)
            gap = np.abs((u / pu) - np.round(u / pu)) * pu < 1.0
        else:
            pv = pu * float(rng.uniform(0.8, 1.6))
            iv = np.floor(v / pv).astype(np.int64)
            lum = shades[(iu * 131 + iv * 7919) % 4096] * (0.92 + 0.16 * _value_noise(rng, h, w, 10.0, 2))
            gap = (np.abs((u / pu) - np.round(u / pu)) * pu < 1.2) | (np.abs((v / pv) - np.round(v / pv)) * pv < 1.2)
        lum = np.where(gap, lum * 0.6, lum).astype(np.float32)
    else:  # blotches
        blot = np.zeros((h, w), np.float32)
        for _ in range(int(h * w / 900)):
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            ax, ay = int(rng.integers(2, 18)), int(rng.integers(2, 18))
            shade = float(rng.uniform(-0.35, 0.35))
            cv2.ellipse(blot, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, shade, -1)
        lum = (1.0 + cv2.GaussianBlur(blot, (0, 0), float(rng.uniform(0.8, 2.5)))).astype(np.float32)
    img = (c1 * (1 - mix[..., None]) + c2 * mix[..., None]) * lum[..., None]
    for _ in range(int(rng.integers(0, 5))):  # static muted clutter: mats, posts, patches
        col = tuple(float(v) for v in _muted(rng, (0.0, 0.35), (0.15, 0.85)))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            half = (int(rng.integers(8, w // 6)), int(rng.integers(4, h // 5)))
            rect = ((float(cx), float(cy)), (2.0 * half[0], 2.0 * half[1]), float(rng.uniform(0, 180)))
            cv2.fillPoly(img, [cv2.boxPoints(rect).astype(np.int32)], col, lineType=cv2.LINE_AA)
        else:
            cv2.circle(img, (cx, cy), int(rng.integers(6, h // 6)), col, -1, lineType=cv2.LINE_AA)
    img += rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)  # fine static grain
    return img.astype(np.float32)


def _object_rgba(o: WildObject, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGBA (float32) sprite of an object: its colour modulated by its own texture, shading and grain."""
    sh, sw = alpha.shape
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    kind = str(rng.choice(["noise", "stripes", "spots", "plain"]))
    s = max(4.0, o.size)
    if kind == "noise":
        m = 0.8 + 0.35 * _value_noise(rng, sh, sw, float(rng.uniform(0.15, 0.4)) * s, 3)
    elif kind == "stripes":
        th = float(rng.uniform(0, math.pi))
        period = s / float(rng.uniform(2.5, 6.0))
        wave = np.sin((xx * math.cos(th) + yy * math.sin(th)) * 2 * math.pi / period)
        m = 0.95 + 0.15 * np.tanh(3 * wave)
    elif kind == "spots":
        m = np.ones((sh, sw), np.float32)
        for _ in range(int(rng.integers(3, 10))):
            r = max(1, int(s * rng.uniform(0.05, 0.15)))
            cv2.circle(m, (int(rng.integers(0, sw)), int(rng.integers(0, sh))), r, float(rng.choice([0.72, 1.18])), -1,
                       lineType=cv2.LINE_AA)
    else:
        m = np.ones((sh, sw), np.float32)
    ang = float(rng.uniform(0, 2 * math.pi))  # shading: light from one side
    shade = 1 + 0.1 * ((xx - sw / 2) * math.cos(ang) + (yy - sh / 2) * math.sin(ang)) / (s / 2)
    m = m * shade + rng.normal(0, 0.035, (sh, sw)).astype(np.float32)
    rgb = np.asarray(COLORS[o.color], np.float32) * m[..., None] + rng.normal(0, 3, (1, 1, 3)).astype(np.float32)
    return np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.float32)


def _shadow_sprite(o: WildObject) -> tuple[int, int, np.ndarray, float] | None:
    """(ox, oy, mask, darkness): a soft ellipse relative to the object's centre."""
    if o.shadow is None:
        return None
    dx, dy, ax, ay, dark = o.shadow
    blur = max(1.0, 0.12 * o.size)
    r = int(math.ceil(max(ax, ay) + 3 * blur)) + 1
    mask = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    axes = (max(1, int(round(ax))), max(1, int(round(ay))))
    cv2.ellipse(mask, (r, r), axes, 0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    soft = np.asarray(cv2.GaussianBlur(mask, (0, 0), blur), np.float32)
    return int(round(dx)) - r, int(round(dy)) - r, soft, dark


def render_wild_frames(scene: WildScene) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for every frame of the scene."""
    lay = _Layout(scene)
    W, H = scene.width, scene.height
    world = _background(scene, H + 2 * _PAD, W + 2 * _PAD)
    sprites = {o.obj_id: _object_rgba(o, lay.sprites[o.obj_id][2], _rng(scene.seed, "texture", o.obj_id))
               for o in lay.objs}
    shadows = {o.obj_id: _shadow_sprite(o) for o in lay.objs}
    by_z = sorted(lay.objs, key=lambda o: o.z)
    x0, y0, vx, vy, sigma, amp = scene.light
    q = 8  # the light field is smooth: compute it at 1/8 resolution
    gy, gx = np.mgrid[0 : H // q + 1, 0 : W // q + 1].astype(np.float32) * q
    for i in range(scene.n_frames):
        t = i / scene.fps
        jx, jy = scene.jitter[i]
        m = np.array([[1, 0, _PAD - jx], [0, 1, _PAD - jy]], np.float32)
        img = np.asarray(cv2.warpAffine(world, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_REFLECT), np.float32)
        for o in by_z:  # shadows lie on the ground, under every object
            sd = shadows[o.obj_id]
            if sd is None:
                continue
            sx, sy, mask, dark = sd
            cx, cy = lay.centre(o, i)
            px, py = int(round(cx)) + sx, int(round(cy)) + sy
            a0, b0 = max(0, px), max(0, py)
            a1, b1 = min(W, px + mask.shape[1]), min(H, py + mask.shape[0])
            if a1 > a0 and b1 > b0:
                img[b0:b1, a0:a1] *= (1 - dark * mask[b0 - py : b1 - py, a0 - px : a1 - px])[..., None]
        for o in by_z:
            placed = lay.place(o, i, sprites[o.obj_id])
            if placed is None:
                continue
            x, y, patch = placed
            h, w = patch.shape[:2]
            a = patch[..., 3:4]
            roi = img[y : y + h, x : x + w]
            roi *= 1 - a
            roi += patch[..., :3] * a
        d2 = (gx - (x0 + vx * t)) ** 2 + (gy - (y0 + vy * t)) ** 2
        small = scene.gain[i] * (1 + amp * (2 * np.exp(-d2 / (2 * sigma * sigma)) - 1))
        light = cv2.resize(small.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
        img *= light[..., None]
        img += _rng(scene.seed, "noise", i).standard_normal((H, W, 3), dtype=np.float32) * scene.noise
        yield i, np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Files


def _encode(scene: WildScene, path: Path) -> None:
    """H.264 mp4 with generator.py's encoder settings; frame i has pts i in time base 1/fps."""
    write_h264(path, render_wild_frames(scene), scene.width, scene.height, scene.rate)


def _render_key(scene: WildScene) -> str:
    payload = json.dumps(
        {"scene": asdict(scene), "family": FAMILY, "version": WILD_VERSION, "av": av.__version__,
         "libs": {k: list(v) for k, v in av.library_versions.items()}, "enc": ENCODER_OPTIONS,
         "threads": ENCODER_THREADS, "cv2": cv2.__version__},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _paths(name: str, out_dir: Path) -> tuple[Path, Path, Path]:
    return out_dir / f"{name}.mp4", out_dir / f"{name}.gt.txt", out_dir / f"{name}.truth.json"


def _up_to_date(scene: WildScene, out_dir: Path) -> bool:
    mp4, gt, truth_path = _paths(scene.name, out_dir)
    if not (mp4.exists() and gt.exists() and truth_path.exists()):
        return False
    try:
        truth = json.loads(truth_path.read_text())
    except ValueError:
        return False
    return (truth.get("render_key") == _render_key(scene) and truth.get("mp4_sha256") == _sha256(mp4)
            and truth.get("gt_sha256") == _sha256(gt))


def render_wild_scene(scene: WildScene, out_dir: Path, force: bool = False) -> WildTruth:
    """Write <name>.mp4, <name>.gt.txt and <name>.truth.json into out_dir.  Skipped when the three files are there
    and truth.json records this scene, build and the files' hashes (unless force); files are replaced atomically
    and only when their content changes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4, gt, truth_path = _paths(scene.name, out_dir)
    if not force and _up_to_date(scene, out_dir):
        return WildTruth(mp4, gt, truth_path, json.loads(truth_path.read_text()))
    rows = wild_gt_rows(scene)
    truth = wild_truth(scene, rows)
    truth["mp4_sha256"] = encode_if_changed(mp4, lambda tmp: _encode(scene, tmp))
    _write_text_if_changed(gt, _gt_text(rows))
    truth["gt_sha256"] = _sha256(gt)
    truth["render_key"] = _render_key(scene)
    _write_text_if_changed(truth_path, json.dumps(truth, indent=1) + "\n")
    return WildTruth(mp4, gt, truth_path, truth)


def render_wild(seed: int, out_dir: Path, force: bool = False) -> WildTruth:
    """Render the scene of a seed (``wild_scene(seed)``) into out_dir; see render_wild_scene."""
    return render_wild_scene(wild_scene(seed), out_dir, force)


def make_wild_videos(out_dir: Path, seeds: Sequence[int] = WILD_DEV_SEEDS) -> list[Path]:
    """Render the scenes of `seeds` (default: the development set) into out_dir, skipping those already up to date;
    returns the mp4 paths in the order of `seeds`."""
    return [render_wild(s, out_dir).mp4 for s in seeds]
