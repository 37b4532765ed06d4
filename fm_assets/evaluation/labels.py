"""`fm eval labels --gt DIR`: the precision of a lake's rule-based questions (qa_pairs) against ground-truth
tracks, with every fact recomputed from the truth boxes by plain geometry (nothing here calls the code under
test, fm_assets.labels.motion_facts or qa; only the vocabulary of fm_assets.labels.vocab is shared: sector and
region names and the thresholds that define the words).  Pure functions, no printing.

Truth files and frames
----------------------
The truth of a video is found like `fm eval mot` finds it (fm_assets.evaluation.mot.find_gt: DIR/SEQ/gt/gt.txt,
DIR/SEQ/gt.txt, DIR/SEQ.gt.txt; SEQ stands for the videos whose id is `<slug of SEQ>-<8 hex>`).  Lines are
MOTChallenge `frame,id,x,y,w,h,conf,...` with 1-based frames; rows with conf 0 (MOT's "ignore") are dropped.
Truth frame f is the decoded frame f - 1 (tracks.frame_idx, raw_clips.start_frame / end_frame), at time
(f - 1) / fps.  A clip holds the truth boxes of its frames [start_frame, end_frame).

Matching
--------
Per clip, every pipeline track is matched to at most one truth identity (Hungarian assignment) on the mean IoU
over the frames where either exists, counted over the frames the pipeline looked at (the clip's frames at the
tracks' sampling step): sum of the box IoUs on the frames both have / number of frames either has.  Pairs
under MIN_IOU (0.3) stay unmatched.

Truth facts (per truth object, over its visible part inside the clip)
---------------------------------------------------------------------
- centre (cx, cy) and size s = sqrt(w h) of the box, smoothed by a local-linear fit over SMOOTH_S (0.5 s)
  around each frame (exact on straight motion, so the synthetic truth is unchanged away from its corners); on
  frames where the box touches the frame's edge (within EDGE_PX) the size is interpolated from the other
  frames: the box may be cut by the edge (an object entering or leaving), which is no motion toward / away;
- direction: from the smoothed centre / size at the first and last visible frame: toward / away when the size
  ratio end / start is > 1.25 / < 1 / 1.25 and the centre moves < 5 % of the diagonal, else stationary when it
  moves < 2 % of the diagonal, else one of the 8 sectors of 45 degrees (the synthetic generator's definition);
- start_region / end_region: the 3x3 cell of the smoothed centre at the first / last visible frame; heading: the
  side (left / right / top / bottom) of the larger component of the net displacement (none when stationary);
- stops: a stop is a run of >= MIN_STOP_S (0.5 s) whose box centre and size stay within STILL_RADIUS (0.5 % of
  the diagonal) of its median point (slower than about 0.02 diagonals / s, the pipeline's move speed): found as
  cores on the smoothed course (windows of >= 0.25 s spanning <= 1 %), its ends taken from the raw boxes
  (median of 3 frames), since smoothing rounds a stop's corners off; at the start (end) of the visible part,
  the frames before the object first gets 1 % of the diagonal from where it starts (after it last was that
  far from where it ends), down to the last (from the first) within 0.5 %, are a stop when they last >=
  LEAD_S (0.2 s); the rest moves, but a move that never gets 1 % from where it started is still (box jitter).
  A move run is cut where the 8-sector direction of its smoothed path changes (vertices of the path
  simplified to constant-velocity pieces within 2 % of the diagonal); segment directions are classified like
  the direction without the stationary threshold;
- onset_s / end_s: start of the first / end of the last move segment; n_stops: stops with a move before and
  after; stop window: first stop start .. last stop end; a mover has at least one move segment;
- repetitions: of x, y and size, the coordinate with the largest total variation of the smoothed course; its
  zig-zag legs (reversals of at least REP_MIN_FRAC, 1 % of the diagonal) give repetitions = legs // 2;
- n_turns: vertices of the smoothed path simplified with a tolerance of 2 % of the diagonal where the heading
  changes by more than 45 degrees; distance: path length of the smoothed centre / diagonal; mean_speed:
  distance / total duration of the move segments;
- activity: steady (no stop, no repetition, one move direction, no turn) / stop_and_go (stops, no repetition) /
  back_and_forth (repetitions, no stop), else none;
- objects in "which object" pools are the truth objects visible >= MIN_VISIBLE_S (0.5 s) in the clip;
- count_direction: the truth objects visible >= COUNT_VISIBLE_S (1 s) in the clip whose direction is d;
  majority_direction: the most common direction (stationary not counted) of the truth objects that move,
  correct when it is the value and unique; enters_first / exits_first: the first / last visible frame inside
  the clip of the two matched truth objects; nearest / furthest: of every truth box at the frame of t, the one
  with the largest / smallest raw bottom edge y + h (ground contact, static camera).

Questions (the `fact` JSON of qa_pairs, fm_assets.labels.qa's docstring)
-----------------------------------------------------------------------
A question is correct when the truth gives the same answer.  Questions about one object use its matched truth
object; "which object" questions (value = a track id) are recomputed over ALL truth objects of the clip, so an
object the pipeline missed can make them wrong; a question about a track without a truth match is wrong
(`unmatched`).  Grounded questions also need the action window [action_start_s, action_end_s] to overlap the
truth window with IoU >= WINDOW_IOU (0.5); the truth window of the target's truth object, by the fact's
`window`: motion = [onset_s, end_s], first_move / last_move = that move segment, stops = first stop start ..
last stop end; each cut to the object's visible part in the clip and, with `with`, to the common visible part
of both truth objects.  Rows without a fact (LLM questions) and kinds this module does not know are
`unscored`, never correct.

Windowed kinds (fact ``t0`` / ``t1``, or ``t``): each track they name is matched, for that question only, to the
truth object its boxes cover best over the window (mean IoU over the window's sampled frames where either has a
box, at least MIN_IOU; t +- WINDOW_PAD_S for a time; not one-to-one, so two pieces of one object's track both
match it). direction_during: the direction word of the smoothed centre and size from t0 to t1 (wrong when the
truth object is not seen at both; still_during asks the same of a window where the value is "stationary");
then_during: the direction words of the smoothed centre over [t0, tm0] and over [tm1, t1] (the two phases, in
order); heading_during: the side of the frame (as heading) of the smoothed centre's
displacement from t0 to t1; region_at: the cell of the smoothed centre at t; relative_at: the larger of the
centre offsets at t (left / right / above / below), doubtful when within RELATIVE_MARGIN (x 1.15) of the other or
under RELATIVE_MIN (2 % of the diagonal); both tracks on one truth object are wrong; faster_during: the longer
smoothed centre path over [t0, t1] (both seen throughout); approach_during: closer / apart when the distance
between the smoothed centres changes by more than APPROACH_FRAC (5 %) of the diagonal from t0 to t1, same
otherwise, doubtful within DISP_MARGIN of it, wrong when both tracks are one truth object; g_direction_during: the one truth object, of those seen
at least MIN_WINDOW_VISIBLE_S (0.3 s) of the window, whose direction over its visible part of it is d (and whose
centre is in the cell at the fact's t, with a region; with an ``extreme`` side, the one of those whose centre at
the window's middle, or its nearest seen moment, is furthest toward that side, doubtful when the runner-up is within
REGION_MARGIN); its window is ``given``: the target's visible part of [t0, t1]; g_enters_during / g_exits_during: the one truth object whose first (last) box in the clip comes after
the clip's first frame (before its last) at t0 <= t <= t1 with the box within CROSS_EDGE (2 %) of the frame of
that side (doubtful: t within ORDER_GAP_S of t0 or t1, the box 1-4 % from the side); window ``given``;
enters_side / exits_side: the side the matched truth object's first (last) box in the clip touches, when that
box comes after the clip's first frame (before its last) within CROSS_NEAR_S of the fact's t (doubtful within
ORDER_GAP_S of that limit, or with the box 1-4 % from a side).

Doubtful (reported apart, not in precision): the truth fact sits on a class boundary -- a direction within
ANGLE_MARGIN (5 degrees) of a sector edge, a displacement within DISP_MARGIN (1 % of the diagonal) of the 2 %
stationary threshold (or of the 5 % toward / away centre limit), a size ratio within 10 % of 1.25, a centre
within REGION_MARGIN (3 % of the width / height) of a grid line, a heading within 5 degrees of a diagonal;
times closer than ORDER_GAP_S (0.3 s) in an order (onsets and ends over the readings below); counts (stops,
repetitions, turns) and "moves at all" that change when one of their thresholds moves (the still radius x 0.5 /
x 1.5, the shortest stop 0.35 / 0.7 s, the repetition leg x 0.5 / x 2, the turn tolerance x 0.75 / x 1.25 or
angle +-10 degrees); a "which object" / count / majority answer that some reading of the objects on a boundary
changes (a count_direction also when an object moving d is visible 0.8-1.2 s); a comparison (longest, fastest)
whose runner-up is within 10 %; a distance change within 1 % of the +-5 % approach threshold (g_approach);
bottom edges within BOTTOM_MARGIN (2 % of the height) for nearest / furthest; a time t within 0.3 s of a
segment boundary for direction_at.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fm_assets.labels.vocab import (
    REGIONS,
    REPETITION_MIN_FRAC,
    SCALE_RATIO,
    SECTORS,
    STATIONARY_FRAC,
    TOWARD_CENTRE_FRAC,
)

MIN_IOU = 0.3
EDGE_PX = 1.0  # a box within this of the frame's edge may be cut by it
WINDOW_IOU = 0.5
SMOOTH_S = 0.5
MIN_STOP_S = 0.5
LEAD_S = 0.2  # shortest still part at the start / end of the visible part
STILL_RADIUS = 0.005  # diagonals
REP_MIN_FRAC = REPETITION_MIN_FRAC
TURN_TOL = 0.02  # diagonals
TURN_DEG = 45.0
APPROACH_FRAC = 0.05
MIN_VISIBLE_S = 0.5
COUNT_VISIBLE_S = 1.0
ANGLE_MARGIN = 5.0
DISP_MARGIN = 0.01
SCALE_MARGIN = 1.1
REGION_MARGIN = 0.03
ORDER_GAP_S = 0.3
COMPARE_MARGIN = 1.1
BOTTOM_MARGIN = 0.02
MAX_READINGS = 4096  # readings of boundary objects enumerated before a pooled answer is called doubtful

MOVE_DIRECTIONS = (*SECTORS, "toward", "away")
SIDES = ("left", "right", "top", "bottom")  # of the frame
OBJECT_KINDS = {"starts_first", "stops_first", "which_direction", "which_activity", "longest", "fastest",
                "nearest", "furthest", "enters_first", "exits_first", "faster_during"}
KNOWN_KINDS = {"direction", "direction_at", "activity", "start_region", "end_region", "heading", "first_move",
               "last_move", "repetitions", "n_stops", "count_direction", "majority_direction", *OBJECT_KINDS,
               "g_longest", "g_fastest", "g_turns", "g_direction", "g_activity", "g_approach", "g_after_stop",
               "g_before_start", "g_starts_before", "g_starts_after", "g_cf_direction", "g_cf_mover",
               "direction_during", "heading_during", "still_during", "then_during", "region_at", "relative_at",
               "faster_during", "approach_during", "g_direction_during", "g_enters_during", "g_exits_during",
               "enters_side", "exits_side"}
# kinds about a time window (fact t0 / t1, or t): their tracks are matched to truth over that window only
WINDOWED_KINDS = {"direction_during", "heading_during", "still_during", "then_during", "region_at", "relative_at",
                  "faster_during", "approach_during", "g_direction_during", "g_enters_during", "g_exits_during",
                  "enters_side", "exits_side"}
RELATIVE_MARGIN = 1.15  # relative_at: the larger offset must beat the other by this factor ...
RELATIVE_MIN = 0.02  # ... and be at least this fraction of the diagonal
WINDOW_PAD_S = 0.5  # region_at: the track is matched over t +- this
MIN_WINDOW_VISIBLE_S = 0.3  # g_direction_during: objects seen at least this long in the window take part
CROSS_EDGE = 0.02  # g_enters_during / g_exits_during: a box within this fraction of the frame of a side touches it
CROSS_NEAR_S = 1.0  # enters_side / exits_side: the truth object enters (leaves) within this of the question's time

__all__ = ["ClipTruth", "ObjFacts", "Seg", "Verdict", "box_iou", "boxes_by_track", "clip_truth", "evaluate_video",
           "match_tracks", "object_facts", "read_truth", "sampled_frames", "score_question", "summarize",
           "truth_answer", "truth_for_videos", "turns", "window_match"]


# --------------------------------------------------------------------------------------------------
# Truth files


def truth_for_videos(gt_dir: Path, video_ids: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
    """(video id -> its truth file, video ids without one), by `fm eval mot`'s layouts and name rule."""
    from fm_assets.evaluation.mot import _named, find_gt

    files = find_gt(Path(gt_dir))
    ids = sorted(set(video_ids))
    found: dict[str, Path] = {}
    for seq, path in files.items():
        for vid in _named(ids, seq):
            found.setdefault(vid, path)
    return found, [v for v in ids if v not in found]


def read_truth(path: Path) -> dict[int, dict[int, tuple[float, float, float, float]]]:
    """oid -> {decoded frame index (0-based): (x1, y1, x2, y2)} of a MOTChallenge truth file (malformed lines
    and conf-0 rows dropped; the first box of a repeated (frame, id) kept)."""
    out: dict[int, dict[int, tuple[float, float, float, float]]] = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        try:
            f, oid, x, y, w, h = (float(p) for p in parts[:6])
            conf = float(parts[6]) if len(parts) > 6 and parts[6] else 1.0
        except ValueError:
            continue
        if not all(map(math.isfinite, (f, oid, x, y, w, h))) or f < 1 or w <= 0 or h <= 0 or conf == 0:
            continue
        out[int(oid)].setdefault(int(f) - 1, (x, y, x + w, y + h))
    return dict(out)


# --------------------------------------------------------------------------------------------------
# Matching


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _mean_iou(boxes: dict[int, tuple], truth: dict[int, tuple]) -> float:
    """Sum of the box IoUs on the frames both have / number of frames either has (0 when none)."""
    either = len(boxes.keys() | truth.keys())
    return sum(box_iou(boxes[f], truth[f]) for f in boxes.keys() & truth.keys()) / either if either else 0.0


def match_tracks(tracks: dict[int, dict[int, tuple]], truth: dict[int, dict[int, tuple]],
                 frames: Iterable[int] | None = None, min_iou: float = MIN_IOU) -> tuple[dict[int, int], dict]:
    """(track id -> truth id, {(track, truth): mean IoU}) by Hungarian assignment on the mean IoU over the
    frames where either has a box (only `frames`, when given: the frames the pipeline looked at)."""
    from scipy.optimize import linear_sum_assignment

    keep = set(frames) if frames is not None else None
    tids, oids = sorted(tracks), sorted(truth)
    if not tids or not oids:
        return {}, {}
    tr = {o: ({f: b for f, b in truth[o].items() if f in keep} if keep is not None else truth[o]) for o in oids}
    score = np.zeros((len(tids), len(oids)))
    for i, tid in enumerate(tids):
        for j, oid in enumerate(oids):
            score[i, j] = _mean_iou(tracks[tid], tr[oid])
    rows, cols = linear_sum_assignment(-score)
    scores = {(tids[i], oids[j]): float(score[i, j]) for i in range(len(tids)) for j in range(len(oids))
              if score[i, j] > 0}
    return {tids[i]: oids[j] for i, j in zip(rows, cols) if score[i, j] >= min_iou}, scores


# --------------------------------------------------------------------------------------------------
# Geometry


def _direction(dx: float, dy: float, ratio: float, diag: float, stationary: bool = True) -> str:
    """The generator's direction word of a centre displacement (px, y down) and a size ratio end / start."""
    disp = math.hypot(dx, dy)
    if (ratio > SCALE_RATIO or ratio < 1 / SCALE_RATIO) and disp < TOWARD_CENTRE_FRAC * diag:
        return "toward" if ratio > 1 else "away"
    if stationary and disp < STATIONARY_FRAC * diag:
        return "stationary"
    if disp == 0:
        return "stationary"
    angle = math.degrees(math.atan2(-dy, dx)) % 360.0
    return SECTORS[int(((angle + 22.5) % 360.0) // 45.0)]


def _directions(dx: float, dy: float, ratio: float, diag: float, stationary: bool = True) -> frozenset[str]:
    """Every direction word the displacement could have within the doubt margins."""
    ang, r = math.atan2(dy, dx), math.hypot(dx, dy)
    out = set()
    for da in (-ANGLE_MARGIN, 0.0, ANGLE_MARGIN):
        for dr in (-DISP_MARGIN, 0.0, DISP_MARGIN):
            for k in (1 / SCALE_MARGIN, 1.0, SCALE_MARGIN):
                rr = max(r + dr * diag, 0.0)
                a = ang + math.radians(da)
                out.add(_direction(rr * math.cos(a), rr * math.sin(a), max(ratio, 1e-9) * k, diag, stationary))
    return frozenset(out)


def _region(x: float, y: float, w: float, h: float) -> str:
    return REGIONS[min(2, max(0, int(3 * y / h)))][min(2, max(0, int(3 * x / w)))]


def _regions(x: float, y: float, w: float, h: float) -> frozenset[str]:
    m = REGION_MARGIN
    return frozenset(_region(x + a * w, y + b * h, w, h) for a in (-m, 0.0, m) for b in (-m, 0.0, m))


def _side(dx: float, dy: float, diag: float) -> str | None:
    if math.hypot(dx, dy) < STATIONARY_FRAC * diag:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "bottom" if dy > 0 else "top"


def _sides(dx: float, dy: float, diag: float) -> frozenset:
    ang, r = math.atan2(dy, dx), math.hypot(dx, dy)
    return frozenset(_side(max(r + dr * diag, 0) * math.cos(ang + math.radians(da)),
                           max(r + dr * diag, 0) * math.sin(ang + math.radians(da)), diag)
                     for da in (-ANGLE_MARGIN, 0.0, ANGLE_MARGIN) for dr in (-DISP_MARGIN, 0.0, DISP_MARGIN))


def _smooth(t: np.ndarray, v: np.ndarray, width: float = SMOOTH_S) -> np.ndarray:
    """Local-linear fit of the columns of v at each t over [t - width / 2, t + width / 2]."""
    out = v.astype(float).copy()
    if len(t) < 3 or width <= 0:
        return out
    half = width / 2 + 1e-9
    for i, ti in enumerate(t):
        sel = np.abs(t - ti) <= half
        if sel.sum() < 3:
            continue
        tt = t[sel] - ti
        a = np.column_stack([np.ones_like(tt), tt])
        coef, *_ = np.linalg.lstsq(a, v[sel], rcond=None)
        out[i] = coef[0]
    return out


def _rdp(xy: np.ndarray, tol: float, t: np.ndarray | None = None) -> list[int]:
    """Indices of the Ramer-Douglas-Peucker simplification of a path; with times t, the distance of a point is
    to where the segment's constant-velocity motion puts it at that time (catches reversals along a line)."""
    if len(xy) < 3:
        return list(range(len(xy)))
    keep = {0, len(xy) - 1}
    stack = [(0, len(xy) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        p, q = xy[a], xy[b]
        seg = q - p
        n = math.hypot(*seg)
        pts = xy[a + 1:b]
        if t is not None:
            u = ((t[a + 1:b] - t[a]) / (t[b] - t[a]))[:, None] if t[b] > t[a] else np.zeros((len(pts), 1))
            d = np.hypot(*(pts - (p + u * seg)).T)
        elif n > 0:
            d = np.abs(seg[0] * (pts[:, 1] - p[1]) - seg[1] * (pts[:, 0] - p[0])) / n
        else:
            d = np.hypot(pts[:, 0] - p[0], pts[:, 1] - p[1])
        k = int(np.argmax(d))
        if d[k] > tol:
            keep.add(a + 1 + k)
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    return sorted(keep)


def turns(xy: np.ndarray, tol: float, turn_deg: float = TURN_DEG) -> int:
    """Vertices of the simplified path (tolerance tol, px) where the heading changes by more than turn_deg
    (pieces shorter than tol ignored)."""
    xy = np.asarray(xy, float)
    if len(xy) < 3:
        return 0
    pts = xy[_rdp(xy, tol)]
    vec = np.diff(pts, axis=0)
    vec = vec[np.hypot(vec[:, 0], vec[:, 1]) > tol]
    if len(vec) < 2:
        return 0
    ang = np.degrees(np.arctan2(vec[:, 1], vec[:, 0]))
    change = np.abs((np.diff(ang) + 180.0) % 360.0 - 180.0)
    return int((change > turn_deg).sum())


def _zigzag_legs(v: np.ndarray, threshold: float) -> int:
    """Legs of the zig-zag of a course: reversals of at least `threshold` from the running extreme."""
    if len(v) < 2:
        return 0
    legs, direction, pivot, extreme = 0, 0, v[0], v[0]
    for x in v[1:]:
        if direction >= 0 and x > extreme:
            extreme = x
        elif direction <= 0 and x < extreme:
            extreme = x
        if direction == 0:
            if abs(x - pivot) >= threshold:
                direction, legs, extreme = (1 if x > pivot else -1), 1, x
            continue
        if (direction > 0 and extreme - x >= threshold) or (direction < 0 and x - extreme >= threshold):
            direction, legs, pivot, extreme = -direction, legs + 1, extreme, x
    return legs


def _still_mask(t: np.ndarray, pts: np.ndarray, radius: float, min_stop: float, dt: float) -> np.ndarray:
    """Frames inside some window of >= min_stop seconds whose points (n x k) span at most 2 radius (the
    bounding box's diagonal).  The longest such window from frame i never ends before the one from i - 1."""
    n = len(t)
    still = np.zeros(n, bool)
    j = 0
    for i in range(n):
        j = max(j, i)
        while j + 1 < n:
            win = pts[i:j + 2]
            if math.hypot(*(win.max(axis=0) - win.min(axis=0))) > 2 * radius:
                break
            j += 1
        if t[j] - t[i] + dt >= min_stop - 1e-9:
            still[i:j + 1] = True
    return still


@dataclass(frozen=True)
class Seg:
    t0: float
    t1: float
    kind: str  # "move" / "stop"
    word: str = "stationary"  # the direction word of a move
    dirs: frozenset = frozenset({"stationary"})  # the words it could have within the doubt margins


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    out, n, i = [], len(mask), 0
    while i < n:
        j = i
        while j + 1 < n and mask[j + 1] == mask[i]:
            j += 1
        if mask[i]:
            out.append((i, j))
        i = j + 1
    return out


def _median3(v: np.ndarray) -> np.ndarray:
    if len(v) < 3:
        return v
    return np.concatenate([v[:1], np.median(np.stack([v[:-2], v[1:-1], v[2:]]), axis=0), v[-1:]])


def _still(t: np.ndarray, sm: np.ndarray, raw: np.ndarray, radius: float, min_stop: float, dt: float) -> np.ndarray:
    """Still frames: cores where the smoothed points `sm` keep within a span of 2 radius for >= min_stop / 2
    (smoothing rounds a stop's corners off), each grown / trimmed to the frames whose raw points (median of 3)
    are within radius of the core's median and kept when that lasts >= min_stop;
    plus a leading (trailing) still part of >= LEAD_S: the frames before the object first gets 2 radius away
    from where it starts (after it last was that far from where it ends), down to the last (from the first)
    within radius."""
    n = len(t)
    raw = _median3(raw)
    core = _still_mask(t, sm, radius, max(min_stop / 2, dt), dt)
    still = np.zeros(n, bool)
    for i, j in _runs(core):
        mid = np.median(raw[i:j + 1], axis=0)
        near = np.hypot.reduce(raw - mid, axis=1) <= radius
        a, b = i, j
        while a > 0 and near[a - 1]:
            a -= 1
        while b + 1 < n and near[b + 1]:
            b += 1
        while a < b and not near[a]:
            a += 1
        while b > a and not near[b]:
            b -= 1
        if near[a] and t[b] - t[a] + dt >= min_stop - 1e-9:
            still[a:b + 1] = True
    for order in (np.arange(n), np.arange(n)[::-1]):
        ref = np.median(raw[order[:3]], axis=0)
        d = np.hypot.reduce(raw[order] - ref, axis=1)
        away = np.flatnonzero(d > 2 * radius)
        if not len(away):
            return np.ones(n, bool)
        close = np.flatnonzero(d[:away[0]] <= radius)
        if len(close) and abs(t[order[close[-1]]] - t[order[0]]) + dt >= LEAD_S - 1e-9:
            still[order[:close[-1] + 1]] = True
    return still


def _segments(t, xy, size, diag, dt, radius, min_stop, raw) -> list[Seg]:
    """Stop segments (runs of still frames, from the first to the last still frame) and move segments (from
    the last still frame before to the first still frame after, cut where the direction word of the smoothed
    course changes); a move that never gets 2 radius away from where it started is still."""
    pts = np.column_stack([xy, size])
    still = _still(t, pts, raw, radius * diag, min_stop, dt)
    n = len(t)
    for i, j in _runs(~still):
        a, b = max(i - 1, 0), min(j + 1, n - 1)
        if np.hypot.reduce(pts[a:b + 1] - pts[a], axis=1).max() < 2 * radius * diag:
            still[i:j + 1] = True
    segs: list[Seg] = []
    n, i = len(t), 0
    while i < n:
        j = i
        while j + 1 < n and still[j + 1] == still[i]:
            j += 1
        if still[i]:
            segs.append(Seg(float(t[i]), float(t[j]), "stop"))
        else:
            a, b = max(i - 1, 0), min(j + 1, n - 1)
            cuts = [a + k for k in _rdp(xy[a:b + 1], TURN_TOL * diag, t[a:b + 1])]
            pieces: list[list] = []
            for p, q in zip(cuts, cuts[1:]):
                d = xy[q] - xy[p]
                word = _direction(d[0], d[1], size[q] / max(size[p], 1e-9), diag, stationary=False)
                if pieces and pieces[-1][2] == word:
                    pieces[-1][1] = q
                else:
                    pieces.append([p, q, word])
            for p, q, word in pieces:
                d = xy[q] - xy[p]
                segs.append(Seg(float(t[p]), float(t[q]), "move", word,
                                _directions(d[0], d[1], size[q] / max(size[p], 1e-9), diag, stationary=False)))
        i = j + 1
    return segs


@dataclass
class ObjFacts:
    """The truth facts of one object over its visible part of a clip; each fact is the set of values it could
    take within the doubt margins (one value: clear)."""

    oid: int
    t_first: float
    t_last: float
    direction: frozenset
    start_region: frozenset
    end_region: frozenset
    side: frozenset
    segments: list[Seg]
    n_stops: frozenset
    repetitions: frozenset
    n_turns: frozenset
    distance: float
    mean_speed: float
    mover: frozenset
    onset: float | None
    end: float | None
    onset_span: tuple[float, float] | None  # range of onset_s over the readings of the thresholds
    end_span: tuple[float, float] | None
    activity: frozenset
    stop_windows: list[tuple[float, float]]
    position: Callable[[float], tuple[float, float] | None] = field(repr=False)  # smoothed centre at t
    size: Callable[[float], float | None] = field(repr=False)  # smoothed size sqrt(w h) at t (None: not visible)
    bottom: Callable[[float], float | None] = field(repr=False)  # bottom edge of the box at t (None: not visible)
    visible_s: float = 0.0
    first_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x1, y1, x2, y2 of its first box in the clip
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # ... and of its last

    def moves(self) -> list[Seg]:
        return [s for s in self.segments if s.kind == "move"]


def _activity(n_stops: int, reps: int, n_dirs: int, n_turns: int) -> str | None:
    if n_stops == 0 and reps == 0 and n_dirs == 1 and n_turns == 0:
        return "steady"
    if n_stops >= 1 and reps == 0:
        return "stop_and_go"
    if reps >= 1 and n_stops == 0:
        return "back_and_forth"
    return None


def object_facts(oid: int, frames: np.ndarray, boxes: np.ndarray, fps: float, width: int, height: int) -> ObjFacts:
    """Truth facts of one object from its boxes (n x 4: x1, y1, x2, y2) on decoded frames (0-based) of a clip."""
    order = np.argsort(frames)
    frames, boxes = np.asarray(frames)[order], np.asarray(boxes, float)[order]
    t = frames / fps
    dt = 1.0 / fps
    diag = math.hypot(width, height)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    size = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9, None))
    # a box at the frame's edge may be cut by it (an object entering or leaving): its size is not the object's
    cut = ((boxes[:, 0] <= EDGE_PX) | (boxes[:, 1] <= EDGE_PX) | (boxes[:, 2] >= width - EDGE_PX)
           | (boxes[:, 3] >= height - EDGE_PX))
    if cut.any() and not cut.all():
        size = np.interp(t, t[~cut], size[~cut])
    sm = _smooth(t, np.column_stack([cx, cy, size]))
    xy, s = sm[:, :2], sm[:, 2]
    d = xy[-1] - xy[0]
    ratio = s[-1] / max(s[0], 1e-9)
    # the nominal reading, and one threshold moved at a time: a count that changes is on a boundary
    raw = np.column_stack([cx, cy, size])
    readings = {(r, m): _segments(t, xy, s, diag, dt, r, m, raw)
                for r, m in ((STILL_RADIUS, MIN_STOP_S), (STILL_RADIUS * 0.5, MIN_STOP_S),
                             (STILL_RADIUS * 1.5, MIN_STOP_S), (STILL_RADIUS, 0.35), (STILL_RADIUS, 0.7))}
    segs = readings[(STILL_RADIUS, MIN_STOP_S)]

    def stops_of(sg: list[Seg]) -> list[Seg]:
        mv = [k for k, x in enumerate(sg) if x.kind == "move"]
        return [x for k, x in enumerate(sg) if x.kind == "stop" and mv and mv[0] < k < mv[-1]]

    def onset_end(sg: list[Seg]):
        mv = [x for x in sg if x.kind == "move"]
        return (mv[0].t0, mv[-1].t1) if mv else (None, None)

    n_stops = frozenset(len(stops_of(sg)) for sg in readings.values())
    movers = frozenset(bool(onset_end(sg)[0] is not None) for sg in readings.values())
    ons = [onset_end(sg) for sg in readings.values() if onset_end(sg)[0] is not None]
    onset, end = onset_end(segs)
    coords = np.column_stack([xy, s])
    axis = int(np.argmax(np.abs(np.diff(coords, axis=0)).sum(axis=0))) if len(coords) > 1 else 0
    reps = frozenset(_zigzag_legs(coords[:, axis], f * diag) // 2
                     for f in (REP_MIN_FRAC * 0.5, REP_MIN_FRAC, REP_MIN_FRAC * 2))
    n_turns = frozenset(turns(xy, tol * diag, deg) for tol, deg in ((TURN_TOL, TURN_DEG), (TURN_TOL * 0.75, TURN_DEG),
                                                                     (TURN_TOL * 1.25, TURN_DEG),
                                                                     (TURN_TOL, TURN_DEG - 10), (TURN_TOL, TURN_DEG + 10)))
    distance = float(np.hypot(*np.diff(xy, axis=0).T).sum()) / diag if len(xy) > 1 else 0.0
    move_s = sum(x.t1 - x.t0 for x in segs if x.kind == "move")
    n_dirs = len({x.word for x in segs if x.kind == "move"})
    activity = frozenset(_activity(a, b, n_dirs, c) for a in n_stops for b in reps for c in n_turns)
    sw = stops_of(segs)
    fr = frames.astype(int)
    bottoms = dict(zip(fr.tolist(), boxes[:, 3].tolist()))

    def position(at: float) -> tuple[float, float] | None:
        if at < t[0] - dt / 2 or at > t[-1] + dt / 2:
            return None
        return float(np.interp(at, t, xy[:, 0])), float(np.interp(at, t, xy[:, 1]))

    def bottom(at: float) -> float | None:
        return bottoms.get(int(round(at * fps)))

    def size_at(at: float) -> float | None:
        if at < t[0] - dt / 2 or at > t[-1] + dt / 2:
            return None
        return float(np.interp(at, t, s))

    return ObjFacts(
        oid=oid, t_first=float(t[0]), t_last=float(t[-1]),
        direction=_directions(d[0], d[1], ratio, diag),
        start_region=_regions(xy[0, 0], xy[0, 1], width, height),
        end_region=_regions(xy[-1, 0], xy[-1, 1], width, height),
        side=_sides(d[0], d[1], diag), segments=segs, n_stops=n_stops, repetitions=reps, n_turns=n_turns,
        distance=distance, mean_speed=distance / move_s if move_s > 0 else 0.0, mover=movers, onset=onset, end=end,
        onset_span=(min(a for a, _ in ons), max(a for a, _ in ons)) if ons else None,
        end_span=(min(b for _, b in ons), max(b for _, b in ons)) if ons else None,
        activity=activity, stop_windows=[(x.t0, x.t1) for x in sw], position=position, size=size_at, bottom=bottom,
        visible_s=float(t[-1] - t[0] + dt), first_box=tuple(map(float, boxes[0])), last_box=tuple(map(float, boxes[-1])))


@dataclass
class ClipTruth:
    """The truth objects of one clip (times in seconds from the start of the video)."""

    width: int
    height: int
    fps: float
    start_s: float
    end_s: float
    objs: dict[int, ObjFacts]

    @property
    def diag(self) -> float:
        return math.hypot(self.width, self.height)

    def pool(self, min_s: float = MIN_VISIBLE_S) -> list[int]:
        return sorted(o for o, f in self.objs.items() if f.visible_s >= min_s - 1e-9)


def clip_truth(truth: dict[int, dict[int, tuple]], clip: dict) -> ClipTruth:
    """The truth objects of a clip (raw_clips row: start_frame, end_frame, fps, width, height, start_s, end_s)."""
    a, b, fps = int(clip["start_frame"]), int(clip["end_frame"]), float(clip["fps"])
    objs = {}
    for oid, boxes in truth.items():
        fr = sorted(f for f in boxes if a <= f < b)
        if not fr:
            continue
        objs[oid] = object_facts(oid, np.array(fr), np.array([boxes[f] for f in fr]), fps, int(clip["width"]),
                                 int(clip["height"]))
    start = float(clip["start_s"]) if clip.get("start_s") is not None else a / fps
    end = float(clip["end_s"]) if clip.get("end_s") is not None else b / fps
    return ClipTruth(int(clip["width"]), int(clip["height"]), fps, start, end, objs)


# --------------------------------------------------------------------------------------------------
# Scoring


@dataclass
class Verdict:
    status: str  # correct / wrong / doubtful / unscored
    reason: str = ""
    truth: object = None


class _Doubt(Exception):
    pass


class _Unmatched(Exception):
    pass


def _one(values: frozenset, what: str):
    if len(values) != 1:
        raise _Doubt(f"{what} on a boundary: {sorted(map(str, values))}")
    return next(iter(values))


def _readings(oids: list[int], options: Callable[[int], frozenset], answer: Callable[[dict], object], what: str):
    """The answer over every reading of the objects whose value is on a boundary; doubtful when it varies."""
    unsure = [o for o in oids if len(options(o)) > 1]
    sure = {o: next(iter(options(o))) for o in oids if len(options(o)) == 1}
    n = math.prod(len(options(o)) for o in unsure)
    if n > MAX_READINGS:
        raise _Doubt(f"{what}: {len(unsure)} objects on a boundary")
    outcomes = set()
    for combo in itertools.product(*(sorted(options(o), key=str) for o in unsure)):
        outcomes.add(answer({**sure, **dict(zip(unsure, combo))}))
        if len(outcomes) > 1:
            raise _Doubt(f"{what} depends on objects on a boundary ({', '.join(f'#{o}' for o in unsure)})")
    return outcomes.pop()


def _unique(ids: list[int]) -> int | None:
    return ids[0] if len(ids) == 1 else None


def _extreme_mover(truth: ClipTruth, ids: list[int], side: str, t0: float, t1: float) -> int | None:
    """Of the objects ids (those moving the direction asked about), the one whose centre at the middle of
    [t0, t1] (its nearest seen moment, for one not seen then) is furthest toward that side of the frame
    (left / right / top / bottom); doubtful when the runner-up is within REGION_MARGIN of the frame."""
    if side not in SIDES:
        raise ValueError(f"extreme {side!r} is not a side of the frame")
    tm = (t0 + t1) / 2
    axis, size = (0, truth.width) if side in ("left", "right") else (1, truth.height)
    sign = -1.0 if side in ("left", "top") else 1.0
    at = []
    for x in ids:
        f = truth.objs[x]
        p = f.position(min(max(tm, f.t_first), f.t_last))
        if p is not None:
            at.append((sign * p[axis] / size, x))
    if not at:
        return None
    at.sort(reverse=True)
    if len(at) > 1 and at[0][0] - at[1][0] < REGION_MARGIN:
        raise _Doubt(f"g_direction_during: #{at[0][1]} and #{at[1][1]} within {REGION_MARGIN:.0%} of the frame "
                     f"toward the {side}")
    return at[0][1]


def _earliest(truth: ClipTruth, oids: list[int], key: Callable[[ObjFacts], float | None],
              span: Callable[[ObjFacts], tuple[float, float] | None], what: str) -> int | None:
    """The object whose time is first by more than ORDER_GAP_S (None when an object has no time)."""
    vals = [(key(truth.objs[o]), o) for o in oids]
    if len(vals) < 2 or any(v is None for v, _ in vals):
        return None
    vals.sort()
    first = vals[0][1]
    lo_first = span(truth.objs[first])[1] if span(truth.objs[first]) else vals[0][0]
    for v, o in vals[1:]:
        sp = span(truth.objs[o])
        lo = sp[0] if sp else v
        if lo - lo_first < ORDER_GAP_S:
            raise _Doubt(f"{what}: #{first} and #{o} within {ORDER_GAP_S} s")
    return first


def _window(f: ObjFacts, kind: str, within: tuple[float, float] | None) -> tuple[float, float] | None:
    if kind == "motion":
        t0, t1 = f.onset, f.end
    elif kind in ("first_move", "last_move"):
        mv = f.moves()
        if not mv:
            return None
        m = mv[0] if kind == "first_move" else mv[-1]
        t0, t1 = m.t0, m.t1
    elif kind == "stops":
        if not f.stop_windows:
            return None
        t0, t1 = f.stop_windows[0][0], f.stop_windows[-1][1]
    else:
        return None
    if t0 is None or t1 is None:
        return None
    lo, hi = max(t0, f.t_first), min(t1, f.t_last + 1e-9)
    if within:
        lo, hi = max(lo, within[0]), min(hi, within[1])
    return (lo, hi) if hi > lo else None


def _crossing_time(truth: ClipTruth, f: ObjFacts, enters: bool) -> float | None:
    """When a truth object comes into (goes out of) the clip's view: its first (last) box, None when it is seen on
    the clip's first (last) frame (there all along)."""
    t = f.t_first if enters else f.t_last
    if (t <= truth.start_s + 0.5 / truth.fps) if enters else (t >= truth.end_s - 1.5 / truth.fps):
        return None
    return t


def _crossing_sides(truth: ClipTruth, f: ObjFacts, enters: bool, side: str) -> set[bool]:
    """Whether the object's first (last) box touches that side of the frame: within CROSS_EDGE of the frame's
    width / height; both readings 1-4 % from it."""
    x1, y1, x2, y2 = f.first_box if enters else f.last_box
    size = truth.width if side in ("left", "right") else truth.height
    gap = {"left": x1, "top": y1, "right": truth.width - x2, "bottom": truth.height - y2}[side] / size
    return {gap <= CROSS_EDGE} if not CROSS_EDGE / 2 < gap <= 2 * CROSS_EDGE else {True, False}


def _interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _best(truth: ClipTruth, oids: list[int], val: Callable[[ObjFacts], float], what: str) -> int | None:
    ranked = sorted(oids, key=lambda o: -val(truth.objs[o]))
    if not ranked:
        return None
    if len(ranked) > 1:
        a, b = val(truth.objs[ranked[0]]), val(truth.objs[ranked[1]])
        if a <= 0 or a < COMPARE_MARGIN * b:
            raise _Doubt(f"{what}: #{ranked[0]} {a:.3f} vs #{ranked[1]} {b:.3f} (within {COMPARE_MARGIN:g}x)")
    return ranked[0]


def _moved(f: ObjFacts, t0: float, t1: float, diag: float) -> frozenset:
    """The direction words of an object's smoothed centre and size from t0 to t1 (empty: not seen at both)."""
    a, b, sa, sb = f.position(t0), f.position(t1), f.size(t0), f.size(t1)
    if a is None or b is None or sa is None or sb is None:
        return frozenset()
    return _directions(b[0] - a[0], b[1] - a[1], sb / max(sa, 1e-9), diag)


def _path_length(f: ObjFacts, t0: float, t1: float, fps: float) -> float | None:
    """Length of an object's smoothed centre path over [t0, t1] (None: not seen over all of it)."""
    pts = [f.position(t) for t in np.append(np.arange(t0, t1, 1.0 / fps), t1)]
    if any(p is None for p in pts):
        return None
    return float(np.hypot(*np.diff(np.array(pts), axis=0).T).sum())


def window_match(tracks: dict[int, dict[int, tuple]], truth: dict[int, dict[int, tuple]], tids: Iterable[int],
                 frames: Iterable[int], min_iou: float = MIN_IOU) -> dict[int, int]:
    """Each of ``tids`` -> the truth object its boxes cover best over ``frames`` (a question's window): mean IoU
    over the frames where either has a box, at least ``min_iou``.  Not one-to-one: two pieces of one object's
    track (a track cut in two) both match it."""
    keep = set(frames)
    out = {}
    for tid in tids:
        boxes = {f: b for f, b in tracks.get(tid, {}).items() if f in keep}
        best, score = None, min_iou
        for oid, g in truth.items():
            v = _mean_iou(boxes, {f: b for f, b in g.items() if f in keep})
            if v >= score:
                best, score = oid, v
        if best is not None:
            out[tid] = best
    return out


def _needed(fact: dict) -> list[int]:
    """The tracks a question is about (the others listed are context)."""
    kind, value = fact["kind"], fact.get("value")
    tracks = [int(x) for x in fact.get("tracks") or []]
    if kind in ("count_direction", "majority_direction"):
        out = []
    elif kind.startswith("g_") or kind in OBJECT_KINDS:
        out = [int(value)] if isinstance(value, int) else []
    else:
        out = tracks[:1]
    out += [int(fact[k]) for k in ("ref", "with") if fact.get(k) is not None]
    if fact.get("scope") == "pair" or kind in ("enters_first", "exits_first", "relative_at", "faster_during",
                                                "approach_during"):
        out += tracks
    return sorted(set(out))


def truth_answer(fact: dict, truth: ClipTruth, match: dict[int, int]) -> tuple[object, object, int | None]:
    """(the truth's answer in fact space, the question's value mapped to truth space, the truth target object of
    a grounded question).  Raises _Unmatched (a needed track has no truth object) or _Doubt."""
    kind, value = fact["kind"], fact.get("value")
    missing = [t for t in _needed(fact) if match.get(t) is None or match[t] not in truth.objs]
    if missing:
        raise _Unmatched(f"unmatched: track(s) {missing} match no truth object")
    tracks = [int(x) for x in fact.get("tracks") or []]
    g = [match.get(t) for t in tracks]
    o = g[0] if g else None
    objs = truth.objs
    diag = truth.diag
    if kind == "direction":
        return _one(objs[o].direction, "direction"), value, None
    if kind == "direction_at":
        t = float(fact["t"])
        f = objs[o]
        at = {next((s for s in f.segments if s.t0 <= x <= s.t1), None) for x in (t - ORDER_GAP_S, t, t + ORDER_GAP_S)}
        seg = next((s for s in f.segments if s.t0 <= t <= s.t1), None)
        if seg is None:
            return None, value, None
        if len(at) > 1:
            raise _Doubt(f"direction_at: t = {t:.2f} s within {ORDER_GAP_S} s of a segment boundary")
        return _one(seg.dirs, "segment direction"), value, None
    if kind in ("direction_during", "still_during"):
        moved = _moved(objs[o], float(fact["t0"]), float(fact["t1"]), diag)
        return (_one(moved, "direction") if moved else None), value, None
    if kind == "then_during":
        phases = []
        for a, b in ((float(fact["t0"]), float(fact["tm0"])), (float(fact["tm1"]), float(fact["t1"]))):
            moved = _moved(objs[o], a, b, diag)
            if not moved:
                return None, value, None
            phases.append(_one(moved, "direction"))
        return phases, value, None
    if kind == "heading_during":
        a, b = objs[o].position(float(fact["t0"])), objs[o].position(float(fact["t1"]))
        if a is None or b is None:
            return None, value, None
        return _one(_sides(b[0] - a[0], b[1] - a[1], diag), "heading"), value, None
    if kind == "region_at":
        at = objs[o].position(float(fact["t"]))
        if at is None:
            return None, value, None
        return _one(_regions(at[0], at[1], truth.width, truth.height), "region"), value, None
    if kind in ("relative_at", "faster_during", "approach_during") and g[0] == g[1]:
        return None, value, None  # both tracks are one truth object: no relation between two objects
    if kind == "relative_at":
        at = [objs[x].position(float(fact["t"])) for x in g[:2]]
        if None in at:
            return None, value, None
        dx, dy = at[0][0] - at[1][0], at[0][1] - at[1][1]
        big, small = max(abs(dx), abs(dy)), min(abs(dx), abs(dy))
        if big < RELATIVE_MIN * diag or big < RELATIVE_MARGIN * small:
            raise _Doubt(f"relative_at: offset ({dx:.0f}, {dy:.0f}) px is near a diagonal or small")
        return (("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("below" if dy > 0 else "above")), value, None
    if kind == "approach_during":
        t0, t1 = float(fact["t0"]), float(fact["t1"])
        ends = [(objs[x].position(t0), objs[x].position(t1)) for x in g[:2]]
        if any(e is None for pair in ends for e in pair):
            return None, value, None
        (a0, a1), (b0, b1) = ends
        ch = (math.hypot(a1[0] - b1[0], a1[1] - b1[1]) - math.hypot(a0[0] - b0[0], a0[1] - b0[1])) / diag
        if abs(abs(ch) - APPROACH_FRAC) < DISP_MARGIN:
            raise _Doubt(f"approach_during: distance change {ch:+.3f} near +-{APPROACH_FRAC}")
        return ("closer" if ch < -APPROACH_FRAC else "apart" if ch > APPROACH_FRAC else "same"), value, None
    if kind == "faster_during":
        t0, t1 = float(fact["t0"]), float(fact["t1"])
        lengths = {x: _path_length(objs[x], t0, t1, truth.fps) for x in g[:2]}
        if None in lengths.values():
            return None, match.get(value), None
        return _best(truth, list(lengths), lambda f: lengths[f.oid], kind), match.get(value), None
    if kind == "g_direction_during":
        t0, t1, d, cell = float(fact["t0"]), float(fact["t1"]), fact["direction"], fact.get("region")
        seen = [x for x in objs if min(t1, objs[x].t_last) - max(t0, objs[x].t_first) >= MIN_WINDOW_VISIBLE_S]

        def reading(x: int) -> frozenset:
            dirs = _moved(objs[x], max(t0, objs[x].t_first), min(t1, objs[x].t_last), diag) or frozenset({None})
            if cell is None:
                return dirs
            at = objs[x].position(float(fact["t"]))
            cells = _regions(at[0], at[1], truth.width, truth.height) if at is not None else frozenset({None})
            return frozenset(itertools.product(dirs, cells))

        want = d if cell is None else (d, cell)
        if fact.get("extreme"):
            return _readings(seen, reading, lambda r: _extreme_mover(
                truth, [x for x, v in r.items() if v == want], fact["extreme"], t0, t1), kind), \
                match.get(value), match.get(value)
        return _readings(seen, reading, lambda r: _unique([x for x, v in r.items() if v == want]), kind), \
            match.get(value), match.get(value)
    if kind in ("g_enters_during", "g_exits_during"):
        t0, t1, side = float(fact["t0"]), float(fact["t1"]), fact["side"]
        enters = kind == "g_enters_during"

        def crosses(x: int) -> frozenset:
            t = _crossing_time(truth, objs[x], enters)
            if t is None:
                return frozenset({False})
            in_time = {t0 <= t <= t1} if min(abs(t - t0), abs(t - t1)) >= ORDER_GAP_S else {True, False}
            return frozenset(a and b for a in _crossing_sides(truth, objs[x], enters, side) for b in in_time)

        return _readings(list(objs), crosses, lambda r: _unique([x for x, v in r.items() if v]), kind), \
            match.get(value), match.get(value)
    if kind in ("enters_side", "exits_side"):
        enters, f = kind == "enters_side", objs[o]
        t = _crossing_time(truth, f, enters)
        if t is None or abs(t - float(fact["t"])) > CROSS_NEAR_S + ORDER_GAP_S:
            return None, value, None  # it does not enter (leave) the picture then
        if abs(t - float(fact["t"])) > CROSS_NEAR_S - ORDER_GAP_S:
            raise _Doubt(f"{kind}: it crosses {t - float(fact['t']):+.2f} s from the time asked about")
        readings = {k: _crossing_sides(truth, f, enters, k) for k in SIDES}
        touching = [k for k, r in readings.items() if True in r]
        if len(touching) != 1:
            if touching:
                raise _Doubt(f"{kind}: its box is near {' and '.join(touching)}")
            return None, value, None
        if readings[touching[0]] != {True}:
            raise _Doubt(f"{kind}: its box is {CROSS_EDGE / 2:.0%}-{2 * CROSS_EDGE:.0%} from the {touching[0]} side")
        return touching[0], value, None
    if kind == "activity":
        return _one(objs[o].activity, "activity"), value, None
    if kind == "start_region":
        return _one(objs[o].start_region, "start region"), value, None
    if kind == "end_region":
        return _one(objs[o].end_region, "end region"), value, None
    if kind == "heading":
        return _one(objs[o].side, "heading"), value, None
    if kind in ("first_move", "last_move"):
        mv = objs[o].moves()
        if not mv:
            return None, value, None
        return _one((mv[0] if kind == "first_move" else mv[-1]).dirs, kind), value, None
    if kind in ("repetitions", "n_stops"):
        return _one(getattr(objs[o], kind), kind), value, None
    if kind == "count_direction":
        d = fact["direction"]
        pool = truth.pool(COUNT_VISIBLE_S)
        near = [x for x in truth.pool(COUNT_VISIBLE_S - 0.2) if x not in truth.pool(COUNT_VISIBLE_S + 0.2)]
        if any(d in objs[x].direction for x in near):
            raise _Doubt(f"count_direction: an object moving {d} is visible about {COUNT_VISIBLE_S:g} s")
        return _readings(pool, lambda x: objs[x].direction, lambda r: sum(v == d for v in r.values()),
                         "count_direction"), value, None
    if kind == "majority_direction":
        pool = truth.pool()

        def majority(r: dict):
            c = Counter(v for x, v in r.items() if v in MOVE_DIRECTIONS)
            top = c.most_common(2)
            return top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else None

        movers = [x for x in pool if True in objs[x].mover]  # one that may not move may also count as still
        return _readings(movers, lambda x: objs[x].direction | ({"still"} if len(objs[x].mover) > 1 else frozenset()),
                         majority, "majority_direction"), value, None
    if kind in ("nearest", "furthest"):
        t = float(fact["t"])
        vis = sorted(((objs[x].bottom(t), x) for x in objs if objs[x].bottom(t) is not None),
                     reverse=kind == "nearest")
        if not vis:
            return None, match.get(value), None
        if len(vis) > 1 and abs(vis[0][0] - vis[1][0]) < BOTTOM_MARGIN * truth.height:
            raise _Doubt(f"{kind}: bottom edges of #{vis[0][1]} and #{vis[1][1]} within "
                         f"{BOTTOM_MARGIN:.0%} of the height")
        return vis[0][1], match.get(value), None
    if kind in ("enters_first", "exits_first"):
        key = (lambda f: f.t_first) if kind == "enters_first" else (lambda f: f.t_last)
        return _earliest(truth, g, key, lambda f: None, kind), match.get(value), None
    answer = match.get(value) if isinstance(value, int) else None
    pool = truth.pool()
    if kind in ("starts_first", "stops_first"):
        if fact.get("scope") == "all":
            unsure = [x for x in pool if len(objs[x].mover) > 1]
            if unsure:
                raise _Doubt(f"{kind}: #{unsure[0]} may or may not move")
            ids = [x for x in pool if True in objs[x].mover]
        else:
            ids = g
        if kind == "starts_first":
            return _earliest(truth, ids, lambda f: f.onset, lambda f: f.onset_span, kind), answer, None
        return _earliest(truth, ids, lambda f: f.end, lambda f: f.end_span, kind), answer, None
    if kind in ("which_direction", "g_direction"):
        d = fact["direction"]
        return _readings(pool, lambda x: objs[x].direction,
                         lambda r: _unique([x for x, v in r.items() if v == d]), kind), answer, answer
    if kind in ("which_activity", "g_activity"):
        act = fact["activity"]
        key = "n_stops" if act == "stop_and_go" else "repetitions"

        def which(r: dict):
            hits = [x for x, (n, _) in r.items() if n >= 1]
            return hits[0] if len(hits) == 1 and r[hits[0]][1] == act else None

        return _readings(pool, lambda x: frozenset(itertools.product(getattr(objs[x], key), objs[x].activity)), which,
                         kind), answer, answer
    if kind in ("longest", "g_longest"):
        return _best(truth, pool, lambda f: f.distance, "longest"), answer, answer
    if kind in ("fastest", "g_fastest"):
        return _best(truth, pool, lambda f: f.mean_speed, "fastest"), answer, answer
    if kind == "g_turns":
        def most(r: dict):
            ranked = sorted(r.items(), key=lambda kv: -kv[1])
            return ranked[0][0] if len(ranked) < 2 or ranked[0][1] > ranked[1][1] else None

        return _readings(pool, lambda x: objs[x].n_turns, most, "g_turns"), answer, answer
    ref = match.get(fact.get("ref", fact.get("with")))
    others = [x for x in pool if x != ref and True in objs[x].mover]
    if kind == "g_approach":
        d, relation = fact["direction"], fact["relation"]
        ok = []
        rf = objs[ref]
        for x in others:
            f = objs[x]
            t0, t1 = max(rf.t_first, f.t_first), min(rf.t_last, f.t_last)
            if t1 <= t0:
                continue
            (ax, ay), (bx, by) = rf.position(t0), f.position(t0)
            (cx_, cy_), (ex, ey) = rf.position(t1), f.position(t1)
            ch = (math.hypot(ex - cx_, ey - cy_) - math.hypot(bx - ax, by - ay)) / diag
            if abs(abs(ch) - APPROACH_FRAC) < DISP_MARGIN and d in f.direction:
                raise _Doubt(f"g_approach: distance change of #{x} {ch:+.3f} near +-{APPROACH_FRAC}")
            rel = "approaching" if ch < -APPROACH_FRAC else "moving_apart" if ch > APPROACH_FRAC else "steady"
            if rel == relation:
                ok.append(x)
        rivals = _readings(others, lambda x: objs[x].direction,
                           lambda r: tuple(sorted(x for x, v in r.items() if v == d)), "g_approach")
        hits = [x for x in ok if x in rivals]
        return (hits[0] if len(rivals) == 1 and len(hits) == 1 else None), answer, answer
    if kind == "g_cf_direction":
        d = fact["direction"]

        def cf(r: dict):
            hits = sorted(x for x, v in r.items() if v == d)
            return next((x for x in hits if x != ref), None) if len(hits) == 2 and ref in hits else None

        return _readings(pool, lambda x: objs[x].direction, cf, kind), answer, answer
    if kind == "g_cf_mover":
        def cfm(r: dict):
            mv = sorted(x for x, v in r.items() if v)
            return next((x for x in mv if x != ref), None) if len(mv) == 2 and ref in mv else None

        return _readings(pool, lambda x: objs[x].mover, cfm, kind), answer, answer
    if any(len(objs[x].mover) > 1 for x in pool if x != ref):
        raise _Doubt(f"{kind}: an object may or may not move")
    if kind in ("g_after_stop", "g_before_start", "g_starts_before", "g_starts_after"):
        r = objs[ref]
        if r.onset is None:
            return None, answer, answer

        def rel(x: int, key: str, pivot: float, pivot_span) -> int:
            """-1 before the pivot, 1 after, by more than ORDER_GAP_S (raises _Doubt in between)."""
            f = objs[x]
            v, sp = getattr(f, key), getattr(f, key + "_span") or (getattr(f, key),) * 2
            if sp[1] < pivot_span[0] - ORDER_GAP_S:
                return -1
            if sp[0] > pivot_span[1] + ORDER_GAP_S:
                return 1
            raise _Doubt(f"{kind}: #{x}'s {key} {v:.2f} s within {ORDER_GAP_S} s of #{ref}'s {pivot:.2f} s")

        if kind == "g_after_stop":
            rels = {x: rel(x, "onset", r.end, r.end_span) for x in others}
            return _unique([x for x, v in rels.items() if v > 0]), answer, answer
        if kind == "g_before_start":
            rels = {x: rel(x, "end", r.onset, r.onset_span) for x in others}
            return _unique([x for x, v in rels.items() if v < 0]), answer, answer
        rels = {x: rel(x, "onset", r.onset, r.onset_span) for x in others}
        return _unique([x for x, v in rels.items() if (v < 0) == (kind == "g_starts_before")]), answer, answer
    raise KeyError(f"unknown fact kind {kind!r}")


def score_question(row: dict, truth: ClipTruth | None, match: dict[int, int]) -> Verdict:
    """The verdict on one qa_pairs row (see the module docstring)."""
    if not row.get("fact"):
        return Verdict("unscored", "no fact (not a rule question)")
    try:
        fact = json.loads(row["fact"])
    except (TypeError, ValueError):
        return Verdict("unscored", "fact is not JSON")
    kind = fact.get("kind")
    if kind not in KNOWN_KINDS:
        return Verdict("unscored", f"kind {kind!r} cannot be scored from boxes")
    if truth is None:
        return Verdict("unscored", "no truth for the clip")
    try:
        want, got, target = truth_answer(fact, truth, match)
    except _Unmatched as exc:
        return Verdict("wrong", str(exc))
    except _Doubt as exc:
        return Verdict("doubtful", str(exc))
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # e.g. a pair kind naming one track
        return Verdict("unscored", f"malformed fact ({exc!r})")
    obj = kind.startswith("g_") or kind in OBJECT_KINDS
    if want is None:
        return Verdict("wrong", f"truth has no unique answer (question says {_show(got, obj)})")
    if want != got:
        return Verdict("wrong", f"truth {_show(want, obj)}, question {_show(got, obj)}", want)
    if row.get("grounded"):
        with_ = match.get(fact["with"]) if fact.get("with") is not None else None
        within = None
        if with_ is not None:
            a, b = truth.objs[target], truth.objs[with_]
            within = (max(a.t_first, b.t_first), min(a.t_last, b.t_last))
        if fact.get("window") == "given":  # the question names its window: the target's part of it
            f = truth.objs[target]
            lo, hi = max(float(fact["t0"]), f.t_first), min(float(fact["t1"]), f.t_last)
            win = (lo, hi) if hi > lo else None
        else:
            win = _window(truth.objs[target], fact.get("window", "motion"), within)
        if win is None:
            return Verdict("wrong", f"truth #{target} has no {fact.get('window')} window", want)
        a0, a1 = float(row["action_start_s"]), float(row["action_end_s"])
        iou = _interval_iou((a0, a1), win)
        if iou < WINDOW_IOU:
            return Verdict("wrong", f"window [{a0:.2f}, {a1:.2f}] vs truth [{win[0]:.2f}, {win[1]:.2f}] "
                                    f"(IoU {iou:.2f})", want)
    return Verdict("correct", "", want)


def _show(v, obj: bool) -> str:
    return f"object #{v}" if obj and v is not None else repr(v)


# --------------------------------------------------------------------------------------------------
# A video, and the summary


def boxes_by_track(rows: Iterable[dict]) -> dict[int, dict[int, tuple]]:
    out: dict[int, dict[int, tuple]] = defaultdict(dict)
    for r in rows:
        out[int(r["track_id"])][int(r["frame_idx"])] = (r["x1"], r["y1"], r["x2"], r["y2"])
    return dict(out)


def sampled_frames(clip: dict, tracks: dict[int, dict[int, tuple]]) -> list[int]:
    """The frames of the clip the pipeline looked at: its frames on the tracks' sampling grid (its step and phase:
    the grid of the clip's shot may start before the clip)."""
    a, b = int(clip["start_frame"]), int(clip["end_frame"])
    frames = {f for boxes in tracks.values() for f in boxes}
    if not frames:
        return list(range(a, b))
    first = min(frames)
    step = max(math.gcd(*(f - first for f in frames)), 1)
    return list(range(a + (first - a) % step, b, step))


def evaluate_video(video_id: str, clips: list[dict], tracks: list[dict], questions: list[dict],
                   truth: dict[int, dict[int, tuple]]) -> dict:
    """Verdicts on the kept questions of one video's kept clips: {video_id, kept_clips, questions: [...],
    matches: {clip_id: {track: [truth id, IoU]}}}."""
    kept = [c for c in clips if c.get("kept") is not False]
    by_clip_tracks: dict[str, list[dict]] = defaultdict(list)
    for r in tracks:
        by_clip_tracks[r["clip_id"]].append(r)
    out, matches = [], {}
    for c in sorted(kept, key=lambda c: c["start_frame"]):
        tb = boxes_by_track(by_clip_tracks.get(c["clip_id"], []))
        ct = clip_truth(truth, c)
        sampled = sampled_frames(c, tb)
        m, scores = match_tracks(tb, {o: truth[o] for o in ct.objs}, sampled)
        matches[c["clip_id"]] = {t: [o, round(scores[(t, o)], 3)] for t, o in m.items()}
        for q in questions:
            if q["clip_id"] != c["clip_id"] or q.get("kept") is False:
                continue
            kind, fact = None, {}
            try:
                fact = json.loads(q["fact"]) if q.get("fact") else {}
                kind = fact.get("kind")
            except (TypeError, ValueError):
                pass
            qm = m
            if kind in WINDOWED_KINDS:
                try:
                    t0, t1 = ((float(fact["t0"]), float(fact["t1"])) if "t0" in fact
                              else (float(fact["t"]) - WINDOW_PAD_S, float(fact["t"]) + WINDOW_PAD_S))
                    fps = float(c["fps"])
                    frames = [f for f in sampled if t0 - 1e-6 <= f / fps <= t1 + 1e-6]
                    qm = window_match(tb, {o: truth[o] for o in ct.objs}, _needed(fact), frames)
                except (KeyError, TypeError, ValueError):
                    qm = m
            v = score_question(q, ct, qm)
            out.append({"video_id": video_id, "clip_id": c["clip_id"], "qa_id": q.get("qa_id"),
                        "category": q.get("category"), "q_type": q.get("q_type"), "grounded": bool(q.get("grounded")),
                        "kind": kind or ("llm" if q.get("source") == "llm" else None), "question": q.get("question"),
                        "answer_text": q.get("answer_text"), "status": v.status, "reason": v.reason,
                        "truth": None if v.truth is None else str(v.truth)})
    return {"video_id": video_id, "kept_clips": len(kept), "questions": out, "matches": matches}


def _group(rows: list[dict]) -> dict:
    c = Counter(r["status"] for r in rows)
    scored = c["correct"] + c["wrong"]
    return {"n": len(rows), "correct": c["correct"], "wrong": c["wrong"], "doubtful": c["doubtful"],
            "unscored": c["unscored"], "precision": c["correct"] / scored if scored else None}


def summarize(videos: list[dict]) -> list[dict]:
    """Summary rows per video and for ALL: yield (kept clips, MCQ and grounded per kept clip, doubtful share)
    and precision (doubtful and unscored excluded) overall, per category, per grounded q_type and per kind."""
    scopes = [(v["video_id"], [v]) for v in videos] + ([("ALL", videos)] if len(videos) > 1 else [])
    out = []
    for name, vs in scopes:
        qs = [q for v in vs for q in v["questions"]]
        clips = sum(v["kept_clips"] for v in vs)
        mcq = sum(not q["grounded"] for q in qs)
        grounded = len(qs) - mcq
        base = {"video_id": name, "kept_clips": clips, "questions": len(qs),
                "mcq_per_clip": mcq / clips if clips else None,
                "grounded_per_clip": grounded / clips if clips else None,
                "doubtful_pct": 100.0 * sum(q["status"] == "doubtful" for q in qs) / len(qs) if qs else None}
        groups: list[tuple[str, str, list[dict]]] = [("overall", "all", qs)]
        for cat in sorted({q["category"] for q in qs if not q["grounded"] and q["category"]}):
            groups.append(("category", cat, [q for q in qs if not q["grounded"] and q["category"] == cat]))
        for qt in sorted({q["q_type"] for q in qs if q["grounded"] and q["q_type"]}):
            groups.append(("q_type", qt, [q for q in qs if q["grounded"] and q["q_type"] == qt]))
        for k in sorted({q["kind"] or "?" for q in qs}):
            groups.append(("kind", k, [q for q in qs if (q["kind"] or "?") == k]))
        for scope, group, rows in groups:
            out.append({**base, "scope": scope, "group": group, **_group(rows)})
    return out
