"""Pure functions behind the `trajectories` asset: tracks -> smoothed paths + motion facts, pairwise relations
between tracks, and FoundationMotion's trajectory JSON for the caption prompts.  No Dagster, no IO.

Model
-----
A track is a sequence of boxes at sampled presentation times ``t_s`` (gaps allowed).  Two views of it:

- ``path``: centre and size of each box smoothed by a centred local-linear fit (a Savitzky-Golay filter of
  order 1 that accepts irregular times) over ``smooth_s`` seconds, normalised to [0, 1] by the frame width /
  height, with the colour name of the box at that time (``color``: the `tracks` table's ``box_color``, the
  colour of the box's own detection, so a path shows where a track's boxes change colour).  This is what
  prompts and overlays show.
- a *continuous piecewise-linear fit* of the state (cx, cy, size) - the synthetic generator's own motion
  model (linear between keyframes) - from which every fact is read.  size = sqrt(w * h) x the track's median
  diagonal / sqrt(w * h): the box diagonal while the aspect ratio holds.  Each coordinate is measured in units
  of its noise, estimated from the track itself (deviation of each sample from its neighbours' line):
  1. candidate knots: between the pieces of the optimal partition into independent lines (dynamic
     programming, ``split_penalty`` per piece);
  2. backward elimination: drop the knot whose removal raises the residual SS least while that rise is under
     ``penalty`` (exact, from the fit's covariance); each knot is then moved to the best place between its
     neighbours (least squares of a continuous two-piece line);
  3. each piece *moves* when the lower confidence bound (estimate - ``speed_z`` standard errors) of its speed -
     the larger of the centre speed and the size rate - reaches ``move_speed`` and it covers
     ``min_move_frac`` of the diagonal, and *stops* when that bound is under ``stop_speed``; in between it
     keeps the previous piece's state (hysteresis; the first piece starts from "stop");
  4. knots between two stops are dropped, knots between two moves need ``bend_penalty``, stops are held flat
     and the knots placed again; 3-4 repeat until the kinds no longer change.
  On clean boxes the knots land on the keyframes; on noisy boxes a knot is only kept where the data need it.

Facts (the definitions of :mod:`fm_assets.synthetic`, which scores them; "diagonal" = frame diagonal)
-------------------------------------------------------------------------------------------------------
- ``segments``: the pieces merged into runs ``{t0, t1, kind, direction}`` of equal kind (move / stop) and
  direction (a move's direction as below without the stationary threshold).  ``onset_s`` / ``end_s``:
  start of the first / end of the last move (null if it never moves).
- ``direction``: from the net change between the fitted states at the first and last sample: ``toward`` /
  ``away`` when the scale ratio (= sqrt of the box-area ratio) end/start is > 1.25 / < 1/1.25 and the centre
  moves < 5 % of the diagonal; else ``stationary`` when the centre moves < 2 %; else one of eight 45-degree
  sectors of the angle of (dx, -dy) (image y points down), "right" covering -22.5..22.5 degrees.
- ``dx``, ``dy``: net centre displacement / width, / height (dy > 0: down).  ``scale_change``: scale ratio.
- The *course*: the fitted states at the knots with stops holding the state (a stop does not move).
  ``distance``: its centre path length / diagonal.  ``mean_speed``: distance / total move time;
  ``max_speed``: the fastest moving piece's centre speed (diagonals/s; 0 when it never moves).
- ``moved``: distance >= 2 % of the diagonal, or the course's size varies by more than a factor 1.25.
- ``start_region`` / ``end_region``: cell of the first / last fitted centre on a 3x3 grid.
- ``box_noise``: the estimated noise of one box (largest of centre x, y and size) / diagonal, a quality cue
  for gating facts downstream (exact boxes: the 0.001 floor; 2 px jitter at 640x480: ~0.003; the `motion`
  detector's boxes on TUD-Campus: 0.003-0.024, the worst from blobs merging and splitting).
- ``stop_windows`` / ``n_stops``: stop runs lasting >= 0.5 s with a move run before and after.
- ``n_turns``: vertices of the course's centre path, simplified by Ramer-Douglas-Peucker with tolerance
  ``turn_tolerance_frac`` of the diagonal, where the heading changes by more than ``turn_deg`` (a reversal
  counts as a turn).
- ``repetitions``: of the course's x, y and size, take the one with the largest total variation, split it
  into monotone legs, drop legs shorter than 1 % of the diagonal, collapse equal neighbouring signs into
  runs; repetitions = runs // 2 (right-left-right-left-right-left gives 3, right-left-right gives 1).

Tracks shorter than ``min_duration_s`` or ``min_points`` are dropped as ``too_short``; tracks that did not
move (``moved`` false) as ``static`` when ``drop_static``.  Dropped tracks are returned too (kept = false).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl

from fm_assets.labels import vocab
from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.vocab import (  # the generator renders with the same definitions: its facts are the truth
    MIN_STOP_S,
    REPETITION_MIN_FRAC,
    SCALE_RATIO,
    STATIONARY_FRAC,
    TOWARD_CENTRE_FRAC,
    region,
)

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

__all__ = [
    "PAIR_SCHEMA",
    "TRAJECTORY_SCHEMA",
    "TrajectoryParams",
    "classify_direction",
    "pair_relations",
    "region",
    "repetitions",
    "track_facts",
    "trajectories",
    "trajectory_json",
]


@dataclass(frozen=True)
class TrajectoryParams:
    """Knobs of :func:`trajectories`.  Fractions are of the frame diagonal, speeds in diagonals per second.
    The defaults of the fact thresholds are the synthetic generator's (its facts are the ground truth)."""

    min_duration_s: float = param(0.5, "tracks shorter than this (seconds) are dropped (too_short)", ge=0)
    min_points: int = param(3, "tracks with fewer boxes are dropped (too_short)", ge=1)
    drop_static: bool = param(True, "drop tracks that do not move (static)")
    smooth_s: float = param(0.4, "window of the local-linear smoothing of the path, seconds", ge=0)
    split_penalty: float = param(12.0, "cost of a candidate piece in the partition (squared noise units, 3 coordinates)",
                                 ge=0)
    penalty: float = param(12.0, "a knot of the continuous fit must lower the residual SS by this much", ge=0)
    bend_penalty: float = param(24.0, "... and by this much when it joins two moves (a change of velocity)", ge=0)
    min_piece_points: int = param(3, "fewest boxes in a piece of the fit", ge=2)
    noise_floor_frac: float = param(0.001, "lower bound of the estimated box noise (diagonals)", ge=0)
    move_speed: float = param(0.02, "a piece at least this fast (diagonals/s, and covering min_move_frac) moves", ge=0)
    stop_speed: float = param(0.01, "a piece slower than this stops; in between: hysteresis", ge=0)
    speed_z: float = param(3.0, "speeds are judged by their lower confidence bound: speed - speed_z standard errors",
                           ge=0)
    min_move_frac: float = param(0.01, "a moving piece covers at least this much (diagonals)", ge=0)
    min_stop_s: float = param(MIN_STOP_S, "a stop lasts at least this long, seconds", ge=0)
    stationary_frac: float = param(STATIONARY_FRAC, "net displacement below this (diagonals) is stationary", ge=0)
    toward_centre_frac: float = param(TOWARD_CENTRE_FRAC, "toward / away: the centre moves at most this much", ge=0)
    scale_ratio: float = param(SCALE_RATIO, "toward / away: scale change needed (end / start)", gt=1)
    repetition_min_frac: float = param(REPETITION_MIN_FRAC, "legs shorter than this (diagonals) are not repetitions",
                                       ge=0)
    turn_deg: float = param(45.0, "a turn changes the heading by more than this, degrees", ge=0)
    turn_tolerance_frac: float = param(0.02, "path simplification tolerance for turns (diagonals)", ge=0)

    def __post_init__(self) -> None:
        check_bounds(self)


_PATH_POINT = pl.Struct({"t": pl.Float64, "ncx": pl.Float64, "ncy": pl.Float64, "nw": pl.Float64, "nh": pl.Float64,
                         "color": pl.String})
_SEGMENT = pl.Struct({"t0": pl.Float64, "t1": pl.Float64, "kind": pl.String, "direction": pl.String})

TRAJECTORY_SCHEMA: dict[str, PolarsDataType] = {
    "video_id": pl.String, "clip_id": pl.String, "track_id": pl.Int32, "label": pl.String, "color": pl.String,
    "t_start": pl.Float64, "t_end": pl.Float64, "n_points": pl.Int32, "width": pl.Int32, "height": pl.Int32,
    "mean_score": pl.Float64, "path": pl.List(_PATH_POINT),
    "dx": pl.Float64, "dy": pl.Float64, "distance": pl.Float64, "mean_speed": pl.Float64, "max_speed": pl.Float64,
    "direction": pl.String, "start_region": pl.String, "end_region": pl.String,
    "n_stops": pl.Int32, "stop_windows": pl.List(pl.List(pl.Float64)), "n_turns": pl.Int32,
    "repetitions": pl.Int32, "onset_s": pl.Float64, "end_s": pl.Float64, "scale_change": pl.Float64,
    "moved": pl.Boolean, "segments": pl.List(_SEGMENT), "box_noise": pl.Float64,
    "kept": pl.Boolean, "drop_reason": pl.String,
}

PAIR_SCHEMA: dict[str, PolarsDataType] = {
    "video_id": pl.String, "clip_id": pl.String, "a": pl.Int32, "b": pl.Int32,
    "label_a": pl.String, "label_b": pl.String, "t0": pl.Float64, "t1": pl.Float64,
    "starts_first": pl.String, "stops_first": pl.String, "onset_gap_s": pl.Float64,
    "approach": pl.String, "distance_start": pl.Float64, "distance_end": pl.Float64,
    "min_distance": pl.Float64, "min_distance_t": pl.Float64, "position_start": pl.String, "position_end": pl.String,
}


# --------------------------------------------------------------------------------------------------
# Public API


def trajectories(tracks: pl.DataFrame, width: int, height: int,
                 params: TrajectoryParams | None = None) -> pl.DataFrame:
    """One row per track of ``tracks`` (the `tracks` table layout) with its smoothed normalised path and
    motion facts (see the module docstring); ``kept`` / ``drop_reason`` say which tracks to use."""
    params = params or TrajectoryParams()
    rows = []
    if not tracks.is_empty():
        keys = ["video_id", "clip_id", "track_id"]
        for (video_id, clip_id, track_id), g in tracks.sort([*keys, "t_s"]).group_by(keys, maintain_order=True):
            rows.append({"video_id": video_id, "clip_id": clip_id, "track_id": track_id,
                         "label": _majority(g["label"].to_list()),
                         "color": _majority(g["color"].to_list()) if "color" in g.columns else None,
                         "mean_score": (float(cast(float, g["score"].mean()))  # polars types mean() as any literal
                                        if g["score"].null_count() < len(g) else None),
                         **_track_row(g, width, height, params)})
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA, orient="row")


def track_facts(t: np.ndarray, boxes: np.ndarray, width: int, height: int,
                params: TrajectoryParams | None = None) -> dict:
    """Facts of one track from sample times ``t`` (s, increasing) and ``boxes`` (n x 4: x1, y1, x2, y2 px)."""
    params = params or TrajectoryParams()
    t = np.asarray(t, float)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    state = _state(boxes)
    diag = math.hypot(width, height)
    sigma = _noise_sigma(t, state, params.noise_floor_frac * diag)
    pieces, kinds = _piecewise_fit(t, state, sigma, diag, params)
    segments = _segments(pieces, kinds, diag, params)
    moves = [s for s in segments if s["kind"] == "move"]
    stops = _stop_windows(segments, params.min_stop_s)
    start, end = pieces[0].first, pieces[-1].last  # fitted states at the first and last sample
    ratio = _ratio(start, end)
    course = _motion_course(pieces, kinds)
    distance = float(np.hypot(*np.diff(course[:, :2], axis=0).T).sum()) / diag
    move_time = sum(s["t1"] - s["t0"] for s in moves)
    sizes = np.clip(course[:, 2], 1e-9, None)
    return {
        "dx": float(end[0] - start[0]) / width,
        "dy": float(end[1] - start[1]) / height,
        "distance": distance,
        "mean_speed": distance / move_time if move_time > 0 else 0.0,
        "max_speed": max((p.centre_speed / diag for p, k in zip(pieces, kinds) if k == "move"), default=0.0),
        "direction": classify_direction(end[0] - start[0], end[1] - start[1], ratio, diag, params),
        "start_region": region(start[0], start[1], width, height),
        "end_region": region(end[0], end[1], width, height),
        "n_stops": len(stops),
        "stop_windows": stops,
        "n_turns": _turns(course[:, :2], params.turn_tolerance_frac * diag, params.turn_deg),
        "repetitions": repetitions(course, params.repetition_min_frac * diag),
        "onset_s": moves[0]["t0"] if moves else None,
        "end_s": moves[-1]["t1"] if moves else None,
        "scale_change": ratio,
        "moved": bool(distance >= params.stationary_frac or sizes.max() / sizes.min() > params.scale_ratio),
        "segments": segments,
        "box_noise": float(sigma.max()) / diag,
    }


def pair_relations(traj: pl.DataFrame, same_s: float = 0.3, approach_frac: float = 0.05) -> pl.DataFrame:
    """One row per ordered pair (a, b) of kept tracks of one clip whose time spans overlap.

    - ``starts_first`` / ``stops_first``: 'a', 'b' or 'same' (onsets / ends within ``same_s``); null unless
      both tracks have an onset / end.  ``onset_gap_s`` = onset_b - onset_a.
    - over the common window [t0, t1], centres linearly interpolated from the paths, distances in diagonals:
      ``approach`` is 'approaching' when the centre distance shrinks by more than ``approach_frac``,
      'moving_apart' when it grows by more, else 'steady'; ``min_distance`` (at ``min_distance_t``).
    - ``position_start`` / ``position_end``: where b is relative to a at t0 / t1 along the axis of the larger
      pixel offset: left_of, right_of, above, below.
    """
    rows = []
    kept = traj.filter(pl.col("kept")) if "kept" in traj.columns else traj
    for _, clip in kept.group_by(["video_id", "clip_id"], maintain_order=True):
        recs = clip.sort("track_id").to_dicts()
        for a in recs:
            for b in recs:
                if a is not b:
                    row = _pair(a, b, same_s, approach_frac)
                    if row is not None:
                        rows.append(row)
    return pl.DataFrame(rows, schema=PAIR_SCHEMA, orient="row")


def trajectory_json(traj: pl.DataFrame, frame_times: list[float] | None = None, decimals: int = 4) -> dict:
    """FoundationMotion's trajectory JSON for one clip's kept tracks (reference stage 5)::

        {"detected_objects": {"<label>_<1000+i>": {"class_name", "class_id", "track_id",
                                                   "bbox": [[x1, y1, x2, y2] | None per frame]}}}

    Boxes come from the smoothed ``path``, normalised to [0, 1] and rounded to ``decimals``; one entry per
    time of ``frame_times`` (default: every path time of the clip), None where the track has no point
    (within 1 ms).  Objects are numbered in track_id order; class_id indexes the sorted class names."""
    kept = traj.filter(pl.col("kept")) if "kept" in traj.columns else traj
    if len(kept.unique(["video_id", "clip_id"])) > 1:
        raise ValueError("trajectory_json takes the trajectories of one clip")
    recs = kept.sort("track_id").to_dicts()
    times = np.asarray(sorted(frame_times) if frame_times is not None
                       else sorted({p["t"] for r in recs for p in r["path"]}), float)
    classes = sorted({r["label"] for r in recs})
    objects = {}
    for i, r in enumerate(recs):
        objects[f"{r['label']}_{1000 + i}"] = {
            "class_name": r["label"], "class_id": classes.index(r["label"]), "track_id": int(r["track_id"]),
            "bbox": _boxes_at(r["path"], times, decimals),
        }
    return {"detected_objects": objects}


# --------------------------------------------------------------------------------------------------
# Fact helpers (shared definitions with the synthetic generator)


def classify_direction(dx: float, dy: float, ratio: float, diag: float, params: TrajectoryParams,
                       stationary: bool = True) -> str:
    """Direction word for a centre displacement (px, y down) and a scale ratio end/start: the synthetic
    generator's definition with the thresholds of ``params`` (``stationary`` False: no stationary threshold)."""
    return vocab.classify_direction(dx, dy, ratio, diag, params.stationary_frac if stationary else 0.0,
                                        params.toward_centre_frac, params.scale_ratio)


def monotone_legs(coords: np.ndarray) -> list[float]:
    """Signed amplitudes of the monotone runs of the coordinate (column of ``coords``, points x coordinates)
    with the largest total variation."""
    deltas = np.diff(np.asarray(coords, float).reshape(len(coords), -1), axis=0)
    if len(deltas) == 0:
        return []
    axis = int(np.argmax(np.abs(deltas).sum(axis=0)))
    legs: list[float] = []
    for d in deltas[:, axis]:
        if abs(d) <= 1e-9:
            continue
        if legs and (legs[-1] > 0) == (d > 0):
            legs[-1] += d
        else:
            legs.append(float(d))
    return legs


def repetitions(coords: np.ndarray, min_leg: float) -> int:
    """Back-and-forth cycles along the coordinate (column) with the largest total variation: monotone legs
    shorter than ``min_leg`` are dropped, equal neighbouring signs collapse into runs, cycles = runs // 2."""
    signs = [leg > 0 for leg in monotone_legs(coords) if abs(leg) >= min_leg]
    runs = sum(1 for i, sign in enumerate(signs) if i == 0 or sign != signs[i - 1])
    return runs // 2


# --------------------------------------------------------------------------------------------------
# One track


def _majority(labels: list[str | None]) -> str | None:
    """Most frequent label (ties broken by name)."""
    counts = Counter(x for x in labels if x is not None)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if counts else None


def _track_row(g: pl.DataFrame, width: int, height: int, params: TrajectoryParams) -> dict:
    """Path, facts, kept and drop_reason of one track's rows (sorted by time)."""
    # the path's colour at each time: the box's own detection colour (`box_color`); a tracks table written before
    # that column existed has only the track's majority colour
    src = next((c for c in ("box_color", "color") if c in g.columns), None)
    colour = pl.col(src).first().alias("color") if src else pl.lit(None, pl.String).alias("color")
    g = (g.drop_nulls(["t_s", "x1", "y1", "x2", "y2"])
         .group_by("t_s", maintain_order=True).agg(pl.col("x1", "y1", "x2", "y2").mean(), colour))  # one per time
    t = g["t_s"].to_numpy().astype(float)
    boxes = g.select("x1", "y1", "x2", "y2").to_numpy().astype(float)
    row = {"t_start": float(t[0]) if len(t) else None, "t_end": float(t[-1]) if len(t) else None,
           "n_points": len(t), "width": width, "height": height,
           "path": _path(t, boxes, width, height, params.smooth_s, g["color"].to_list())}
    if len(t) == 0:
        return {**row, "kept": False, "drop_reason": "too_short"}
    facts = track_facts(t, boxes, width, height, params)
    reason = None
    if len(t) < params.min_points or t[-1] - t[0] < params.min_duration_s:
        reason = "too_short"
    elif params.drop_static and not facts["moved"]:
        reason = "static"
    facts["stop_windows"] = [list(w) for w in facts["stop_windows"]]
    return {**row, **facts, "kept": reason is None, "drop_reason": reason}


def _state(boxes: np.ndarray) -> np.ndarray:
    """(cx, cy, size) per box (px).  size = sqrt(w * h) scaled by the track's median diagonal / sqrt(w * h),
    i.e. the box diagonal when the aspect ratio holds (the generator's size), insensitive to aspect noise."""
    w, h = np.clip(boxes[:, 2] - boxes[:, 0], 1e-6, None), np.clip(boxes[:, 3] - boxes[:, 1], 1e-6, None)
    root = np.sqrt(w * h)
    size = root * float(np.median(np.hypot(w, h) / root))
    return np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, size])


def _ratio(first: np.ndarray, last: np.ndarray) -> float:
    """Scale ratio last / first (= sqrt of the box-area ratio)."""
    return float(max(last[2], 1e-9) / max(first[2], 1e-9))


def _path(t: np.ndarray, boxes: np.ndarray, width: int, height: int, smooth_s: float,
          colours: list[str | None] | None = None) -> list[dict]:
    """Smoothed, normalised path: [{t, ncx, ncy, nw, nh, color}] (centre and size of the box / frame size, and
    the colour name of the box at that time)."""
    if len(t) == 0:
        return []
    state = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2 / width, (boxes[:, 1] + boxes[:, 3]) / 2 / height,
                             (boxes[:, 2] - boxes[:, 0]) / width, (boxes[:, 3] - boxes[:, 1]) / height])
    s = _local_linear(t, state, smooth_s / 2)
    colours = colours if colours is not None else [None] * len(t)
    return [{"t": float(ti), "ncx": float(a), "ncy": float(b), "nw": float(c), "nh": float(d), "color": col}
            for ti, (a, b, c, d), col in zip(t, s, colours)]


# --------------------------------------------------------------------------------------------------
# Numerics: prefix sums, smoothing, noise, piecewise-linear fit


class _Sums:
    """Prefix sums of 1, t, t^2, y, t*y, y^2 (y: n x d) so that a line fit over samples [i, j) is O(1)."""

    def __init__(self, t: np.ndarray, y: np.ndarray) -> None:
        def cum(a: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros((1, *a.shape[1:])), np.cumsum(a, axis=0)])

        self.n, self.t, self.tt = cum(np.ones_like(t)), cum(t), cum(t * t)
        self.y, self.ty, self.yy = cum(y), cum(t[:, None] * y), cum(y * y)

    def fit(self, i, j):
        """(mean t, mean y, slope, residual sum of squares summed over columns) over samples [i, j)."""
        def s(a):
            return a[j] - a[i]

        n = s(self.n)
        mt, my = s(self.t) / n, s(self.y) / np.asarray(n)[..., None]
        stt = s(self.tt) - n * mt * mt
        sty = s(self.ty) - np.asarray(n * mt)[..., None] * my
        syy = s(self.yy) - np.asarray(n)[..., None] * my * my
        safe = np.where(stt > 1e-12, stt, np.inf)[..., None]
        slope = sty / safe
        rss = np.clip(syy - sty * slope, 0.0, None).sum(axis=-1)
        return mt, my, slope, rss


def _local_linear(t: np.ndarray, y: np.ndarray, half: float) -> np.ndarray:
    """Centred local-linear smoothing: each sample is replaced by the value at its time of the line fitted
    to the samples within ``half`` seconds of it (Savitzky-Golay of order 1 for irregular times)."""
    if len(t) < 3 or half <= 0:
        return y.copy()
    sums = _Sums(t - t[0], y)
    lo = np.searchsorted(t, t - half - 1e-9, side="left")
    hi = np.searchsorted(t, t + half + 1e-9, side="right")
    mt, my, slope, _ = sums.fit(lo, hi)
    return my + slope * ((t - t[0]) - mt)[:, None]


def _noise_sigma(t: np.ndarray, y: np.ndarray, floor: float) -> np.ndarray:
    """Per-column noise of one sample: each inner sample's deviation from the line through its two
    neighbours (scaled to one sample's standard deviation); the RMS of those within 3 robust (MAD) sigmas,
    so that kinks do not count, corrected for the truncation (all of them when the MAD is 0); at least
    ``floor``."""
    if len(t) < 3:
        return np.full(y.shape[1], floor)
    h0, h1 = t[1:-1] - t[:-2], t[2:] - t[1:-1]
    a, b = h1 / (h0 + h1), h0 / (h0 + h1)  # interpolation weights of the left / right neighbour
    r = (y[1:-1] - a[:, None] * y[:-2] - b[:, None] * y[2:]) / np.sqrt(1 + a * a + b * b)[:, None]
    robust = 1.4826 * np.median(np.abs(r), axis=0)
    trimmed = robust > 0  # else over half the residuals are 0 (boxes quantised to a pixel grid): keep them all
    inside = np.abs(r) <= np.where(trimmed, 3 * robust, np.inf)
    mean_sq = np.where(inside, r * r, 0.0).sum(axis=0) / np.maximum(inside.sum(axis=0), 1)
    return np.maximum(np.sqrt(mean_sq / np.where(trimmed, 0.9733, 1.0)), floor)


def _partition(t: np.ndarray, y: np.ndarray, penalty: float, min_points: int) -> list[tuple[int, int]]:
    """Optimal partition of the samples into pieces [i, j) of at least ``min_points`` samples minimising the
    sum of the pieces' line-fit residuals (y in noise units) + ``penalty`` per piece (dynamic programming)."""
    n = len(t)
    if n < 2 * min_points:
        return [(0, n)]
    sums = _Sums(t - t[0], y)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, int)
    for j in range(min_points, n + 1):
        i = np.arange(0, j - min_points + 1)
        i = i[np.isfinite(best[i])]
        cost = best[i] + sums.fit(i, j)[3] + penalty
        k = int(np.argmin(cost))
        best[j], back[j] = cost[k], i[k]
    pieces, j = [], n
    while j > 0:
        pieces.append((int(back[j]), j))
        j = back[j]
    return pieces[::-1]


@dataclass(frozen=True)
class _Piece:
    """One linear piece of the continuous fit: span [t0, t1], fitted state (cx, cy, size) at both ends and the
    standard error of its slope per coordinate (px/s)."""

    t0: float
    t1: float
    first: np.ndarray
    last: np.ndarray
    slope_sigma: np.ndarray

    @property
    def dt(self) -> float:
        return self.t1 - self.t0

    @property
    def centre_speed(self) -> float:
        return math.hypot(*(self.last[:2] - self.first[:2])) / self.dt if self.dt > 0 else 0.0

    @property
    def size_rate(self) -> float:
        return (self.last[2] - self.first[2]) / self.dt if self.dt > 0 else 0.0

    def speed_bound(self, z: float) -> float:
        """Lower confidence bound of the piece's speed (px/s): the larger of centre speed and |size rate|,
        each less ``z`` standard errors."""
        centre = self.centre_speed - z * float(self.slope_sigma[:2].max())
        size = abs(self.size_rate) - z * float(self.slope_sigma[2])
        return max(centre, size, 0.0)


def _vertex_fit(t: np.ndarray, y: np.ndarray, vertices: np.ndarray,
                flat: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares continuous piecewise-linear fit with the given vertex times (first and last sample
    included): (values at the vertices, residual SS, covariance of the values in noise units).  The columns
    are the vertices' hat functions; ``flat[k]`` ties the values at both ends of piece k (a stop)."""
    hats = np.column_stack([np.interp(t, vertices, row) for row in np.eye(len(vertices))])
    group = np.concatenate([[0], np.cumsum(~flat if flat is not None else np.ones(len(vertices) - 1, bool))])
    tie = np.eye(group[-1] + 1)[group]  # vertices x free values
    x = hats @ tie
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    cov = tie @ np.linalg.pinv(x.T @ x) @ tie.T
    return tie @ coef, float(((y - x @ coef) ** 2).sum()), cov


def _with_ends(t: np.ndarray, knots: np.ndarray) -> np.ndarray:
    return np.concatenate([[t[0]], knots, [t[-1]]])


def _removal_costs(vertices: np.ndarray, values: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Rise of the residual SS (noise units) when each inner vertex is removed, without refitting: removing
    it is the linear constraint "its value lies on the line through its neighbours", whose cost in a least-
    squares fit is (c.v)^2 / (c' C c) summed over coordinates (v: fitted values, C: their covariance)."""
    rise = np.full(len(vertices) - 2, np.inf)
    for k in range(1, len(vertices) - 1):
        a = (vertices[k + 1] - vertices[k]) / (vertices[k + 1] - vertices[k - 1])
        c = np.zeros(len(vertices))
        c[k - 1], c[k], c[k + 1] = -a, 1.0, a - 1.0
        var = float(c @ cov @ c)
        if var > 1e-12:
            rise[k - 1] = float(((c @ values) ** 2).sum()) / var
    return rise


def _prune(t: np.ndarray, y: np.ndarray, knots: np.ndarray, penalty: float,
           kinds: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Backward elimination: drop the knot whose removal raises the residual SS least, while that rise is
    under ``penalty`` (noise units).  With ``kinds`` (stops held flat) only knots between two moves are
    candidates, and the two moves become one."""
    while len(knots):
        flat = np.array([k == "stop" for k in kinds]) if kinds is not None else None
        vertices = _with_ends(t, knots)
        values, _, cov = _vertex_fit(t, y, vertices, flat)
        rise = _removal_costs(vertices, values, cov)
        if kinds is not None:
            rise[[not (kinds[k] == kinds[k + 1] == "move") for k in range(len(knots))]] = np.inf
        k = int(np.argmin(rise))
        if rise[k] >= penalty:
            break
        knots = np.delete(knots, k)
        kinds = kinds[:k + 1] + kinds[k + 2:] if kinds is not None else None
    return knots, kinds


def _local_rss(t: np.ndarray, y: np.ndarray, lo: float, hi: float, knots: np.ndarray, flat: str | None) -> np.ndarray:
    """Residual SS of the continuous two-piece fit over [lo, hi] for each candidate knot (vectorised normal
    equations); ``flat`` = 'left' / 'right' holds that piece constant."""
    k, s = knots[:, None], t[None, :]
    left = np.clip((k - s) / (k - lo), 0.0, 1.0)  # hat of the vertex at lo
    right = np.clip((s - k) / (hi - k), 0.0, 1.0)  # hat of the vertex at hi
    mid = 1.0 - left - right
    cols = {None: [left, mid, right], "left": [left + mid, right], "right": [left, mid + right]}[flat]
    x = np.stack(cols, axis=1)  # knots x columns x samples
    xtx = x @ x.transpose(0, 2, 1)
    xty = x @ y  # knots x columns x coordinates
    coef = np.linalg.solve(xtx + 1e-9 * np.eye(len(cols)), xty)
    return (y * y).sum() - (coef * xty).sum(axis=(1, 2))


def _refine_knot(t: np.ndarray, y: np.ndarray, lo: float, hi: float, flat: str | None) -> float:
    """Best knot in (lo, hi) for the samples in [lo, hi]: the best sample time or midpoint keeping a sample
    on each side, then the best of 41 times within one sample spacing of it."""
    inside = (t >= lo) & (t <= hi)
    ts, ys = t[inside], y[inside]
    coarse = np.concatenate([ts, (ts[:-1] + ts[1:]) / 2])
    coarse = coarse[(coarse > max(lo, ts[0])) & (coarse < min(hi, ts[-1]))]
    if len(coarse) == 0:
        return (lo + hi) / 2
    best = coarse[int(np.argmin(_local_rss(ts, ys, lo, hi, coarse, flat)))]
    step = float(np.median(np.diff(ts)))
    fine = np.clip(best + np.linspace(-step, step, 41), coarse.min(), coarse.max())
    return float(fine[int(np.argmin(_local_rss(ts, ys, lo, hi, fine, flat)))])


def _refine_knots(t: np.ndarray, y: np.ndarray, knots: np.ndarray, kinds: list[str] | None = None) -> np.ndarray:
    """Move each knot in turn to its best place between its neighbours (two sweeps); with ``kinds``, the
    stop pieces are held flat."""
    knots = knots.copy()
    for _ in range(2):
        for k in range(len(knots)):
            lo = knots[k - 1] if k > 0 else t[0]
            hi = knots[k + 1] if k + 1 < len(knots) else t[-1]
            flat = None
            if kinds is not None and kinds[k] != kinds[k + 1]:
                flat = "left" if kinds[k] == "stop" else "right"
            knots[k] = _refine_knot(t, y, lo, hi, flat)
    return knots


def _pieces(t: np.ndarray, y: np.ndarray, sigma: np.ndarray, knots: np.ndarray,
            kinds: list[str] | None = None) -> list[_Piece]:
    """The pieces of the fit with these knots (stop pieces flat when ``kinds`` is given), in pixels."""
    vertices = _with_ends(t, knots)
    flat = np.array([k == "stop" for k in kinds]) if kinds is not None else None
    values, _, cov = _vertex_fit(t, y, vertices, flat)
    pieces = []
    for k in range(len(vertices) - 1):
        dt = vertices[k + 1] - vertices[k]
        var = cov[k, k] + cov[k + 1, k + 1] - 2 * cov[k, k + 1]
        se = sigma * math.sqrt(max(var, 0.0)) / dt if dt > 0 else sigma * np.inf
        pieces.append(_Piece(float(vertices[k]), float(vertices[k + 1]), values[k] * sigma, values[k + 1] * sigma, se))
    return pieces


def _piece_kinds(pieces: list[_Piece], diag: float, params: TrajectoryParams) -> list[str]:
    """'move' / 'stop' per piece, by speed (centre or size, less ``speed_z`` standard errors so that short
    noisy pieces do not move) with hysteresis between stop_speed and move_speed."""
    kinds, state = [], "stop"
    for p in pieces:
        speed = p.speed_bound(params.speed_z) / diag
        if speed >= params.move_speed and speed * p.dt >= params.min_move_frac:
            state = "move"
        elif speed < params.stop_speed:
            state = "stop"
        kinds.append(state)
    return kinds


def _piecewise_fit(t: np.ndarray, state: np.ndarray, sigma: np.ndarray, diag: float,
                   params: TrajectoryParams) -> tuple[list[_Piece], list[str]]:
    """Continuous piecewise-linear fit of the state (cx, cy, size) and the kind of each piece (see the module
    docstring).  In noise units: candidate knots between the pieces of the optimal partition (generous
    ``split_penalty``), pruned with ``penalty`` and placed best between their neighbours; the pieces are
    classified; knots between two stops are dropped; the rest are placed again with the stops held flat."""
    if len(t) < 2 or t[-1] <= t[0]:
        s = state.mean(axis=0)
        return [_Piece(float(t[0]), float(t[-1]), s, s, np.zeros(3))], ["stop"]
    y = state / sigma
    parts = _partition(t, y, params.split_penalty, params.min_piece_points)
    knots = np.array([(t[j - 1] + t[j]) / 2 for _, j in parts[:-1]])
    knots = _refine_knots(t, y, _prune(t, y, knots, params.penalty)[0])
    pieces, kinds = _pieces(t, y, sigma, knots), None
    for _ in range(4):  # classify, merge stops, hold them flat and place the knots again, until stable
        new = _piece_kinds(pieces, diag, params)
        if new == kinds:
            break
        keep = [k for k in range(len(knots)) if "move" in (new[k], new[k + 1])]
        knots, kinds = knots[keep], [new[0]] + [new[k + 1] for k in keep]
        knots, kinds = _prune(t, y, knots, params.bend_penalty, kinds)
        knots = _refine_knots(t, y, knots, kinds)
        pieces = _pieces(t, y, sigma, knots, kinds)
    assert kinds is not None  # the loop runs at least once and sets kinds on its first pass
    return pieces, kinds


# --------------------------------------------------------------------------------------------------
# Facts from the fit


def _segments(pieces: list[_Piece], kinds: list[str], diag: float, params: TrajectoryParams) -> list[dict]:
    """Pieces merged into runs {t0, t1, kind, direction} of equal kind and direction."""
    out: list[dict] = []
    for p, kind in zip(pieces, kinds):
        direction = "stationary"
        if kind == "move":
            d = p.last - p.first
            direction = classify_direction(d[0], d[1], _ratio(p.first, p.last), diag, params, stationary=False)
        if out and out[-1]["kind"] == kind and out[-1]["direction"] == direction:
            out[-1]["t1"] = round(p.t1, 4)
        else:
            out.append({"t0": round(p.t0, 4), "t1": round(p.t1, 4), "kind": kind, "direction": direction})
    return out


def _motion_course(pieces: list[_Piece], kinds: list[str]) -> np.ndarray:
    """States at the knots when only moving pieces change them (a stop holds the state, as in the
    generator's model): the course along which distance, turns and repetitions are measured."""
    steps = [p.last - p.first if kind == "move" else np.zeros(3) for p, kind in zip(pieces, kinds)]
    return pieces[0].first + np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])


def _stop_windows(segments: list[dict], min_stop_s: float) -> list[tuple[float, float]]:
    """[t0, t1] of the stop runs lasting >= min_stop_s with a move run before and after."""
    moves = [k for k, s in enumerate(segments) if s["kind"] == "move"]
    return [(s["t0"], s["t1"]) for k, s in enumerate(segments)
            if s["kind"] == "stop" and moves and moves[0] < k < moves[-1] and s["t1"] - s["t0"] >= min_stop_s]


def _rdp(points: np.ndarray, tol: float) -> list[int]:
    """Indices kept by Ramer-Douglas-Peucker simplification of a polyline (iterative)."""
    keep, stack = {0, len(points) - 1}, [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg, rel = points[b] - points[a], points[a + 1:b] - points[a]
        norm = math.hypot(*seg)
        dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm if norm > 0 else np.hypot(*rel.T)
        k = int(np.argmax(dist))
        if dist[k] > tol:
            keep.add(a + 1 + k)
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    return sorted(keep)


def _turns(xy: np.ndarray, tol: float, turn_deg: float) -> int:
    """Vertices of the simplified path where the heading changes by more than ``turn_deg``."""
    if len(xy) < 3:
        return 0
    pts = xy[_rdp(xy, tol)]
    vec = np.diff(pts, axis=0)
    vec = vec[np.hypot(*vec.T) > tol]
    if len(vec) < 2:
        return 0
    ang = np.degrees(np.arctan2(vec[:, 1], vec[:, 0]))
    change = np.abs((np.diff(ang) + 180.0) % 360.0 - 180.0)
    return int((change > turn_deg).sum())


# --------------------------------------------------------------------------------------------------
# Pairs and JSON


def _interp(path: list[dict], times: np.ndarray) -> np.ndarray:
    """Normalised centres (n x 2) of a path at ``times`` (linear between points)."""
    t = np.array([p["t"] for p in path])
    return np.column_stack([np.interp(times, t, [p["ncx"] for p in path]),
                            np.interp(times, t, [p["ncy"] for p in path])])


def _first(ta: float | None, tb: float | None, same_s: float) -> str | None:
    if ta is None or tb is None:
        return None
    return "same" if abs(ta - tb) <= same_s else ("a" if ta < tb else "b")


def _side(offset: np.ndarray) -> str:
    """Where a point at pixel ``offset`` from a reference lies, along the axis of the larger offset."""
    if abs(offset[0]) >= abs(offset[1]):
        return "right_of" if offset[0] > 0 else "left_of"
    return "below" if offset[1] > 0 else "above"


def _approach(change: float, frac: float) -> str:
    """'approaching' / 'moving_apart' when the centre distance changes by more than ``frac``, else 'steady'."""
    return "approaching" if change < -frac else "moving_apart" if change > frac else "steady"


def _pair(a: dict, b: dict, same_s: float, approach_frac: float) -> dict | None:
    """Relations of b with respect to a over their common time window (None when they do not overlap)."""
    t0, t1 = max(a["t_start"], b["t_start"]), min(a["t_end"], b["t_end"])
    if not a["path"] or not b["path"] or t1 <= t0:
        return None
    times = np.array(sorted({t0, t1, *(p["t"] for p in a["path"] + b["path"] if t0 <= p["t"] <= t1)}))
    scale = np.array([a["width"], a["height"]], float)
    offset = (_interp(b["path"], times) - _interp(a["path"], times)) * scale  # px, b relative to a
    dist = np.hypot(*offset.T) / math.hypot(*scale)
    change = dist[-1] - dist[0]
    k = int(np.argmin(dist))
    onset_gap = b["onset_s"] - a["onset_s"] if a["onset_s"] is not None and b["onset_s"] is not None else None
    return {
        "video_id": a["video_id"], "clip_id": a["clip_id"], "a": a["track_id"], "b": b["track_id"],
        "label_a": a["label"], "label_b": b["label"], "t0": t0, "t1": t1,
        "starts_first": _first(a["onset_s"], b["onset_s"], same_s),
        "stops_first": _first(a["end_s"], b["end_s"], same_s),
        "onset_gap_s": onset_gap,
        "approach": _approach(change, approach_frac),
        "distance_start": float(dist[0]), "distance_end": float(dist[-1]),
        "min_distance": float(dist[k]), "min_distance_t": float(times[k]),
        "position_start": _side(offset[0]), "position_end": _side(offset[-1]),
    }


def _boxes_at(path: list[dict], times: np.ndarray, decimals: int) -> list[list[float] | None]:
    """Normalised [x1, y1, x2, y2] of the path point at each time (None where there is none within 1 ms)."""
    pt = np.array([p["t"] for p in path])
    out: list[list[float] | None] = []
    for t in times:
        k = int(np.argmin(np.abs(pt - t))) if len(pt) else -1
        if k < 0 or abs(pt[k] - t) > 1e-3:
            out.append(None)
            continue
        p = path[k]
        box = [p["ncx"] - p["nw"] / 2, p["ncy"] - p["nh"] / 2, p["ncx"] + p["nw"] / 2, p["ncy"] + p["nh"] / 2]
        out.append([round(min(1.0, max(0.0, v)), decimals) for v in box])
    return out
