"""Deterministic synthetic scenes: textured objects with KNOWN motion, rendered to H.264 mp4.

Used by ``fm demo``, tests and benchmarks.  ``render_scene`` writes three files per scene::

    <name>.mp4         H.264 (libx264 C code, yuv420p, crf 18, preset veryfast, one thread), frame i
                       has pts i in time base 1/fps, so its presentation time is exactly i / fps.
    <name>.gt.txt      MOTChallenge ground truth ``frame,id,x,y,w,h,1,-1,-1,-1``: frame is 1-based over the
                       video's frames, (x, y) the top-left corner and (w, h) the size in pixels, one line per
                       visible object per frame, sorted by frame then id.
    <name>.facts.json  motion facts computed exactly from the keyframes (never from pixels), defined below.

Same spec + seed -> byte-identical mp4 (fixed encoder options, one encoder thread, no wall-clock metadata,
bit-exact muxing), given the same PyAV/FFmpeg/x264 build.

Motion model
------------
An object's centre (cx, cy) and scale are piecewise linear between its keyframes and held constant before
the first and after the last keyframe.  Its box is ``w*scale x h*scale`` centred on (cx, cy).  It is visible
on frame i (time t = i / fps) when ``appear_s <= t`` and (``disappear_s`` is None or ``t < disappear_s``).
Image y points down.  ``camera_pan`` is the on-screen velocity of the background in px/s (objects stay in
screen coordinates); at each time in ``cuts_s`` the background switches to a new texture with a different
seed and mean colour.

Facts (``facts.json``)
----------------------
Top level: scene, seed, width, height, fps, n_frames (= round(duration_s * fps)), duration_s
(= n_frames / fps), camera_pan, cuts_s, objects, pairs; plus mp4_sha256 and render_key (used to skip
re-renders).  Every object fact is computed over its *visible window* ``[appear_s, min(disappear_s,
duration_s)]``; times are seconds from the start of the video, lengths are normalised as stated:

- ``segments``: the window cut at keyframe times into linear pieces; a piece is ``"move"`` when the centre
  or the scale changes, else ``"stop"``; adjacent pieces of the same kind and direction are merged.  Each is
  ``{t0, t1, kind, direction}``; a stop's direction is ``"stationary"``, a move's direction is classified
  like the overall direction below but without the stationary threshold.
- ``onset_s`` / ``end_s``: start of the first / end of the last move segment (null if it never moves).
- ``direction``: from the net change between window start and end.  ``"toward"`` / ``"away"`` when the
  scale ratio end/start is > 1.25 / < 1/1.25 and the centre moves < 5 % of the frame diagonal;
  else ``"stationary"`` when the centre moves < 2 % of the diagonal (an object that goes and comes back is
  therefore stationary by this definition: see ``distance`` and ``repetitions``); else one of eight
  45-degree sectors of the angle of (dx, -dy): right, up-right, up, up-left, left, down-left, down,
  down-right (each sector centred on its axis, so "right" covers -22.5..22.5 degrees).
- ``dx``, ``dy``: net centre displacement divided by width / height (dy > 0 means down).
- ``distance``: path length of the centre divided by the frame diagonal.
- ``moved``: distance >= 2 % of the diagonal, or the scale changed by more than 25 % at some point.
- ``start_region`` / ``end_region``: cell of the centre on a 3x3 grid of the frame at window start / end:
  top-left, top, top-right, left, center, right, bottom-left, bottom, bottom-right.
- ``n_stops``: stop segments lasting >= 0.5 s with a move segment before and after.
- ``repetitions``: back-and-forth cycles.  Of the three coordinates x, y and size (= scale * object
  diagonal, in px), take the one with the largest total variation over the window; split its piecewise-
  linear course into monotone legs; drop legs shorter than 1 % of the frame diagonal; collapse equal
  neighbouring signs into runs; repetitions = runs // 2 (a cycle = going one way and coming back, so
  right-left-right-left-right-left gives 3, and right-left-right gives 1).
- ``mean_speed``: distance / total duration of the move segments (diagonals per second; 0 if never moves).
- Also: obj_id, label, color, shape, w, h, appear_s, disappear_s, scale_start, scale_end, keyframes.

``pairs``: for each ordered pair (a, b), a != b, of objects that both move:
``{a, b, a_starts_first: onset_a < onset_b, a_ends_first: end_a < end_b, onset_gap_s: onset_b - onset_a}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from fm_assets.labels.vocab import (
    COLORS,
    MIN_STOP_S,
    REPETITION_MIN_FRAC,
    SCALE_RATIO,
    STATIONARY_FRAC,
    classify_direction,
    region,
)

GENERATOR_VERSION = 1

# Low-saturation background tints, alternating dark / light so that cuts are visually obvious.
_BG_TINTS: tuple[tuple[int, int, int], ...] = (
    (122, 118, 110),
    (64, 72, 84),
    (182, 172, 150),
    (80, 96, 78),
    (165, 160, 172),
    (92, 80, 74),
)


@dataclass(frozen=True)
class Keyframe:
    """Object centre (pixels) and scale at time t (seconds)."""

    t: float
    cx: float
    cy: float
    scale: float = 1.0


@dataclass(frozen=True)
class ObjectSpec:
    """One object: appearance plus piecewise-linear motion between keyframes."""

    obj_id: int
    label: str
    color: str
    shape: str  # "box" or "disc"
    w: float
    h: float
    keyframes: tuple[Keyframe, ...]
    appear_s: float = 0.0
    disappear_s: float | None = None


@dataclass(frozen=True)
class SceneSpec:
    """A scene: frame geometry, duration, objects, camera pan (background px/s) and hard cuts."""

    name: str
    width: int = 640
    height: int = 480
    fps: float = 25.0
    duration_s: float = 8.0
    objects: tuple[ObjectSpec, ...] = ()
    camera_pan: tuple[float, float] = (0.0, 0.0)
    cuts_s: tuple[float, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)


@dataclass(frozen=True)
class SceneTruth:
    """What ``render_scene`` wrote."""

    mp4: Path
    gt: Path
    facts_path: Path
    facts: dict[str, Any] = field(compare=False)


# --------------------------------------------------------------------------------------------------
# Standard scenes


def _kf(*rows: tuple[float, ...]) -> tuple[Keyframe, ...]:
    return tuple(Keyframe(*r) for r in rows)


def standard_scenes() -> list[SceneSpec]:
    """The scenes ``fm demo`` renders: 640x480 @ 25 fps, 8-10 s, objects always fully inside the frame."""
    return [
        SceneSpec(
            name="left_right",
            duration_s=8.0,
            objects=(
                ObjectSpec(1, "box", "red", "box", 80, 60, _kf((0.5, 520, 140), (6.5, 120, 140))),
                ObjectSpec(2, "ball", "blue", "disc", 70, 70, _kf((1.0, 110, 340), (7.0, 530, 340))),
            ),
        ),
        SceneSpec(
            name="up_down",
            duration_s=8.0,
            objects=(
                ObjectSpec(1, "box", "green", "box", 70, 90, _kf((0.5, 180, 390), (6.5, 180, 90))),
                ObjectSpec(2, "ball", "orange", "disc", 80, 80, _kf((1.0, 460, 90), (7.0, 460, 390))),
            ),
        ),
        SceneSpec(
            name="toward_away",
            duration_s=8.0,
            objects=(
                ObjectSpec(1, "box", "purple", "box", 90, 70, _kf((0.5, 170, 240, 0.6), (6.5, 172, 242, 1.9))),
                ObjectSpec(2, "ball", "yellow", "disc", 100, 100, _kf((1.0, 470, 240, 1.8), (7.0, 468, 238, 0.6))),
            ),
        ),
        SceneSpec(
            name="stop_and_go",
            duration_s=10.0,
            objects=(
                ObjectSpec(
                    1, "ball", "red", "disc", 70, 70,
                    _kf((0.5, 90, 300), (3.0, 300, 300), (4.5, 300, 300), (6.5, 470, 300), (7.5, 470, 300),
                        (9.0, 470, 120)),
                ),
            ),
        ),
        SceneSpec(
            name="back_and_forth",
            duration_s=10.0,
            objects=(
                ObjectSpec(
                    1, "box", "cyan", "box", 70, 70,
                    _kf(*[(0.5 + 1.5 * k, 150 if k % 2 == 0 else 490, 240) for k in range(7)]),
                ),
            ),
        ),
        SceneSpec(
            name="late_entry",
            duration_s=8.0,
            objects=(
                ObjectSpec(1, "box", "blue", "box", 80, 60, _kf((0.5, 120, 120), (7.5, 360, 120))),
                ObjectSpec(
                    2, "ball", "green", "disc", 70, 70, _kf((4.0, 520, 350), (7.5, 200, 350)), appear_s=3.5
                ),
            ),
        ),
        SceneSpec(
            name="ordered_pair",
            duration_s=8.0,
            objects=(
                ObjectSpec(1, "box", "red", "box", 80, 60, _kf((0.5, 100, 130), (3.0, 380, 130))),
                ObjectSpec(2, "ball", "blue", "disc", 70, 70, _kf((4.0, 540, 340), (6.5, 260, 340))),
            ),
        ),
    ]


def extra_scenes() -> list[SceneSpec]:
    """Scenes for camera-motion and shot-cut handling (not rendered by default)."""
    return [
        SceneSpec(
            name="camera_pan",
            duration_s=8.0,
            camera_pan=(-40.0, 0.0),
            objects=(ObjectSpec(1, "box", "orange", "box", 80, 60, _kf((0.5, 320, 100), (7.0, 320, 380))),),
        ),
        SceneSpec(
            name="shot_cut",
            duration_s=8.0,
            cuts_s=(4.0,),
            objects=(ObjectSpec(1, "ball", "magenta", "disc", 70, 70, _kf((0.5, 100, 240), (7.5, 540, 240))),),
        ),
    ]


def all_scenes() -> list[SceneSpec]:
    return standard_scenes() + extra_scenes()


def scene_by_name(name: str) -> SceneSpec:
    for spec in all_scenes():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown scene {name!r}; known: {[s.name for s in all_scenes()]}")


# --------------------------------------------------------------------------------------------------
# Motion model and ground truth


def object_state(obj: ObjectSpec, t: float) -> tuple[float, float, float]:
    """(cx, cy, scale) at time t: linear between keyframes, held before the first / after the last."""
    kfs = obj.keyframes
    if t <= kfs[0].t:
        k = kfs[0]
        return k.cx, k.cy, k.scale
    for a, b in zip(kfs, kfs[1:]):
        if t == b.t:
            return b.cx, b.cy, b.scale
        if t < b.t:
            u = (t - a.t) / (b.t - a.t)
            return a.cx + u * (b.cx - a.cx), a.cy + u * (b.cy - a.cy), a.scale + u * (b.scale - a.scale)
    k = kfs[-1]
    return k.cx, k.cy, k.scale


def _visible(obj: ObjectSpec, t: float) -> bool:
    return t >= obj.appear_s and (obj.disappear_s is None or t < obj.disappear_s)


def _box(obj: ObjectSpec, t: float) -> tuple[float, float, float, float]:
    cx, cy, s = object_state(obj, t)
    w, h = obj.w * s, obj.h * s
    return cx - w / 2, cy - h / 2, w, h


def gt_rows(spec: SceneSpec) -> list[tuple[int, int, float, float, float, float]]:
    """MOTChallenge rows (frame 1-based, id, x, y, w, h), sorted by frame then id."""
    rows = []
    for i in range(spec.n_frames):
        t = float(Fraction(i) / spec.rate)
        for obj in sorted(spec.objects, key=lambda o: o.obj_id):
            if _visible(obj, t):
                rows.append((i + 1, obj.obj_id, *_box(obj, t)))
    return rows


def _validate(spec: SceneSpec) -> None:
    if not spec.name or any(c in spec.name for c in "/\\ :*?\"<>|"):
        raise ValueError(f"scene name must be filesystem-safe: {spec.name!r}")
    if spec.width % 2 or spec.height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    if spec.fps <= 0 or spec.duration_s <= 0:
        raise ValueError("fps and duration_s must be positive")
    ids = [o.obj_id for o in spec.objects]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate obj_id")
    for o in spec.objects:
        if o.color not in COLORS:
            raise ValueError(f"unknown colour {o.color!r}; known: {sorted(COLORS)}")
        if o.shape not in ("box", "disc"):
            raise ValueError(f"shape must be 'box' or 'disc', not {o.shape!r}")
        if not o.keyframes or any(b.t < a.t for a, b in zip(o.keyframes, o.keyframes[1:])):
            raise ValueError(f"object {o.obj_id}: keyframes must be non-empty and sorted by t")
        if o.w <= 0 or o.h <= 0 or any(k.scale <= 0 for k in o.keyframes):
            raise ValueError(f"object {o.obj_id}: sizes and scales must be positive")


# --------------------------------------------------------------------------------------------------
# Facts


def _segments(obj: ObjectSpec, t0: float, t1: float, diag: float) -> list[dict[str, Any]]:
    """Linear pieces of the visible window, classified move / stop and merged."""
    cuts = sorted({t0, t1, *(k.t for k in obj.keyframes if t0 < k.t < t1)})
    out: list[dict[str, Any]] = []
    for a, b in zip(cuts, cuts[1:]):
        (xa, ya, sa), (xb, yb, sb) = object_state(obj, a), object_state(obj, b)
        moving = max(abs(xb - xa), abs(yb - ya), abs(sb - sa)) > 1e-9
        kind = "move" if moving else "stop"
        direction = classify_direction(xb - xa, yb - ya, sb / sa, diag, 0.0) if moving else "stationary"
        if out and out[-1]["kind"] == kind and out[-1]["direction"] == direction:
            out[-1]["t1"] = b
        else:
            out.append({"t0": a, "t1": b, "kind": kind, "direction": direction})
    return out


def _repetitions(obj: ObjectSpec, states: list[tuple[float, float, float]], diag: float) -> int:
    """Back-and-forth cycles along the dominant coordinate (x, y or size), from the linear pieces."""
    size = math.hypot(obj.w, obj.h)
    coords = [(x, y, s * size) for x, y, s in states]
    deltas = [tuple(b[c] - a[c] for c in range(3)) for a, b in zip(coords, coords[1:])]
    if not deltas:
        return 0
    axis = max(range(3), key=lambda c: sum(abs(d[c]) for d in deltas))
    legs: list[float] = []  # signed amplitude of each monotone run along the axis
    for d in (d[axis] for d in deltas if abs(d[axis]) > 1e-9):
        if legs and (legs[-1] > 0) == (d > 0):
            legs[-1] += d
        else:
            legs.append(d)
    signs = [leg > 0 for leg in legs if abs(leg) >= REPETITION_MIN_FRAC * diag]
    runs = sum(1 for i, sign in enumerate(signs) if i == 0 or sign != signs[i - 1])
    return runs // 2


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def object_facts(obj: ObjectSpec, spec: SceneSpec) -> dict[str, Any]:
    """Facts of one object over its visible window (see the module docstring)."""
    width, height = spec.width, spec.height
    diag = math.hypot(width, height)
    duration = spec.n_frames / float(spec.rate)
    t0 = max(0.0, obj.appear_s)
    t1 = min(duration, obj.disappear_s if obj.disappear_s is not None else duration)
    t1 = max(t0, t1)
    segs = _segments(obj, t0, t1, diag)
    moves = [s for s in segs if s["kind"] == "move"]
    (xa, ya, sa), (xb, yb, sb) = object_state(obj, t0), object_state(obj, t1)
    # exact path length: sum over the linear pieces between keyframes
    cuts = sorted({t0, t1, *(k.t for k in obj.keyframes if t0 < k.t < t1)})
    pts = [object_state(obj, t) for t in cuts]
    path_px = sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(pts, pts[1:]))
    scales = [p[2] for p in pts]
    moving_time = sum(m["t1"] - m["t0"] for m in moves)
    n_stops = sum(
        1
        for i, s in enumerate(segs)
        if s["kind"] == "stop" and s["t1"] - s["t0"] >= MIN_STOP_S
        and any(p["kind"] == "move" for p in segs[:i]) and any(n["kind"] == "move" for n in segs[i + 1:])
    )
    distance = path_px / diag
    return {
        "obj_id": obj.obj_id,
        "label": obj.label,
        "color": obj.color,
        "shape": obj.shape,
        "w": obj.w,
        "h": obj.h,
        "appear_s": _r(obj.appear_s),
        "disappear_s": _r(obj.disappear_s),
        "onset_s": _r(moves[0]["t0"]) if moves else None,
        "end_s": _r(moves[-1]["t1"]) if moves else None,
        "segments": [
            {"t0": _r(s["t0"]), "t1": _r(s["t1"]), "kind": s["kind"], "direction": s["direction"]} for s in segs
        ],
        "direction": classify_direction(xb - xa, yb - ya, sb / sa, diag),
        "dx": _r((xb - xa) / width),
        "dy": _r((yb - ya) / height),
        "distance": _r(distance),
        "moved": bool(distance >= STATIONARY_FRAC or max(scales) / min(scales) > SCALE_RATIO),
        "start_region": region(xa, ya, width, height),
        "end_region": region(xb, yb, width, height),
        "n_stops": n_stops,
        "repetitions": _repetitions(obj, pts, diag),
        "mean_speed": _r(distance / moving_time if moving_time > 0 else 0.0),
        "scale_start": _r(sa),
        "scale_end": _r(sb),
        "keyframes": [asdict(k) for k in obj.keyframes],
    }


def scene_facts(spec: SceneSpec, seed: int = 0) -> dict[str, Any]:
    """The facts.json content (without mp4_sha256 / render_key), computed from the keyframes."""
    _validate(spec)
    objects = [object_facts(o, spec) for o in sorted(spec.objects, key=lambda o: o.obj_id)]
    movers = [o for o in objects if o["onset_s"] is not None]
    pairs = [
        {
            "a": a["obj_id"],
            "b": b["obj_id"],
            "a_starts_first": a["onset_s"] < b["onset_s"],
            "a_ends_first": a["end_s"] < b["end_s"],
            "onset_gap_s": _r(b["onset_s"] - a["onset_s"]),
        }
        for a in movers
        for b in movers
        if a is not b
    ]
    return {
        "scene": spec.name,
        "seed": seed,
        "width": spec.width,
        "height": spec.height,
        "fps": spec.fps,
        "n_frames": spec.n_frames,
        "duration_s": _r(spec.n_frames / float(spec.rate)),
        "camera_pan": list(spec.camera_pan),
        "cuts_s": list(spec.cuts_s),
        "objects": objects,
        "pairs": pairs,
    }


# --------------------------------------------------------------------------------------------------
# Rendering


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    key = [seed & 0xFFFFFFFF] + [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(key)


def _background(h: int, w: int, rng: np.random.Generator, tint: tuple[int, int, int]) -> np.ndarray:
    """Smooth but textured low-saturation RGB image: multi-scale noise + soft blobs + fine grain."""
    lum = np.zeros((h, w), np.float32)
    for cell, weight in ((96, 0.45), (32, 0.3), (9, 0.25)):
        small = rng.random((h // cell + 3, w // cell + 3), dtype=np.float32)
        big = cv2.resize(small, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
        lum += weight * big[cell : cell + h, cell : cell + w]
    blobs = np.zeros((h, w), np.float32)
    for _ in range(int(h * w / 6000)):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(6, 40)), int(rng.integers(6, 40))
        cv2.ellipse(blobs, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-0.5, 0.5)), -1)
    lum += cv2.GaussianBlur(blobs, (0, 0), 2.0)
    lum = (lum - lum.min()) / max(1e-6, float(lum.max() - lum.min()))
    chroma = cv2.resize(rng.normal(0, 4, (h // 64 + 2, w // 64 + 2, 3)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    img = np.asarray(tint, np.float32) * (0.45 + 1.1 * lum)[..., None] + chroma
    return np.clip(img, 0, 255).astype(np.uint8)


class _Sprite:
    """An object's RGBA appearance at its largest scale, with a mip pyramid for shrinking."""

    def __init__(self, obj: ObjectSpec, rng: np.random.Generator) -> None:
        smax = max(k.scale for k in obj.keyframes)
        sw, sh = max(4, int(math.ceil(obj.w * smax))), max(4, int(math.ceil(obj.h * smax)))
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        stripe = max(4.0, min(sw, sh) / 6)
        shade = 0.82 + 0.18 * np.sign(np.sin((xx + yy) * math.pi / stripe))  # diagonal stripes
        shade += rng.uniform(-0.06, 0.06, (sh, sw)).astype(np.float32)  # grain, for optical-flow corners
        alpha = np.zeros((sh, sw), np.float32)
        edge = max(2, int(round(min(sw, sh) * 0.06)))
        if obj.shape == "box":
            alpha[:] = 1.0
            inner = np.zeros((sh, sw), np.float32)
            inner[edge:-edge, edge:-edge] = 1.0
        else:  # anti-aliased ellipse inscribed in the sprite: alpha from the normalised radius
            rad = np.hypot((xx + 0.5 - sw / 2) / (sw / 2), (yy + 0.5 - sh / 2) / (sh / 2))
            alpha = np.clip(0.5 - (rad - 1.0) * min(sw, sh) / 2, 0.0, 1.0).astype(np.float32)
            inner = (rad < 1.0 - 2.0 * edge / min(sw, sh)).astype(np.float32)
        shade = np.where(inner > 0.5, shade, 0.6)  # darker rim
        rgb = np.asarray(COLORS[obj.color], np.float32) * shade[..., None]
        levels = [np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.float32)]
        while min(levels[-1].shape[:2]) >= 16:
            lv = levels[-1]
            levels.append(cv2.resize(lv, ((lv.shape[1] + 1) // 2, (lv.shape[0] + 1) // 2), interpolation=cv2.INTER_AREA))
        self.levels = levels

    def draw(self, frame: np.ndarray, x0: float, y0: float, bw: float, bh: float) -> None:
        """Alpha-blend the sprite into ``frame`` so it covers exactly [x0, x0+bw] x [y0, y0+bh]."""
        hgt, wid = frame.shape[:2]
        lv = self.levels[0]
        for cand in self.levels:
            if cand.shape[1] >= bw and cand.shape[0] >= bh:
                lv = cand
        sh, sw = lv.shape[:2]
        rx0, ry0 = max(0, int(math.floor(x0)) - 1), max(0, int(math.floor(y0)) - 1)
        rx1, ry1 = min(wid, int(math.ceil(x0 + bw)) + 1), min(hgt, int(math.ceil(y0 + bh)) + 1)
        if rx1 <= rx0 or ry1 <= ry0:
            return
        kx, ky = bw / sw, bh / sh
        # sprite pixel centre u+0.5 lands on frame coordinate x0 + (u+0.5)*kx, i.e. pixel index ... - 0.5
        m = np.float32([[kx, 0, x0 + 0.5 * kx - 0.5 - rx0], [0, ky, y0 + 0.5 * ky - 0.5 - ry0]])
        patch = cv2.warpAffine(lv, m, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        a = patch[..., 3:4]
        roi = frame[ry0:ry1, rx0:rx1].astype(np.float32)
        frame[ry0:ry1, rx0:rx1] = np.clip(roi * (1 - a) + patch[..., :3] * a + 0.5, 0, 255).astype(np.uint8)


class _Backdrop:
    """Background textures (one per shot) and their per-frame crop under camera pan."""

    def __init__(self, spec: SceneSpec, seed: int) -> None:
        self.spec = spec
        px, py = spec.camera_pan
        dur = spec.duration_s
        self.ox, self.oy = max(0.0, px * dur) + 1, max(0.0, py * dur) + 1
        tw = spec.width + int(math.ceil(abs(px) * dur)) + 4
        th = spec.height + int(math.ceil(abs(py) * dur)) + 4
        base = int(_rng(seed, spec.name, "tint").integers(0, len(_BG_TINTS)))
        self.textures = [
            _background(th, tw, _rng(seed, spec.name, "bg", k), _BG_TINTS[(base + k) % len(_BG_TINTS)])
            for k in range(len(spec.cuts_s) + 1)
        ]

    def frame(self, t: float) -> np.ndarray:
        spec = self.spec
        tex = self.textures[sum(1 for c in sorted(spec.cuts_s) if t >= c)]
        u0, v0 = self.ox - spec.camera_pan[0] * t, self.oy - spec.camera_pan[1] * t
        if u0 == int(u0) and v0 == int(v0):
            return tex[int(v0) : int(v0) + spec.height, int(u0) : int(u0) + spec.width].copy()
        m = np.float32([[1, 0, u0], [0, 1, v0]])
        return cv2.warpAffine(tex, m, (spec.width, spec.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def render_frames(spec: SceneSpec, seed: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for every frame of the scene."""
    _validate(spec)
    backdrop = _Backdrop(spec, seed)
    objs = sorted(spec.objects, key=lambda o: o.obj_id)
    sprites = {o.obj_id: _Sprite(o, _rng(seed, spec.name, "obj", o.obj_id)) for o in objs}
    for i in range(spec.n_frames):
        t = float(Fraction(i) / spec.rate)
        img = backdrop.frame(t)
        for o in objs:
            if _visible(o, t):
                sprites[o.obj_id].draw(img, *_box(o, t))
        yield i, img


# x264's C code, one thread: with its SIMD code (this libx264 build, AVX-512 CPU) the same frames encoded twice in
# one process gave different bytes (decoded pixels off by up to 4 grey levels from the second frame on, with one
# thread or two) whenever the frames were rendered between encoder calls, so a seed did not fix its video. The C
# code gives the same bytes every time and on every CPU, at about 4x the encoding time (0.3 -> 1.3 s for 81
# 640x480 frames).
ENCODER_OPTIONS = {"crf": "18", "preset": "veryfast", "x264-params": "asm=0"}
ENCODER_THREADS = 1


def _encode(spec: SceneSpec, seed: int, path: Path) -> None:
    """Write the scene as H.264 mp4; frame i has pts i in time base 1/fps."""
    write_h264(path, render_frames(spec, seed), spec.width, spec.height, spec.rate)


def write_h264(path: Path, frames: Iterator[tuple[int, np.ndarray]], width: int, height: int, rate: Fraction) -> None:
    """H.264 mp4 of RGB frames (index, image) with the fixed encoder settings above (bit-exact muxing, one
    thread: the same frames give the same bytes); frame i has pts i in time base 1 / rate."""
    with av.open(str(path), "w", format="mp4", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate, options=dict(ENCODER_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.thread_count = ENCODER_THREADS  # no frame threading: see ENCODER_THREADS
        for i, img in frames:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encode_if_changed(mp4: Path, encode: Callable[[Path], None]) -> str:
    """encode(tmp) into a temporary file beside `mp4`, moved over it unless it already holds the same bytes (so
    mtimes stay put on identical re-renders); the mp4's sha256."""
    tmp = mp4.with_name(f".{mp4.name}.tmp")
    try:
        encode(tmp)
        digest = _sha256(tmp)
        if mp4.exists() and _sha256(mp4) == digest:
            tmp.unlink()
        else:
            os.replace(tmp, mp4)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def _render_key(spec: SceneSpec, seed: int) -> str:
    payload = json.dumps(
        {"spec": asdict(spec), "seed": seed, "gen": GENERATOR_VERSION, "av": av.__version__,
         "libs": {k: list(v) for k, v in av.library_versions.items()}, "enc": ENCODER_OPTIONS},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _write_text_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _paths(spec: SceneSpec, out_dir: Path) -> tuple[Path, Path, Path]:
    return out_dir / f"{spec.name}.mp4", out_dir / f"{spec.name}.gt.txt", out_dir / f"{spec.name}.facts.json"


def render_scene(spec: SceneSpec, out_dir: Path, seed: int = 0) -> SceneTruth:
    """Render ``spec`` to <out_dir>/<name>.mp4 with its .gt.txt and .facts.json; files are replaced
    atomically and only when their content changes (so mtimes stay put on identical re-renders)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4, gt, facts_path = _paths(spec, out_dir)
    facts = scene_facts(spec, seed)
    facts["mp4_sha256"] = encode_if_changed(mp4, lambda tmp: _encode(spec, seed, tmp))
    facts["render_key"] = _render_key(spec, seed)
    lines = "".join(f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1\n" for f, i, x, y, w, h in gt_rows(spec))
    _write_text_if_changed(gt, lines)
    _write_text_if_changed(facts_path, json.dumps(facts, indent=2) + "\n")
    return SceneTruth(mp4=mp4, gt=gt, facts_path=facts_path, facts=facts)


def _up_to_date(spec: SceneSpec, out_dir: Path, seed: int) -> bool:
    """True when the three files exist and facts.json records this spec/seed/build and the mp4's hash."""
    mp4, gt, facts_path = _paths(spec, out_dir)
    if not (mp4.exists() and gt.exists() and facts_path.exists()):
        return False
    try:
        facts = json.loads(facts_path.read_text())
    except ValueError:
        return False
    return facts.get("render_key") == _render_key(spec, seed) and facts.get("mp4_sha256") == _sha256(mp4)


def make_demo_videos(out_dir: Path, seed: int = 0, scenes: list[str] | None = None) -> list[Path]:
    """Render the standard scenes (or the named ones, from ``all_scenes()``) into ``out_dir`` and return
    the mp4 paths.  Scenes whose files are already present with identical content are not rewritten."""
    out_dir = Path(out_dir)
    specs = standard_scenes() if scenes is None else [scene_by_name(n) for n in scenes]
    paths = []
    for spec in specs:
        if not _up_to_date(spec, out_dir, seed):
            render_scene(spec, out_dir, seed)
        paths.append(_paths(spec, out_dir)[0])
    return paths
