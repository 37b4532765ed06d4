"""Pure functions behind `qa_pairs`: multiple-choice questions in FoundationMotion's five categories whose answers
are computed from the motion facts (rule-based, verified by construction), GroundMoRe-style grounded questions
(the answer is one object over a time window), the selection / letter balancing / shuffling of a clip's
questions, and the checking of LLM-written questions against the facts.  No Dagster, no IO.

Inputs per clip: ``traj`` (rows of :data:`fm_assets.labels.motion_facts.TRAJECTORY_SCHEMA`; only ``kept`` rows are
used), ``pairs`` (:data:`~fm_assets.labels.motion_facts.PAIR_SCHEMA` rows) and ``clip`` (video_id, clip_id, start_s,
end_s).  Every random choice (phrasing, selection, letters, option order) is seeded with
:func:`fm_assets.labels.ids.seed_for` from the video id, so the same input gives the same rows.

Question kinds (``fact["kind"]``; every rule row carries ``fact`` = JSON {"kind", "tracks", "value", ...} with
the answer in fact space, so that a bench can recompute it from another source of facts)
-----------------------------------------------------------------------------------------------------------
- motion_recognition: ``direction`` (overall direction: 8 ways, toward / away from the camera),
  ``direction_at`` (the direction of the move under way at a time), ``activity`` (moves one way without
  stopping / stops and then continues / goes back and forth; distractor: stays still).
- location_motion: ``start_region`` / ``end_region`` (3x3 grid), ``heading`` (the side of the frame it moves
  toward).
- temporal_order: ``starts_first`` / ``stops_first`` (of all objects, or of a pair when the clip has 3 or more),
  ``first_move`` / ``last_move`` (the direction of its first / last move segment).
- motion_objects: ``which_direction`` (which object moves <direction>), ``which_activity`` (which object stops
  along the way / goes back and forth), ``longest`` (distance), ``fastest`` (mean speed); the answer is a
  referring expression (fact value: the track id).
- repetition_count: ``repetitions`` (back-and-forth cycles), ``n_stops``.

Grounded kinds (answer: one object, ``target_track_id`` over [action_start_s, action_end_s]; fact ``window``
says how the window was taken: ``motion`` = [onset_s, end_s], ``first_move`` / ``last_move`` = that move
segment, ``stops`` = first stop start .. last stop end, optionally clipped to the common window ``with``
another track):
- descriptive: ``g_longest``, ``g_fastest``, ``g_turns`` (changes direction most often), ``g_direction``,
  ``g_activity``;
- causal: ``g_approach`` (moves <d> to approach / to get away from <R>);
- sequential: ``g_after_stop`` (starts after R stops), ``g_before_start`` (stops before R starts),
  ``g_starts_before`` / ``g_starts_after`` (starts moving before / after R does);
- counterfactual: ``g_cf_direction`` (if R had stayed still, the only one moving <d>), ``g_cf_mover`` (the only
  one moving at all).

Ambiguity guards (no question rather than a doubtful one)
--------------------------------------------------------
- *untrusted* tracks are never asked about, and questions comparing all objects are skipped when the clip has
  one: ``box_noise`` > ``max_box_noise``; a box whose aspect ratio varies by more than ``max_box_change`` (a
  partial, split or merged blob) unless its centre moved further than the box's width or height changed (then
  the shape change cannot explain the motion: an object entering through the frame's edge); a doubtful identity (two tracks closer than half the larger box: occlusion,
  duplicate or id switch; a track starting or ending inside the clip within ``fragment_gap_s`` and
  ``fragment_dist`` (plus the distance it could travel meanwhile) of another track: one object cut in two);
- direction / region words must survive perturbing the measured displacement by ``angle_margin_deg``,
  ``displacement_margin`` (of the diagonal) and ``scale_margin`` (relative), and the centre by
  ``region_margin`` (of the frame): otherwise the fact sits on a class boundary.  Toward / away needs a size
  that changes one way (``size_backtrack``) at a steady aspect ratio (``max_aspect_change``); a translation
  needs box width and height within ``max_box_change`` (or the centre moving further than they change);
- times (onsets, ends), stops, repetitions and speeds are only used on *reliable* tracks: centre-driven (path
  length >= ``min_reliable_distance``, mean speed >= ``min_reliable_speed``), with a steady box size
  (``max_size_ratio``: no toward / away mixed in, whose onsets the centre-based facts miss) and really still
  stops (centre within ``still_tolerance``: no slow move missed); stops lasting 0.3-0.8 s (near the 0.5 s
  definition), back-and-forth legs of 0.5-3 % of the diagonal (near the 1 % definition) and a repetition count
  that the smoothed path does not repeat (the fit's course may hold a reversal of a few frames) make the counts
  doubtful;
- orders need a gap >= ``min_order_gap_s``, comparisons (longest / fastest) a ratio >= ``min_margin_ratio``,
  "which object ..." a unique object with every other object clearly not matching;
- statements about all movers (which starts / stops first, the only mover, sequential questions, which object
  stops / goes back and forth, toward / away) are skipped when a track dropped as static may hide a motion
  (it starts or ends inside the clip, or its box changes size).

Abstention is per question: a doubtful track removes the questions about it, and a statement about all objects
("which object moves left", "how many move left", "most move ...") abstains only when a doubtful track could
change its answer (its possible directions, taken with wide margins, include the one asked about).

Crowd kinds: ``count_direction`` (how many <noun>s move <d>: every object that may move <d> is clearly moving <d>),
``majority_direction`` (the direction most objects take, by a margin that no doubtful track can overturn),
``enters_first`` / ``exits_first`` (of two objects that enter / leave through the frame's edge inside the clip,
at least ``min_order_gap_s`` apart), ``nearest`` / ``furthest`` (of the people visible at a time, the one whose box
reaches lowest / highest in the frame, by ``depth_margin`` of the frame height: the ground-contact cue of a static
camera).  Referring expressions add the start region, then the direction of motion, then the onset order until
they are unique; an object that stays ambiguous is never asked about.

Windowed kinds: what a track shows over a *clear stretch*, a stretch of its span where its boxes show one
object and all of it: ``window_pad_s`` away from the track's ends, from its box touching the frame's edge, from any
moment its box overlaps another track's box (kept or dropped: occlusion, merge, possible id switch) and from gaps
in its boxes (:func:`_clear_stretches`).  Identity then holds over the stretch even on a track that is doubtful as
a whole (a fragment, a partial track, one that meets another track elsewhere), so these kinds are asked of every
kept track without noisy boxes, named by its referring expression when it is trusted, else by the colour of its
boxes in the window ("the red person"), made unique among look-alikes seen then by "furthest to the left / right",
"highest / lowest in the frame", or not asked.  A time is shown in seconds from the clip's start, one decimal
(the fact holds absolute seconds):
- ``direction_during`` (motion_recognition): the direction of the clear part of a move segment (or of a run of
  move segments with no stop between) lasting ``window_min_s`` or more, nearly straight
  (``window_straightness``), one direction under the margins, a steady box or a centre shift larger than any
  change of the box's width or height there (a translation);
- ``heading_during`` (location_motion): the side of the frame such a motion heads to when its direction word sits
  between two sectors (no ``direction_during``) but the side is clear under the same margins;
- ``still_during`` (motion_recognition): "how does X move between a and b": it stays in place, over a stop segment
  (less ``window_pad_s`` at each end) where its centre spans less than ``still_tolerance``, its box steady, on a
  track that moves elsewhere; the distractors are motions;
- ``then_during`` (temporal_order): "what does X do between a and b": two consecutive phases in order (stays in
  place, then moves d; moves d, then stops; moves d, then d'), each clear over ``window_min_s`` once
  ``window_pad_s`` around the change is left out, inside one clear stretch;
- ``region_at`` (location_motion): the grid cell of the centre at the middle of a clear stretch, or at a quarter
  or three quarters of it when the middle is on a cell's border (two times at most, different cells), the box
  of its usual size there (not a merge, not a part) on a track that travels ``min_reliable_distance`` in all (a
  box that never moves may be a ghost of the background);
- ``relative_at`` (location_motion): left of / right of / above / below another object at a time both are clear
  (``relative_dominance``, ``relative_min``);
- ``faster_during`` (motion_objects): which of two covers more ground over their common clear stretch, by
  ``speed_margin``;
- ``approach_during`` (motion_objects): whether two objects get closer together or move farther apart over a
  common clear stretch (or its part before / after their closest or furthest moment), by ``approach_margin``
  of the diagonal, the distance changing one way;
- grounded, descriptive: ``g_direction_during`` ("which object moves <d> between a s and b s", with "in <region>"
  when others move d too elsewhere, or "of the objects that move <d> between a s and b s, which one is furthest to
  the left" (right, highest, lowest) when they share its region but it is that by twice ``region_margin`` over
  each of them at the window's start, middle and end): every other track seen in the window (kept or dropped)
  clearly does not (wide margins); window ``given`` = the question's own [a, b];
- ``enters_side`` / ``exits_side`` (location_motion): through which side of the frame a track enters (leaves)
  the picture, at about t s (the crossing of ``g_enters_during`` below; no uniqueness among others needed);
- grounded, descriptive: ``g_enters_during`` / ``g_exits_during`` ("which person enters the frame from the left
  (leaves it through the right) between a s and b s"): a track's first (last) box inside the clip touches that
  side, its box comes off (reaches) the edge moving inward (outward) clear of other boxes, it was not lost and
  found again at that edge, and no other track (kept or dropped) starts (ends) at that side around [a, b] (a
  detector finds an object late and loses it early: see :func:`_g_crossings`); asked of doubtful tracks too,
  since only the crossing's moment must hold one object; window ``given``.
Whole-track kinds need a trusted track: besides the guards above, one whose boxes never overlap another track's
(``possible_id_switch_with_<id>`` otherwise; still asked what holds either way when the other is a trusted kept
track) and whose boxes keep one colour name (``colour_changes``: it may follow two objects).

Selection (:func:`finalize`): ``n_questions`` multiple-choice questions per clip following the category weights
(largest deficit first; fewer when a clip has fewer candidates) plus up to ``grounded_per_clip`` grounded
questions (q_types taken in turn); LLM questions that contradict the facts stay in the output with kept = false
and do not count.  Grounded rows have category null.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from fm_assets.labels.ids import seed_for
from fm_assets.labels.motion_facts import (
    TrajectoryParams,
    classify_direction,
    monotone_legs,
    pair_relations,
    repetitions,
    trajectories,
)
from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.vocab import COLORS, REGIONS, SECTORS, region

__all__ = [
    "CATEGORIES",
    "PAPER_MIX",
    "Q_TYPES",
    "QAParams",
    "annotate_doubts",
    "clip_questions",
    "doubts",
    "finalize",
    "grounded_questions",
    "llm_rows",
    "refer",
    "rule_questions",
    "verify_llm_question",
]

CATEGORIES = ("motion_recognition", "location_motion", "temporal_order", "motion_objects", "repetition_count")
Q_TYPES = ("causal", "sequential", "counterfactual", "descriptive")
# FoundationMotion's reported category mix (percent of questions)
PAPER_MIX = (("motion_recognition", 34.9), ("location_motion", 25.0), ("temporal_order", 18.2),
             ("motion_objects", 11.6), ("repetition_count", 10.3))
LETTERS = "ABCD"
RULES_VERSION = "rules@1"


@dataclass(frozen=True)
class QAParams:
    """Knobs of question generation.  ``n_questions`` is the number of kept multiple-choice questions per clip,
    ``grounded_per_clip`` the number of grounded ones on top; distances are in frame diagonals."""

    n_questions: int = param(10, "multiple-choice questions per clip (rule-based + LLM)", ge=1)
    grounded_per_clip: int = param(3, "GroundMoRe-style grounded questions per clip", ge=0)
    llm_questions: int = param(5, "questions asked of the LLM per clip (when a model is set)", ge=0)
    dedupe_threshold: float = param(0.8, "token Jaccard of normalised question texts at which the later one is dropped",
                                    ge=0, le=1)
    category_weights: tuple[tuple[str, float], ...] = param(PAPER_MIX, "share of each category (FoundationMotion's mix)")
    max_box_noise: float = param(0.02, "facts of noisier tracks are not asked about", ge=0)
    min_order_gap_s: float = param(0.4, '"which first" needs onsets / ends at least this far apart, seconds', ge=0)
    min_margin_ratio: float = param(1.3, '"longest" / "fastest" must beat the runner-up by this factor', ge=1)
    angle_margin_deg: float = param(8.0, "a direction must be this far (degrees) from a sector boundary", ge=0)
    displacement_margin: float = param(0.01, "a displacement must clear the stationary threshold by this much", ge=0)
    scale_margin: float = param(0.08, "a scale change must clear the toward / away threshold by this much", ge=0)
    region_margin: float = param(0.03, "a point must be this far (of the frame width / height) from a region border",
                                 ge=0)
    min_reliable_distance: float = param(0.05, "centre path length for times, stops and repetitions to be trusted",
                                         ge=0)
    min_reliable_speed: float = param(0.03, "mean centre speed (diagonals / s) for the same", ge=0)
    min_window_s: float = param(0.3, "shortest grounded action window, seconds", ge=0)
    max_box_change: float = param(1.6, "a box whose aspect ratio varies more is not trusted; a moving box whose width "
                                       "or height varies more (5th-95th percentile) has a doubtful direction", ge=1)
    max_aspect_change: float = param(1.25, "toward / away: a box whose aspect ratio varies more is doubtful", ge=1)
    size_backtrack: float = param(1.12, "toward / away: the size may go back this much against the trend", ge=1)
    max_size_ratio: float = param(1.25, "box size range (5th-95th percentile) of a trusted still track ...", ge=1)
    still_tolerance: float = param(0.012, "... whose stops span less than this (diagonals)", ge=0)
    fragment_gap_s: float = param(3.0, "a track starting / ending mid-clip this close in time ...", ge=0)
    fragment_dist: float = param(0.15, "... and space (diagonals) to another track: the same object?", ge=0)
    doubt_angle_deg: float = param(25.0, "a doubtful track may move in any direction within this angle of its "
                                         "measured one (statements about all objects abstain if that changes them)",
                                   ge=0)
    edge_margin: float = param(0.02, "a box within this fraction of the frame size of its edge enters / leaves "
                                     "through the edge", ge=0)
    depth_margin: float = param(0.05, "nearest / furthest: the bottom edge must beat the runner-up's by this "
                                      "fraction of the frame height", ge=0)
    window_min_s: float = param(0.6, "windowed questions: shortest stretch asked about, seconds", ge=0)
    point_min_s: float = param(0.4, "... and, for a question about one moment (where / relative position), the "
                                    "clear stretch around it", ge=0)
    window_pad_s: float = param(0.3, "... a stretch keeps this far (seconds) from the track's ends and from any "
                                     "moment its box is near the frame's edge or another track's box", ge=0)
    window_near: float = param(0.5, "... boxes are near when their centres are closer (in x and in y) than this "
                                    "times the sum of their widths / heights (0.5: they overlap)", ge=0)
    window_colour_share: float = param(0.7, "... the colour named in a doubtful track's reference is the colour of "
                                            "at least this share of its boxes in the window", ge=0, le=1)
    window_straightness: float = param(1.25, "... direction over a window: path length at most this times the "
                                             "net displacement", ge=1)
    relative_dominance: float = param(2.0, "left of / right of / above / below: the centres' offset along that axis "
                                           "is at least this times the other axis' ...", ge=1)
    relative_min: float = param(0.1, "... and at least this fraction of the frame's diagonal", ge=0)
    speed_margin: float = param(1.5, "which of two moves faster over a window: path lengths at least this far apart "
                                     "(a ratio)", ge=1)
    approach_margin: float = param(0.1, "two objects get closer / farther apart over a window: the distance between "
                                        "their centres changes by at least this fraction of the diagonal", ge=0)
    crossing_lead_s: float = param(1.0, "entering / leaving the frame: the question's window opens this long before "
                                        "the track's first box and closes this long after it (around its last box "
                                        "for leaving: a detector sees an object a little after it enters and loses "
                                        "it a little before it leaves); the box must come off (reach) the edge "
                                        "within this time", gt=0)
    crossing_band: float = param(0.15, "... not asked when another track (kept or dropped) starts (ends) within this "
                                       "fraction of the frame from the same side within the window +- "
                                       "crossing_lead_s", ge=0, le=1)

    def __post_init__(self) -> None:
        check_bounds(self)

    def weight(self, category: str) -> float:
        return dict(self.category_weights).get(category, 0.0)


# --------------------------------------------------------------------------------------------------
# Words

_DIR_OPTION = {
    "right": "To the right", "left": "To the left", "up": "Upward", "down": "Downward",
    "up-right": "Up and to the right", "up-left": "Up and to the left", "down-right": "Down and to the right",
    "down-left": "Down and to the left", "toward": "Toward the camera", "away": "Away from the camera",
}
_DIR_PHRASE = {  # after "moves"
    "right": "to the right", "left": "to the left", "up": "up", "down": "down",
    "up-right": "up and to the right", "up-left": "up and to the left", "down-right": "down and to the right",
    "down-left": "down and to the left", "toward": "toward the camera", "away": "away from the camera",
}
_REGION_TEXT = {
    "top-left": "the top-left", "top": "the top center", "top-right": "the top-right", "left": "the middle left",
    "center": "the center", "right": "the middle right", "bottom-left": "the bottom-left",
    "bottom": "the bottom center", "bottom-right": "the bottom-right",
}
_SIDE_OPTION = {"left": "The left side", "right": "The right side", "top": "The top", "bottom": "The bottom"}
_ACTIVITY_OPTION = {
    "steady": "It moves in one direction without stopping", "stop_and_go": "It stops and then continues moving",
    "back_and_forth": "It goes back and forth", "still": "It stays still the whole time",
}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_CELL = {name: (r, c) for r, row in enumerate(REGIONS) for c, name in enumerate(row)}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _times(n: int) -> str:
    return {0: "Not at all", 1: "Once", 2: "Twice"}.get(n, f"{n} times")


def _s(t: float, clip: dict) -> str:
    """A time as seconds from the clip's start, one decimal."""
    return f"{t - float(clip['start_s']):.1f}"


# --------------------------------------------------------------------------------------------------
# Referring expressions


def _noun(label: str | None) -> str:
    return "object" if not label or label == "object" else label.replace("_", " ")


_NUMBERED = " (no. "  # refer's last resort: "the object that stays still (no. 3)"


def _numbered(ref: str) -> bool:
    """A referring expression refer() could only make unique by a number: the object is never asked about."""
    return _NUMBERED in ref


def _kept(traj: pl.DataFrame) -> pl.DataFrame:
    if traj is None or traj.is_empty():
        return traj
    return traj.filter(pl.col("kept")) if "kept" in traj.columns else traj


def refer(traj: pl.DataFrame) -> dict[int, str]:
    """A referring expression for each kept track of one clip, unique within the clip: "the red object",
    "the person"; when that is shared, the start region is added ("the white car that starts in the top-left"),
    then the onset order ("... that moves first", "... and moves second"); a track that never moves "stays
    still".  A colourless track is "the <label>" only when no other track has that label."""
    kept = _kept(traj)
    if kept is None or kept.is_empty():
        return {}
    recs = kept.sort("track_id").to_dicts()
    nouns = Counter(_noun(r["label"]) for r in recs)
    base = {}
    for r in recs:
        noun = _noun(r["label"])
        base[r["track_id"]] = f"the {r['color']} {noun}" if r.get("color") else f"the {noun}"
    counts = Counter(base.values())
    refs: dict[int, str] = {}
    groups: dict[str, list[dict]] = {}
    for r in recs:
        b = base[r["track_id"]]
        shared = counts[b] > 1 or (not r.get("color") and nouns[_noun(r["label"])] > 1)
        if shared:
            groups.setdefault(b, []).append(r)
        else:
            refs[r["track_id"]] = b
    for b, group in groups.items():
        regions = Counter(r.get("start_region") for r in group)
        use_region = len(regions) > 1 or len(group) == 1
        by_region: dict[str | None, list[dict]] = {}
        for r in group:
            by_region.setdefault(r.get("start_region") if use_region else None, []).append(r)
        for reg, members in by_region.items():
            where = f" that starts in {_REGION_TEXT[reg]}" if reg in _REGION_TEXT else ""
            if len(members) == 1:
                refs[members[0]["track_id"]] = f"{b}{where}" if where else f"{b} that moves first"
                continue
            join = " and" if where else " that"
            # then the direction it moves in (crowds: "the person in the top-left that moves to the right")
            heads = Counter(m.get("direction") for m in members)
            rest = []
            for m in members:
                d = m.get("direction")
                if d in _DIR_PHRASE and heads[d] == 1 and len(heads) > 1:
                    refs[m["track_id"]] = f"{b}{where}{join} moves {_DIR_PHRASE[d]}"
                else:
                    rest.append(m)
            movers = sorted((m for m in rest if m.get("onset_s") is not None),
                            key=lambda m: (m["onset_s"], m["track_id"]))
            for k, m in enumerate(movers):
                nth = _ORDINALS[k] if k < len(_ORDINALS) else f"{k + 1}th"
                refs[m["track_id"]] = f"{b}{where}{join} moves {nth}"
            for m in rest:
                if m.get("onset_s") is None:
                    refs[m["track_id"]] = f"{b}{where}{join} stays still"
    # last resort (several never-moving look-alikes): number them; such an object is never asked about
    seen = Counter(refs.values())
    for tid in sorted(refs):
        if seen[refs[tid]] > 1:
            refs[tid] = f"{refs[tid]}{_NUMBERED}{tid})"
    return refs


# --------------------------------------------------------------------------------------------------
# One clip's objects, with the guards of the module docstring


@dataclass
class _Obj:
    tid: int
    ref: str
    rec: dict
    untrusted: bool  # noisy boxes or a doubtful identity: never asked about
    reliable: bool  # centre-driven: times, stops and repetitions can be trusted
    dirs: set  # direction words the overall motion could have (a single one: clear)
    start_regions: set
    end_regions: set
    moves: list  # move segments as dicts with 'cands' (direction words) and 'shift' (diagonals)
    stops_ok: bool
    reps_ok: bool
    wide: set  # the directions it may have under wide margins (doubt_angle_deg): what a doubtful track could be
    swap_safe: bool | None = None  # met another track (ids may be switched) and only that: see _swap_alternatives
    alt_disp: list = field(default_factory=list)  # its displacement (px) under each id-switch alternative
    why: list = field(default_factory=list)  # why it is doubtful (see doubts)

    @property
    def direction(self) -> str | None:
        return next(iter(self.dirs)) if len(self.dirs) == 1 else None

    @property
    def usable(self) -> bool:
        """Its direction and regions can be stated (trusted, or its id may be switched but they hold either way)."""
        return not self.untrusted or bool(self.swap_safe)

    @property
    def maybe(self) -> set:
        """Directions this object could have, for statements about all objects: its own (with any id-switch
        alternative) when usable, else wide."""
        return self.dirs if self.usable else self.wide

    @property
    def steady_mover(self) -> bool:
        """Trusted and moving over its whole visible span (no stop segment): its motion window is its span."""
        segs = self.rec["segments"] or []
        return (not self.untrusted and self.rec["onset_s"] is not None and bool(segs)
                and all(s["kind"] == "move" for s in segs))

    @property
    def timed(self) -> bool:
        """Its motion window can be trusted: a reliable track, or a steady mover."""
        return self.reliable or self.steady_mover


def _perturbed_directions(dx: float, dy: float, ratio: float, diag: float, p: QAParams,
                          stationary: bool = True) -> set[str]:
    """The direction words of a displacement (px) and scale ratio under the margins of ``p``."""
    tp = TrajectoryParams()
    ang, r = math.atan2(dy, dx), math.hypot(dx, dy)
    out = set()
    for da in (-p.angle_margin_deg, 0.0, p.angle_margin_deg):
        for dr in (-p.displacement_margin, 0.0, p.displacement_margin):
            for k in (1 - p.scale_margin, 1.0, 1 + p.scale_margin):
                rr = max(r + dr * diag, 0.0)
                a = ang + math.radians(da)
                out.add(classify_direction(rr * math.cos(a), rr * math.sin(a), max(ratio, 1e-9) * k, diag, tp,
                                           stationary=stationary))
    return out


def _path_at(path: list[dict], t: float, width: int, height: int) -> np.ndarray:
    """(cx px, cy px, size px) of a path at time t (linear between points, held at the ends)."""
    ts = [q["t"] for q in path]
    cx = np.interp(t, ts, [q["ncx"] for q in path]) * width
    cy = np.interp(t, ts, [q["ncy"] for q in path]) * height
    size = math.sqrt(max(np.interp(t, ts, [q["nw"] * q["nh"] for q in path]), 0.0) * width * height)
    return np.array([cx, cy, size])


def _regions_near(x: float, y: float, m: float) -> set[str]:
    return {region(x + a, y + b, 1, 1) for a in (-m, 0.0, m) for b in (-m, 0.0, m)}


def _size_span(path: list[dict], w: int, h: int) -> float:
    """The larger of the box's width and height ranges (5th-95th percentile, px) along a path."""
    ws, hs = np.array([q["nw"] for q in path]) * w, np.array([q["nh"] for q in path]) * h
    return float(max(np.subtract(*np.percentile(ws, [95, 5])), np.subtract(*np.percentile(hs, [95, 5]))))


def _build_obj(r: dict, ref: str, p: QAParams) -> _Obj:
    w, h = int(r["width"]), int(r["height"])
    diag = math.hypot(w, h)
    path = r["path"] or []
    # noisy boxes, or a box whose shape changes a lot (a partial, split or merged blob): not asked about
    # a centre that moved further than any change of the box's width or height could move it (an object
    # entering or leaving through the frame's edge, a blob growing): the direction of a translation stands
    shape_free = bool(path) and r["dx"] is not None and math.hypot(r["dx"] * w, r["dy"] * h) > _size_span(path, w, h)
    noisy = (r["box_noise"] is None or r["box_noise"] > p.max_box_noise or not path
             or (_range(path, "aspect") > p.max_box_change and not shape_free))
    reliable = (not noisy and (r["distance"] or 0.0) >= p.min_reliable_distance
                and (r["mean_speed"] or 0.0) >= p.min_reliable_speed and r["onset_s"] is not None
                and _steady_size(path, p) and _still_stops(path, r["segments"] or [], w, h, p))
    dirs = (_perturbed_directions(r["dx"] * w, r["dy"] * h, r["scale_change"] or 1.0, diag, p)
            if not noisy and r["dx"] is not None else set())
    if dirs & {"toward", "away"} and not (_monotone_size(path, "toward" if "toward" in dirs else "away", p)
                                          and _range(path, "aspect") <= p.max_aspect_change):
        dirs |= {"toward", "away", "stationary"}  # the size goes both ways or the shape changes: doubtful
    if dirs & set(SECTORS) and max(_range(path, "nw"), _range(path, "nh")) > p.max_box_change and not shape_free:
        dirs |= set(_DIR_OPTION) | {"stationary"}  # the box changes its size a lot: a partial or merged blob
    start_regions = _regions_near(path[0]["ncx"], path[0]["ncy"], p.region_margin) if path else set()
    end_regions = _regions_near(path[-1]["ncx"], path[-1]["ncy"], p.region_margin) if path else set()
    segs = r["segments"] or []
    moves = []
    for s in segs:
        if s["kind"] != "move" or not path:
            continue
        a, b = _path_at(path, s["t0"], w, h), _path_at(path, s["t1"], w, h)
        d = b - a
        cands = _perturbed_directions(d[0], d[1], b[2] / max(a[2], 1e-9), diag, p, stationary=False)
        moves.append({**s, "cands": cands, "shift": math.hypot(d[0], d[1]) / diag, "dur": s["t1"] - s["t0"]})
    inner = [s for k, s in enumerate(segs) if s["kind"] == "stop" and 0 < k < len(segs) - 1]
    stops_ok = reliable and not any(0.3 <= s["t1"] - s["t0"] <= 0.8 for s in inner)
    reps_ok = reliable and _legs_clear(path, segs, w, h, r["repetitions"])
    wide = set(_DIR_OPTION) | {"stationary"}
    if path and r["dx"] is not None:
        loose = replace(p, angle_margin_deg=p.doubt_angle_deg, displacement_margin=3 * p.displacement_margin,
                        scale_margin=2 * p.scale_margin)
        wide = _perturbed_directions(r["dx"] * w, r["dy"] * h, r["scale_change"] or 1.0, diag, loose)
        if max(_range(path, "nw"), _range(path, "nh")) > p.max_size_ratio:
            wide |= {"toward", "away"}
    wide |= dirs
    return _Obj(r["track_id"], ref, r, noisy, reliable, dirs, start_regions, end_regions, moves, stops_ok, reps_ok,
                wide)


def _range(path: list[dict], key: str) -> float:
    """95th / 5th percentile ratio of a box dimension along the path ('nw', 'nh' or 'aspect' = w / h)."""
    if not path:
        return math.inf
    vals = np.array([q["nw"] / max(q["nh"], 1e-12) if key == "aspect" else q[key] for q in path])
    lo, hi = np.percentile(np.clip(vals, 1e-12, None), [5, 95])
    return float(hi / lo)


def _monotone_size(path: list[dict], direction: str, p: QAParams) -> bool:
    """The box size only grows (toward) / only shrinks (away), within ``size_backtrack`` of its running
    max / min: a size that goes both ways (a detector box that swells and shrinks) makes toward / away doubtful."""
    if not path:
        return False
    size = np.sqrt(np.clip([q["nw"] * q["nh"] for q in path], 1e-12, None))
    if direction == "toward":
        return bool((np.maximum.accumulate(size) / size).max() <= p.size_backtrack)
    return bool((size / np.minimum.accumulate(size)).max() <= p.size_backtrack)


def _steady_size(path: list[dict], p: QAParams) -> bool:
    """The box keeps its size (5th-95th percentile ratio of sqrt(w h) <= max_size_ratio): no motion toward or
    away from the camera mixed in, whose onsets and speeds the centre-based facts do not capture."""
    if not path:
        return False
    size = np.sqrt(np.clip([q["nw"] * q["nh"] for q in path], 1e-12, None))
    lo, hi = np.percentile(size, [5, 95])
    return bool(hi / lo <= p.max_size_ratio)


def _still_stops(path: list[dict], segs: list[dict], w: int, h: int, p: QAParams) -> bool:
    """Every stop segment (leading and trailing ones included) is really still: its path centre spans less than
    ``still_tolerance`` of the diagonal, so no slow or small move was missed (it would shift onsets, ends and
    counts)."""
    diag = math.hypot(w, h)
    for s in segs:
        if s["kind"] != "stop":
            continue
        pts = [(q["ncx"] * w, q["ncy"] * h) for q in path if s["t0"] <= q["t"] <= s["t1"]]
        if len(pts) >= 2:
            xy = np.array(pts)
            if math.hypot(*(xy.max(axis=0) - xy.min(axis=0))) > p.still_tolerance * diag:
                return False
    return True


def _legs_clear(path: list[dict], segs: list[dict], w: int, h: int, reps: int | None) -> bool:
    """No monotone leg of the dominant coordinate near the 1 % repetition threshold (0.5-3 % of the diagonal),
    measured on the smoothed path at the segment boundaries, and the repetitions counted there equal the track's
    (counted on the piecewise fit's course): two readings of the same motion that disagree make it doubtful."""
    if not path or not segs:
        return False
    diag = math.hypot(w, h)
    times = [segs[0]["t0"]] + [s["t1"] for s in segs]
    coords = np.array([_path_at(path, t, w, h) for t in times])
    legs = monotone_legs(coords)
    return (not any(0.005 * diag <= abs(leg) <= 0.03 * diag for leg in legs)
            and repetitions(coords, TrajectoryParams().repetition_min_frac * diag) == reps)


def _box_diag(o: _Obj) -> float:
    """Median box diagonal of a track, in frame diagonals."""
    path = o.rec["path"] or []
    w, h = o.rec["width"], o.rec["height"]
    if not path:
        return 0.0
    return float(np.median([math.hypot(q["nw"] * w, q["nh"] * h) for q in path])) / math.hypot(w, h)


def _close_pairs(objs: list[_Obj], pairs: dict) -> list[tuple[int, int, float]]:
    """Pairs of tracks that come closer than half the larger box (occlusion, a split or duplicated box: the
    tracker may have switched their ids there), with the time of their closest approach."""
    out = []
    for (a, b), row in pairs.items():
        oa, ob = next((o for o in objs if o.tid == a), None), next((o for o in objs if o.tid == b), None)
        if oa is None or ob is None or row["min_distance"] is None or a > b:
            continue
        if row["min_distance"] < 0.5 * max(_box_diag(oa), _box_diag(ob)):
            out.append((a, b, float(row.get("min_distance_t") or row["t0"])))
    return out


def _swap_alternatives(o: _Obj, other: _Obj, p: QAParams) -> None:
    """Widen what o's questions may say so that it holds had the tracker switched o's and other's ids where they
    met: the truth of o's track may be o's start with other's end, or other's start with o's end.  Its
    direction words, start and end regions then hold under each (else they get several candidates and are
    not asked)."""
    w, h = int(o.rec["width"]), int(o.rec["height"])
    diag = math.hypot(w, h)
    po, pq = o.rec["path"] or [], other.rec["path"] or []
    if not po or not pq:
        o.dirs |= set(_DIR_OPTION) | {"stationary"}
        return
    so, eo = _path_at(po, po[0]["t"], w, h), _path_at(po, po[-1]["t"], w, h)
    sq, eq = _path_at(pq, pq[0]["t"], w, h), _path_at(pq, pq[-1]["t"], w, h)
    for a, b in ((so, eq), (sq, eo)):
        d = b - a
        o.dirs |= _perturbed_directions(d[0], d[1], b[2] / max(a[2], 1e-9), diag, p)
        o.alt_disp.append((float(d[0]), float(d[1])))
    o.start_regions |= _regions_near(pq[0]["ncx"], pq[0]["ncy"], p.region_margin)
    o.end_regions |= _regions_near(pq[-1]["ncx"], pq[-1]["ncy"], p.region_margin)


def _colour_changes(r: dict, p: QAParams) -> bool:
    """Fewer than ``window_colour_share`` of the track's boxes have its most common colour name."""
    cols = [q.get("color") for q in r.get("path") or [] if q.get("color") is not None]
    return bool(cols) and Counter(cols).most_common(1)[0][1] < p.window_colour_share * len(cols)


def _clip_bounds(tracks: list[dict], clip: dict) -> tuple[float, float] | None:
    """The clip's start and end narrowed to the time its tracks cover (the tracks' span where the clip's end is
    not known); None without a timed track."""
    spans = [(q["t_start"], q["t_end"]) for q in tracks if q.get("t_start") is not None]
    if not spans:
        return None
    c0 = max(float(clip.get("start_s") or 0.0), min(a for a, _ in spans))
    c1 = min(float(clip["end_s"]) if clip.get("end_s") is not None else math.inf, max(b for _, b in spans))
    return c0, c1


def _partial(r: dict, c0: float, c1: float, p: QAParams) -> bool:
    """The track starts (ends) more than 0.5 s after (before) the clip's start c0 (end c1) with its box away from
    the frame's edge: its object was there before (after) without being tracked."""
    path = r.get("path") or []
    if not path or r.get("t_start") is None:
        return True
    late = r["t_start"] > c0 + 0.5 and not _at_edge(path[0], p.edge_margin)
    early = r["t_end"] < c1 - 0.5 and not _at_edge(path[-1], p.edge_margin)
    return late or early


def _fragments(objs: list[_Obj], others: list[dict], clip: dict, p: QAParams) -> set[int]:
    """Kept tracks whose identity is doubtful because they may be one object cut in two: a track that starts or
    ends inside the clip within ``fragment_dist`` of where another track (kept or dropped) is, was or will be
    within ``fragment_gap_s`` (a blob split off or swallowed by another); not where its box touches the frame's
    edge (it enters or leaves the picture there)."""
    out: set[int] = set()
    bounds = _clip_bounds(others, clip)
    if bounds is None:
        return out
    c0, c1 = bounds
    kept = {x.tid for x in objs}
    for r in others:  # every track's ends inside the clip, kept or dropped
        if not r.get("path") or r.get("t_start") is None:
            continue
        w, h = r["width"], r["height"]
        diag = math.hypot(w, h)
        ends = []  # an end at the frame's edge is the object entering or leaving the picture, not a cut
        if r["t_start"] > c0 + 0.5 and not _at_edge(r["path"][0], p.edge_margin):
            ends.append((r["t_start"], _path_at(r["path"], r["t_start"], w, h)))
        if r["t_end"] < c1 - 0.5 and not _at_edge(r["path"][-1], p.edge_margin):
            ends.append((r["t_end"], _path_at(r["path"], r["t_end"], w, h)))
        for t, pos in ends:
            for q in others:
                if (q["track_id"] == r["track_id"] or not q.get("path") or q.get("t_start") is None
                        or q["t_end"] < t - p.fragment_gap_s or q["t_start"] > t + p.fragment_gap_s):
                    continue
                if ((q["t_end"] < t and _at_edge(q["path"][-1], p.edge_margin))
                        or (q["t_start"] > t and _at_edge(q["path"][0], p.edge_margin))):
                    continue  # q left the picture before r appeared (or entered it after r vanished)
                at = _path_at(q["path"], min(max(t, q["t_start"]), q["t_end"]), w, h)
                # the object may have travelled on (at its top speed, up to 0.35 diagonals) during a gap
                gap = max(0.0, q["t_start"] - t, t - q["t_end"])
                speed = max(r.get("max_speed") or 0.0, q.get("max_speed") or 0.0)
                reach = min(p.fragment_dist + speed * gap, 0.35) * diag
                if math.hypot(*(at[:2] - pos[:2])) <= reach:
                    out |= {r["track_id"], q["track_id"]} & kept
    return out


def _hidden_motion(q: dict, everyone: list[dict], clip: dict) -> bool:
    """A track dropped as static that may be a moving object after all: it starts or ends inside the clip (it
    appeared, vanished or merged) or its box changes size (a motion toward / away from the camera whose box the
    detector got wrong).  Questions about "the only mover" or "which object starts first" are then doubtful."""
    bounds = _clip_bounds(everyone, clip)
    if not q.get("path") or q.get("t_start") is None or bounds is None:
        return True
    c0, c1 = bounds
    if q["t_start"] > c0 + 0.5 or q["t_end"] < c1 - 0.5:
        return True
    return max(_range(q["path"], "nw"), _range(q["path"], "nh")) > 1.15


class _Ctx:
    """One clip: its usable objects, pair relations, parameters and seeded choices."""

    def __init__(self, traj: pl.DataFrame, pairs: pl.DataFrame | None, clip: dict, params: QAParams):
        self.clip, self.p = clip, params
        kept = _kept(traj)
        if kept is not None and not kept.is_empty() and "clip_id" in kept.columns and clip.get("clip_id") is not None:
            kept = kept.filter(pl.col("clip_id") == clip["clip_id"])
        recs = kept.sort("track_id").to_dicts() if kept is not None and not kept.is_empty() else []
        mine = traj
        if traj is not None and not traj.is_empty() and "clip_id" in traj.columns and clip.get("clip_id") is not None:
            mine = traj.filter(pl.col("clip_id") == clip["clip_id"])
        everyone = mine.to_dicts() if mine is not None and not mine.is_empty() else []
        self.everyone = everyone
        # tracks dropped as static that may hide a motion the facts missed (see _hidden_motion)
        self.n_static = sum(_hidden_motion(q, everyone, clip) for q in everyone if q.get("drop_reason") == "static")
        self.refs = refer(kept) if recs else {}
        self.objs = [_build_obj(r, self.refs[r["track_id"]], params) for r in recs]
        self.by_id = {o.tid: o for o in self.objs}
        self.pairs = {}
        if pairs is not None and not pairs.is_empty():
            for row in pairs.iter_rows(named=True):
                if clip.get("clip_id") is None or row["clip_id"] == clip["clip_id"]:
                    self.pairs[(row["a"], row["b"])] = row
        for o in self.objs:
            if o.untrusted:
                o.why.append("doubtful_boxes")
            elif _colour_changes(o.rec, params):  # its boxes change colour: it may follow two objects
                o.untrusted = True
                o.why.append("colour_changes")
        # a track that starts or ends inside the clip away from the frame's edge saw only part of its object's
        # motion (it was hidden, or still where a motion detector cannot see it): its whole-track facts are doubtful
        bounds = _clip_bounds(everyone, clip)
        if bounds is not None:
            for o in self.objs:
                if _partial(o.rec, *bounds, params):
                    o.untrusted = True
                    o.why.append("partial_track")
        noisy = {o.tid for o in self.objs if o.untrusted}
        fragments = _fragments(self.objs, everyone, clip, params)
        # an id switch where two tracks met: their questions must hold either way (swap_safe), else none
        for a, b, _t in _close_pairs(self.objs, self.pairs):
            for x, y in ((self.by_id[a], self.by_id[b]), (self.by_id[b], self.by_id[a])):
                x.untrusted = True
                x.why.append(f"possible_id_switch_with_{y.tid}")
                x.swap_safe = x.tid not in noisy | fragments and y.tid not in noisy and x.swap_safe is not False
                if x.swap_safe:
                    _swap_alternatives(x, y, params)
        # boxes that overlap another track's box (kept or dropped) at some time: the tracker may have swapped them
        # there even where the centres stay apart (tall boxes one above the other, a short-lived track)
        for o in self.objs:
            if o.untrusted:
                continue
            for tid in sorted(_touching(self, o.rec)):
                other = self.by_id.get(tid)
                o.untrusted = True
                o.why.append(f"possible_id_switch_with_{tid}")
                o.swap_safe = other is not None and not other.untrusted and o.swap_safe is not False
                if other is not None and o.swap_safe:
                    _swap_alternatives(o, other, params)
        for tid in fragments:
            self.by_id[tid].untrusted = True
            self.by_id[tid].swap_safe = False
            self.by_id[tid].why.append("possible_fragment")
        for o in self.objs:  # a referent that stays ambiguous ("... (no. 3)") is never asked about
            if _numbered(o.ref):
                o.untrusted, o.swap_safe = True, False
                o.why.append("ambiguous_referent")
        self.any_untrusted = any(o.untrusted for o in self.objs)
        self.colors_used = {o.rec.get("color") for o in self.objs}
        self.window_refs: dict[tuple[int, float, float], str | None] = {}  # _window_ref's answers

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(seed_for(self.clip.get("video_id"), self.clip.get("clip_id"), *parts))

    def pick(self, templates: list[str], *parts: Any, **kw: Any) -> str:
        return self.rng("phrase", *parts).choice(templates).format(**kw)

    def fakes(self, o: _Obj, n: int) -> list[str]:
        """Expressions of objects that are not in the clip (another colour, same noun)."""
        noun = _noun(o.rec.get("label"))
        colours = [c for c in COLORS if c not in self.colors_used]
        self.rng("fake", o.tid).shuffle(colours)
        return [f"the {c} {noun}" for c in colours[:n]]


def _fact(kind: str, tracks: list[int], value: Any, **extra: Any) -> str:
    return json.dumps({"kind": kind, "tracks": [int(t) for t in tracks], "value": value, **extra})


def _mcq(ctx: _Ctx, category: str, kind: str, question: str, answer: str, distractors: list[str],
         fact: str) -> dict | None:
    """A multiple-choice row before finalize: ``options`` = [answer, 3 distractors]; None unless 4 distinct."""
    answer = _cap(answer)
    opts = [answer]
    for d in (_cap(x) for x in distractors if x):
        if d and d.strip().lower() not in {x.strip().lower() for x in opts}:
            opts.append(d)
        if len(opts) == 4:
            break
    if len(opts) < 4:
        return None
    return {
        "video_id": ctx.clip.get("video_id"), "clip_id": ctx.clip.get("clip_id"), "category": category,
        "question": question, "options": opts, "answer_text": answer, "source": "rule", "verified": True,
        "grounded": False, "q_type": None, "target_track_id": None, "action_start_s": None, "action_end_s": None,
        "fact": fact, "writer": "rule", "prompt_version": RULES_VERSION, "kept": True, "reject_reason": None,
        "kind": kind,
    }


def _direction_distractors(d: str, rng: random.Random) -> list[str]:
    if d in ("toward", "away"):
        other = "away" if d == "toward" else "toward"
        rest = ["left", "right", "up", "down"]
        rng.shuffle(rest)
        return [other, *rest[:2]]
    i = SECTORS.index(d)
    return [SECTORS[(i + 4) % 8], SECTORS[(i + rng.choice((1, -1))) % 8], SECTORS[(i + rng.choice((2, -2))) % 8]]


def _count_distractors(n: int) -> list[int]:
    out = []
    for c in (n + 1, n - 1, n + 2, n - 2, n + 3, n + 4):
        if c >= 0 and c != n and c not in out:
            out.append(c)
    return out[:3]


def _activity(o: _Obj) -> str | None:
    """steady / stop_and_go / back_and_forth when exactly one of them is true and the facts are trusted."""
    r = o.rec
    if not (o.stops_ok and o.reps_ok):
        return None
    dirs = {m["direction"] for m in o.moves}
    if r["n_stops"] == 0 and r["repetitions"] == 0 and len(dirs) == 1 and r["n_turns"] == 0:
        return "steady"
    if r["n_stops"] >= 1 and r["repetitions"] == 0:
        return "stop_and_go"
    if r["repetitions"] >= 1 and r["n_stops"] == 0:
        return "back_and_forth"
    return None


# --------------------------------------------------------------------------------------------------
# Rule-based multiple-choice questions


def doubts(traj: pl.DataFrame, pairs: pl.DataFrame | None, clip: dict, params: QAParams | None = None) -> dict[int, str]:
    """Why each doubtful kept track of one clip is not asked about as a whole (track id -> reasons,
    comma-separated): doubtful_boxes (noisy or changing boxes), colour_changes (its boxes change colour: it may
    follow two objects), partial_track (starts / ends inside the clip away from the frame's edge),
    possible_id_switch_with_<id> (it met that track; only facts that hold either way are asked),
    possible_fragment (one object may be cut into two tracks), ambiguous_referent (no unique description).
    Windowed questions still ask about its clear stretches (see _clear_stretches)."""
    ctx = _Ctx(traj, pairs, clip, params or QAParams())
    return {o.tid: ", ".join(dict.fromkeys(o.why)) for o in ctx.objs if o.untrusted and o.why}


def annotate_doubts(traj: pl.DataFrame, clips: Sequence[dict], params: QAParams | None = None) -> pl.DataFrame:
    """The trajectories with ``drop_reason`` = "doubtful: <reasons>" (see doubts) on the kept tracks that are not
    asked about; they stay kept (statements about all objects still take them into account)."""
    if traj.is_empty():
        return traj
    marks: dict[tuple[str, int], str] = {}
    for c in clips:
        mine = traj.filter(pl.col("clip_id") == c["clip_id"])
        if mine.is_empty():
            continue
        for tid, why in doubts(mine, pair_relations(mine), c, params).items():
            marks[(c["clip_id"], tid)] = f"doubtful: {why}"
    if not marks:
        return traj
    keys = pl.DataFrame({"clip_id": [k[0] for k in marks], "track_id": [k[1] for k in marks],
                         "_doubt": list(marks.values())}, schema={"clip_id": pl.String,
                                                                 "track_id": traj.schema["track_id"],
                                                                 "_doubt": pl.String})
    out = traj.join(keys, on=["clip_id", "track_id"], how="left", maintain_order="left")
    return out.with_columns(pl.when(pl.col("kept") & pl.col("_doubt").is_not_null()).then(pl.col("_doubt"))
                            .otherwise(pl.col("drop_reason")).alias("drop_reason")).drop("_doubt")


def clip_trajectories(tracks: pl.DataFrame, clip: dict, params: TrajectoryParams) -> pl.DataFrame:
    """The trajectories of one clip's tracks (motion_facts.trajectories, in the clip's frame size) with their
    doubts (annotate_doubts): a module-level function of picklable arguments, so a worker process can run it."""
    return annotate_doubts(trajectories(tracks, clip["width"], clip["height"], params), [clip])


def rule_questions(traj: pl.DataFrame, pairs: pl.DataFrame, clip: dict, params: QAParams | None = None) -> list[dict]:
    """Multiple-choice questions of one clip in FoundationMotion's five categories, answers from the facts.

    Rows carry the QA_PAIRS columns except qa_id / option_a..d / answer, plus ``options`` (the answer first,
    then three distractors) and ``kind``; :func:`finalize` turns them into table rows."""
    return _rule_rows(_Ctx(traj, pairs, clip, params or QAParams()))


def clip_questions(traj: pl.DataFrame, pairs: pl.DataFrame, clip: dict, params: QAParams | None = None) -> list[dict]:
    """:func:`rule_questions` then :func:`grounded_questions` of one clip, from one judgement of its tracks."""
    ctx = _Ctx(traj, pairs, clip, params or QAParams())
    return _rule_rows(ctx) + _grounded_rows(ctx)


def clip_rows(traj: pl.DataFrame, clip: dict, video_id: str, params: QAParams) -> list[dict]:
    """The qa_pairs rows of one clip without an LLM: :func:`clip_questions` from its tracks and their pair relations,
    then :func:`finalize` (a module-level function of picklable arguments: a worker process can run it)."""
    return finalize(clip_questions(traj, pair_relations(traj), clip, params), video_id, params)


def _rule_rows(ctx: _Ctx) -> list[dict]:
    rows: list[dict | None] = []
    for o in ctx.objs:
        if o.usable and o.untrusted:  # an id may be switched: only what holds either way
            rows += [_q_direction(ctx, o), _q_region(ctx, o, "start"), _q_region(ctx, o, "end"), _q_heading(ctx, o)]
        if o.untrusted:
            continue
        rows += [_q_direction(ctx, o), _q_direction_at(ctx, o), _q_activity(ctx, o),
                 _q_region(ctx, o, "start"), _q_region(ctx, o, "end"), _q_heading(ctx, o),
                 _q_move_order(ctx, o, "first"), _q_move_order(ctx, o, "last"),
                 _q_count(ctx, o, "repetitions"), _q_count(ctx, o, "n_stops")]
    rows += [_q_first(ctx, "starts"), _q_first(ctx, "stops")]
    if len(ctx.objs) >= 3:
        for a in ctx.objs:
            for b in ctx.objs:
                if a.tid < b.tid:
                    rows.append(_q_pair_first(ctx, a, b))
    for d in _DIR_PHRASE:
        rows.append(_q_which_direction(ctx, d))
    rows += [_q_which_activity(ctx, "stop_and_go"), _q_which_activity(ctx, "back_and_forth"),
             _q_extreme(ctx, "longest"), _q_extreme(ctx, "fastest")]
    # kinds that crowds support
    rows += [_q_count_direction(ctx, d) for d in SECTORS]
    rows += [_q_majority(ctx), _q_depth(ctx, "nearest"), _q_depth(ctx, "furthest")]
    for which in ("enters", "exits"):
        events = [(o, t) for o in ctx.objs if (t := _edge_event(ctx, o, which)) is not None]
        for (a, ta), (b, tb) in ((x, y) for i, x in enumerate(events) for y in events[i + 1:]):
            rows.append(_q_edge_order(ctx, which, a, ta, b, tb))
    # windowed kinds: what any kept track shows over a stretch where its identity holds
    spans = {o.tid: _clear_stretches(ctx, o.rec, ctx.p.point_min_s) for o in ctx.objs}
    for o in ctx.objs:
        rows += [_q_direction_during(ctx, o, w) for w in _direction_windows(ctx, o)[:2]]
        rows += [_q_heading_during(ctx, o, w) for w in _heading_windows(ctx, o)[:1]]
        rows.append(_q_still_during(ctx, o))
        rows.append(_q_then_during(ctx, o))
        rows += _q_region_at(ctx, o, spans[o.tid])
        rows += [_q_crossing_side(ctx, o, which) for which in ("enters", "exits")]
    for i, a in enumerate(ctx.objs):
        for b in ctx.objs[i + 1:]:
            rows += _q_relative_at(ctx, a, b, spans[a.tid], spans[b.tid])
            rows.append(_q_faster_during(ctx, a, b, spans[a.tid], spans[b.tid]))
            rows.append(_q_approach_during(ctx, a, b, spans[a.tid], spans[b.tid]))
    return [r for r in rows if r is not None]


def _q_direction(ctx: _Ctx, o: _Obj) -> dict | None:
    d = o.direction
    if d not in _DIR_OPTION:
        return None
    q = ctx.pick(["Which direction does {x} move?", "In which direction does {x} move overall?",
                  "Which way does {x} move over the course of the clip?"], "direction", o.tid, x=o.ref)
    dis = _direction_distractors(d, ctx.rng("dis", "direction", o.tid))
    return _mcq(ctx, "motion_recognition", "direction", q, _DIR_OPTION[d], [_DIR_OPTION[x] for x in dis],
                _fact("direction", [o.tid], d))


def _q_direction_at(ctx: _Ctx, o: _Obj) -> dict | None:
    if len({m["direction"] for m in o.moves}) < 2 and not o.rec["n_stops"]:
        return None
    clear = [m for m in o.moves if len(m["cands"]) == 1 and m["direction"] in SECTORS and m["dur"] >= 1.2
             and m["shift"] >= 0.05
             and float(ctx.clip["start_s"]) <= (m["t0"] + m["t1"]) / 2 <= float(ctx.clip["end_s"])]
    if not clear:
        return None
    m = ctx.rng("seg", o.tid).choice(clear)
    t = round((m["t0"] + m["t1"]) / 2 - float(ctx.clip["start_s"]), 1) + float(ctx.clip["start_s"])
    if not (m["t0"] + 0.4 <= t <= m["t1"] - 0.4):
        return None
    q = ctx.pick(["Which direction is {x} moving at {t} s?", "At {t} s, which way is {x} moving?",
                  "In which direction is {x} moving {t} s into the clip?"], "direction_at", o.tid,
                 x=o.ref, t=_s(t, ctx.clip))
    d = m["direction"]
    dis = _direction_distractors(d, ctx.rng("dis", "direction_at", o.tid))
    return _mcq(ctx, "motion_recognition", "direction_at", q, _DIR_OPTION[d], [_DIR_OPTION[x] for x in dis],
                _fact("direction_at", [o.tid], d, t=round(t, 3)))


def _q_activity(ctx: _Ctx, o: _Obj) -> dict | None:
    a = _activity(o)
    if a is None:
        return None
    q = ctx.pick(["Which best describes how {x} moves?", "What does {x} do while it is moving?",
                  "How does {x} move during the clip?"], "activity", o.tid, x=o.ref)
    others = [k for k in _ACTIVITY_OPTION if k != a]
    ctx.rng("dis", "activity", o.tid).shuffle(others)
    return _mcq(ctx, "motion_recognition", "activity", q, _ACTIVITY_OPTION[a], [_ACTIVITY_OPTION[k] for k in others],
                _fact("activity", [o.tid], a))


def _region_distractors(true: str, other: str | None, rng: random.Random) -> list[str]:
    r0, c0 = _CELL[true]
    near = [n for n, (r, c) in _CELL.items() if n != true and max(abs(r - r0), abs(c - c0)) == 1 and n != other]
    far = [n for n in _CELL if n not in near and n != true and n != other]
    rng.shuffle(near)
    rng.shuffle(far)
    return ([other] if other and other != true else []) + near + far


def _q_region(ctx: _Ctx, o: _Obj, which: str) -> dict | None:
    cands = o.start_regions if which == "start" else o.end_regions
    if len(cands) != 1:
        return None
    true = next(iter(cands))
    other = o.rec["end_region"] if which == "start" else o.rec["start_region"]
    if which == "start":
        q = ctx.pick(["Where in the frame is {x} when it first appears?", "In which part of the frame does {x} start?",
                      "Where does {x} begin its path?"], "start_region", o.tid, x=o.ref)
    else:
        q = ctx.pick(["Where in the frame does {x} end up?", "In which part of the frame is {x} when it is last seen?",
                      "Where does {x} finish its path?"], "end_region", o.tid, x=o.ref)
    dis = _region_distractors(true, other, ctx.rng("dis", which, o.tid))
    return _mcq(ctx, "location_motion", f"{which}_region", q, _cap(_REGION_TEXT[true]),
                [_cap(_REGION_TEXT[x]) for x in dis], _fact(f"{which}_region", [o.tid], true))


def _side(dx: float, dy: float, diag: float, dominance: float = 2.0, min_frac: float = 0.1) -> str | None:
    """The side of the frame a displacement (px) heads to, when one axis clearly dominates."""
    if abs(dx) >= dominance * abs(dy) and abs(dx) >= min_frac * diag:
        return "right" if dx > 0 else "left"
    if abs(dy) >= dominance * abs(dx) and abs(dy) >= min_frac * diag:
        return "bottom" if dy > 0 else "top"
    return None


def _q_heading(ctx: _Ctx, o: _Obj) -> dict | None:
    r = o.rec
    w, h = r["width"], r["height"]
    side = _side(r["dx"] * w, r["dy"] * h, math.hypot(w, h))
    if side is None or o.direction is None or any(_side(dx, dy, math.hypot(w, h)) != side for dx, dy in o.alt_disp):
        return None
    q = ctx.pick(["Toward which side of the frame does {x} move?", "Which side of the frame does {x} head toward?"],
                 "heading", o.tid, x=o.ref)
    others = [s for s in _SIDE_OPTION if s != side]
    ctx.rng("dis", "heading", o.tid).shuffle(others)
    return _mcq(ctx, "location_motion", "heading", q, _SIDE_OPTION[side], [_SIDE_OPTION[s] for s in others],
                _fact("heading", [o.tid], side))


def _q_move_order(ctx: _Ctx, o: _Obj, which: str) -> dict | None:
    moves = o.moves
    if not o.reliable or len({m["direction"] for m in moves}) < 2:
        return None
    m = moves[0] if which == "first" else moves[-1]
    if len(m["cands"]) != 1 or m["direction"] not in SECTORS or m["dur"] < 0.5 or m["shift"] < 0.05:
        return None
    d = m["direction"]
    if which == "first":
        q = ctx.pick(["In which direction does {x} move first?", "Which way does {x} go when it first starts moving?"],
                     "first_move", o.tid, x=o.ref)
    else:
        q = ctx.pick(["In which direction does {x} move last?", "Which way does {x} go at the end of its motion?",
                      "In which direction does {x} make its final move?"], "last_move", o.tid, x=o.ref)
    later = [x["direction"] for x in moves if x["direction"] != d and x["direction"] in SECTORS]
    dis = later[:1] + _direction_distractors(d, ctx.rng("dis", which, o.tid))
    return _mcq(ctx, "temporal_order", f"{which}_move", q, _DIR_OPTION[d], [_DIR_OPTION[x] for x in dis],
                _fact(f"{which}_move", [o.tid], d))


def _q_count(ctx: _Ctx, o: _Obj, what: str) -> dict | None:
    if not (o.reps_ok if what == "repetitions" else o.stops_ok):
        return None
    n = int(o.rec[what])
    if what == "repetitions":
        q = ctx.pick(["How many times does {x} go back and forth?", "How many times does {x} move back and forth?",
                      "How many times does {x} travel back and forth?"], what, o.tid, x=o.ref)
    else:
        q = ctx.pick(["How many times does {x} stop and start again?", "How many times does {x} pause along the way?",
                      "How many times does {x} come to a stop before it finishes moving?"], what, o.tid, x=o.ref)
    return _mcq(ctx, "repetition_count", what, q, _times(n), [_times(c) for c in _count_distractors(n)],
                _fact(what, [o.tid], n))


def _end_time(o: _Obj, what: str) -> float:
    # only asked of reliable objects: they have an onset, so an end too (onset_s and end_s are None together)
    return o.rec["onset_s"] if what == "starts" else o.rec["end_s"]


def _really_stops(o: _Obj) -> bool:
    return o.rec["end_s"] is not None and o.rec["end_s"] <= o.rec["t_end"] - 0.5


def _first_of(ctx: _Ctx, objs: list[_Obj], what: str) -> _Obj | None:
    """The object that starts / stops moving first, by at least min_order_gap_s, all objects trusted."""
    if len(objs) < 2 or any(not o.reliable for o in objs):
        return None
    ranked = sorted(objs, key=lambda o: _end_time(o, what))
    first, second = ranked[0], ranked[1]
    if _end_time(second, what) - _end_time(first, what) < ctx.p.min_order_gap_s:
        return None
    if what == "stops" and not _really_stops(first):
        return None
    return first


def _q_first(ctx: _Ctx, what: str) -> dict | None:
    if ctx.any_untrusted or ctx.n_static:
        return None
    first = _first_of(ctx, ctx.objs, what)
    if first is None:
        return None
    two = len(ctx.objs) == 2
    verb = "start" if what == "starts" else "stop"
    if what == "starts":
        q = ctx.pick(["Which object starts moving first?", "Which object is the first to start moving?",
                      "Which object begins to move before the other" + ("?" if two else "s?")], "first", what)
    else:
        q = ctx.pick(["Which object stops moving first?", "Which object is the first to come to a stop?"],
                     "first", what)
    same = f"{'Both' if two else 'They all'} {verb} at the same time"
    none = f"{'Neither' if two else 'None'} of them {'moves' if what == 'starts' else 'stops'}"
    others = [o.ref for o in ctx.objs if o is not first]
    ctx.rng("dis", "first", what).shuffle(others)
    return _mcq(ctx, "temporal_order", f"{what}_first", q, first.ref, [*others[:2], same, none, *others[2:]],
                _fact(f"{what}_first", [o.tid for o in ctx.objs], first.tid, scope="all"))


def _q_pair_first(ctx: _Ctx, a: _Obj, b: _Obj) -> dict | None:
    if a.untrusted or b.untrusted:
        return None
    first = _first_of(ctx, [a, b], "starts")
    row = ctx.pairs.get((a.tid, b.tid))
    if first is None or row is None or row["starts_first"] not in ("a", "b"):
        return None
    if (row["starts_first"] == "a") != (first is a):
        return None
    x, y = (a, b) if ctx.rng("order", a.tid, b.tid).random() < 0.5 else (b, a)
    q = ctx.pick(["Which starts moving first: {x} or {y}?", "Between {x} and {y}, which begins to move first?"],
                 "pair_first", a.tid, b.tid, x=x.ref, y=y.ref)
    other = b if first is a else a
    return _mcq(ctx, "temporal_order", "starts_first", q, first.ref,
                [other.ref, "They start at the same time", "Neither of them moves"],
                _fact("starts_first", [a.tid, b.tid], first.tid, scope="pair"))


def _object_fillers(ctx: _Ctx, answer: _Obj, plural: str) -> list[str]:
    """Distractors for an object answer: the other objects, then false group answers, then absent objects."""
    others = [o.ref for o in ctx.objs if o is not answer and not _numbered(o.ref)]
    ctx.rng("others", answer.tid, plural).shuffle(others)
    group = ["None of the objects"] + ([plural] if len(ctx.objs) >= 2 else [])
    return others + group + ctx.fakes(answer, 3)


def _q_which_direction(ctx: _Ctx, d: str) -> dict | None:
    if ctx.n_static:  # a track dropped as static may hide a motion in any direction
        return None
    hits = [o for o in ctx.objs if d in o.maybe]  # a doubtful track that may move <d> too: abstain
    if len(hits) != 1 or not hits[0].usable or hits[0].dirs != {d}:
        return None
    t = hits[0]
    q = ctx.pick(["Which object moves {d}?", "Which object is moving {d}?", "Which of the objects goes {d}?"],
                 "which_direction", d, d=_DIR_PHRASE[d])
    plural = "Both of them" if len(ctx.objs) == 2 else "All of them"
    return _mcq(ctx, "motion_objects", "which_direction", q, t.ref, _object_fillers(ctx, t, plural),
                _fact("which_direction", [t.tid], t.tid, direction=d))


def _q_which_activity(ctx: _Ctx, activity: str) -> dict | None:
    if ctx.any_untrusted or ctx.n_static or not ctx.objs or any(not (o.stops_ok and o.reps_ok) for o in ctx.objs):
        return None
    key = "n_stops" if activity == "stop_and_go" else "repetitions"
    hits = [o for o in ctx.objs if o.rec[key] >= 1]
    if len(hits) != 1 or _activity(hits[0]) != activity:
        return None
    t = hits[0]
    if activity == "stop_and_go":
        q = ctx.pick(["Which object stops and then continues moving?", "Which object pauses along the way?"],
                     "which_activity", activity)
    else:
        q = ctx.pick(["Which object goes back and forth?", "Which object moves back and forth?"],
                     "which_activity", activity)
    plural = "Both of them" if len(ctx.objs) == 2 else "All of them"
    return _mcq(ctx, "motion_objects", "which_activity", q, t.ref, _object_fillers(ctx, t, plural),
                _fact("which_activity", [t.tid], t.tid, activity=activity))


def _extreme(ctx: _Ctx, what: str) -> _Obj | None:
    """The object with the clearly largest distance / mean speed (all objects trusted)."""
    if ctx.any_untrusted or len(ctx.objs) < 2:
        return None
    key = "distance" if what == "longest" else "mean_speed"
    if any(not o.reliable for o in ctx.objs):
        return None
    ranked = sorted(ctx.objs, key=lambda o: -(o.rec[key] or 0.0))
    if (ranked[0].rec[key] or 0.0) < ctx.p.min_margin_ratio * (ranked[1].rec[key] or 0.0) or not ranked[0].reliable:
        return None
    return ranked[0]


def _q_extreme(ctx: _Ctx, what: str) -> dict | None:
    t = _extreme(ctx, what)
    if t is None:
        return None
    two = len(ctx.objs) == 2
    if what == "longest":
        q = ctx.pick(["Which object covers the longest distance?", "Which object travels the farthest?",
                      "Which object moves the greatest distance?"], "extreme", what)
        same = f"{'Both' if two else 'They all'} cover about the same distance"
    else:
        q = ctx.pick(["Which object moves fastest?", "Which object is the fastest while moving?",
                      "Which object moves at the highest speed?"], "extreme", what)
        same = f"{'Both' if two else 'They all'} move at about the same speed"
    others = [o.ref for o in ctx.objs if o is not t]
    ctx.rng("dis", "extreme", what).shuffle(others)
    none = f"{'Neither' if two else 'None'} of them moves"
    return _mcq(ctx, "motion_objects", what, q, t.ref, [*others[:2], same, none, *others[2:]],
                _fact(what, [o.tid for o in ctx.objs], t.tid))


# --------------------------------------------------------------------------------------------------
# Kinds that crowds support: counts, the majority direction, entry / exit order, nearest / furthest


def _plural(noun: str) -> str:
    return "people" if noun == "person" else f"{noun}es" if noun.endswith(("s", "x", "ch", "sh")) else f"{noun}s"


def _group_noun(ctx: _Ctx) -> str:
    """The noun for all of a clip's objects: their common label, else "object"."""
    nouns = {_noun(o.rec.get("label")) for o in ctx.objs}
    return nouns.pop() if len(nouns) == 1 else "object"


def _q_count_direction(ctx: _Ctx, d: str) -> dict | None:
    """How many <noun>s move <d>: asked when at least one object clearly moves <d> and no other object (doubtful
    ones with wide margins, tracks dropped as static that may move) could."""
    if len(ctx.objs) < 3 or ctx.n_static:
        return None
    counted = [o for o in ctx.objs if o.usable and o.dirs == {d}]
    unsure = [o for o in ctx.objs if d in o.maybe and o not in counted]
    if unsure or not counted or len(counted) > 6:
        return None
    noun = _group_noun(ctx)
    n = len(counted)
    q = ctx.pick(["How many {p} move {d}?", "How many of the {p} are moving {d}?", "How many {p} head {d}?"],
                 "count_direction", d, p=_plural(noun), d=_DIR_PHRASE[d])
    dis = [str(c) for c in (n + 1, n - 1, n + 2, n + 3) if c >= 0 and c != n]
    return _mcq(ctx, "motion_objects", "count_direction", q, str(n), dis,
                _fact("count_direction", [o.tid for o in counted], n, direction=d))


def _q_majority(ctx: _Ctx) -> dict | None:
    """The direction most of the moving objects take, by a margin no doubtful track could overturn: every
    object whose direction is not clear counts against the winner in each direction it might have."""
    if len(ctx.objs) < 3:
        return None
    clear = Counter(o.direction for o in ctx.objs if o.usable and o.direction in SECTORS)
    unsure = [o for o in ctx.objs if not o.usable or o.direction is None]
    if not clear:
        return None
    d, n = clear.most_common(1)[0]
    rivals = {e: clear.get(e, 0) + sum(e in o.maybe for o in unsure) + ctx.n_static for e in SECTORS if e != d}
    if n < 2 or n <= max(rivals.values()):
        return None
    noun = _group_noun(ctx)
    q = ctx.pick(["In which direction do most of the {p} move?", "Which way are most of the {p} moving?"],
                 "majority", p=_plural(noun))
    present = [e for e, _ in clear.most_common() if e != d]
    dis = present + _direction_distractors(d, ctx.rng("dis", "majority"))
    return _mcq(ctx, "motion_recognition", "majority_direction", q, _DIR_OPTION[d], [_DIR_OPTION[x] for x in dis],
                _fact("majority_direction", [o.tid for o in ctx.objs], d))


def _at_edge(q: dict, m: float) -> bool:
    """A path point whose box touches the frame's edge (within m of the frame size)."""
    return (q["ncx"] - q["nw"] / 2 <= m or q["ncx"] + q["nw"] / 2 >= 1 - m
            or q["ncy"] - q["nh"] / 2 <= m or q["ncy"] + q["nh"] / 2 >= 1 - m)


def _edge_event(ctx: _Ctx, o: _Obj, which: str) -> float | None:
    """When a trusted object enters (first seen inside the clip, at the frame's edge) or leaves (last seen inside
    the clip, at the edge); None otherwise."""
    r, path = o.rec, o.rec["path"] or []
    if o.untrusted or not path or r["t_start"] is None:
        return None
    if which == "enters":
        t, q = r["t_start"], path[0]
        inside = t > float(ctx.clip["start_s"]) + 0.5
    else:
        t, q = r["t_end"], path[-1]
        inside = t < float(ctx.clip["end_s"]) - 0.5
    return float(t) if inside and _at_edge(q, ctx.p.edge_margin) else None


def _q_edge_order(ctx: _Ctx, which: str, a: _Obj, ta: float, b: _Obj, tb: float) -> dict | None:
    if abs(ta - tb) < max(ctx.p.min_order_gap_s, 0.5):
        return None
    first, other = (a, b) if ta < tb else (b, a)
    x, y = (a, b) if ctx.rng("order", which, a.tid, b.tid).random() < 0.5 else (b, a)
    verb = "enter" if which == "enters" else "leave"
    q = ctx.pick(["Which {v}s the frame first: {x} or {y}?", "Between {x} and {y}, which {v}s the scene first?"],
                 "edge", which, a.tid, b.tid, v=verb, x=x.ref, y=y.ref)
    return _mcq(ctx, "temporal_order", f"{which}_first", q, first.ref,
                [other.ref, f"They {verb} at the same time", f"Neither of them {verb}s the frame"],
                _fact(f"{which}_first", [a.tid, b.tid], first.tid))


def _bottom_at(r: dict, t: float) -> float | None:
    """The box's bottom edge (fraction of the frame height) at time t, None when the track is not seen then."""
    path = r.get("path") or []
    if not path or r.get("t_start") is None or not (r["t_start"] <= t <= r["t_end"]):
        return None
    ts = [q["t"] for q in path]
    return float(np.interp(t, ts, [q["ncy"] + q["nh"] / 2 for q in path]))


def _q_depth(ctx: _Ctx, which: str) -> dict | None:
    """Of the people seen at the clip's middle, which is closest to (furthest from) the camera: the box that
    reaches lowest (highest) in the frame, by depth_margin over every other track seen then (dropped ones too)."""
    c0, c1 = float(ctx.clip["start_s"]), float(ctx.clip["end_s"])
    t = round((c1 - c0) / 2, 1) + c0
    seen = [(b, q) for q in ctx.everyone if (b := _bottom_at(q, t)) is not None]
    if len(seen) < 3:
        return None
    seen.sort(key=lambda x: -x[0] if which == "nearest" else x[0])
    (b0, best), (b1, _) = seen[0], seen[1]
    o = ctx.by_id.get(best["track_id"])
    if o is None or o.untrusted or _noun(o.rec.get("label")) != "person" or abs(b0 - b1) < ctx.p.depth_margin:
        return None
    people = [x for x in ctx.objs if x is not o and _noun(x.rec.get("label")) == "person" and not _numbered(x.ref)
              and _bottom_at(x.rec, t) is not None]
    if len(people) < 2:
        return None
    ctx.rng("dis", which).shuffle(people)
    near = "closest to" if which == "nearest" else "furthest from"
    q = ctx.pick(["At {t} s, which person is {n} the camera?", "Which person is {n} the camera {t} s into the clip?"],
                 which, t=_s(t, ctx.clip), n=near)
    return _mcq(ctx, "location_motion", which, q, o.ref, [x.ref for x in people] + ctx.fakes(o, 3),
                _fact(which, [q_["track_id"] for _, q_ in seen], o.tid, t=round(t, 3)))


# --------------------------------------------------------------------------------------------------
# Windowed kinds: what a track shows over a stretch where its identity holds


def _arrays(r: dict) -> tuple[np.ndarray, np.ndarray]:
    """A track's path as arrays (times, n x 4 of ncx, ncy, nw, nh), made once per track row."""
    if "_xy" not in r:
        path = r["path"]
        r["_xy"] = (np.array([q["t"] for q in path]), np.array([[q[k] for k in ("ncx", "ncy", "nw", "nh")]
                                                                for q in path]))
    return r["_xy"]


def _colours(r: dict) -> list[str | None]:
    """The colour names of a track's path points (aligned with _arrays' times), made once per track row."""
    if "_colours" not in r:
        r["_colours"] = [q.get("color") for q in r["path"]]
    return r["_colours"]


def _span(r: dict, t0: float, t1: float) -> slice:
    """The path points of a track with t0 <= t <= t1 (its times increase)."""
    ts, _ = _arrays(r)
    return slice(int(np.searchsorted(ts, t0, "left")), int(np.searchsorted(ts, t1, "right")))


def _box_at(r: dict, t: float) -> np.ndarray | None:
    """(ncx, ncy, nw, nh) of a track's path at time t, None outside its span: np.interp of each column, computed as
    it does (the same floats) on Python floats, since the questions ask this tens of thousands of times a clip."""
    path = r.get("path") or []
    if not path or r.get("t_start") is None or not (r["t_start"] <= t <= r["t_end"]):
        return None
    if "_lists" not in r:
        ts, xy = _arrays(r)
        r["_lists"] = (ts.tolist(), xy.tolist())
    times, boxes = r["_lists"]
    if t <= times[0] or t >= times[-1]:
        return np.array(boxes[0] if t <= times[0] else boxes[-1])
    j = bisect.bisect_right(times, t) - 1  # times[j] <= t < times[j + 1]
    if times[j] == t:
        return np.array(boxes[j])
    a, b, dt = boxes[j], boxes[j + 1], times[j + 1] - times[j]
    return np.array([(b[k] - a[k]) / dt * (t - times[j]) + a[k] for k in range(4)])


def _near_times(ctx: _Ctx, r: dict) -> dict[int, list[float]]:
    """Track id -> the times of r's path at which its box is near that track's box (``window_near``), over every
    other track of the clip (kept or dropped)."""
    if "_near" not in r:
        out: dict[int, list[float]] = {}
        ts, mine = _arrays(r)
        for x in ctx.everyone:
            if x["track_id"] == r["track_id"] or not x.get("path") or x.get("t_start") is None:
                continue
            if x["t_end"] < r["t_start"] or x["t_start"] > r["t_end"]:
                continue
            xt, theirs = _arrays(x)
            seen = (ts >= x["t_start"]) & (ts <= x["t_end"])
            b = np.column_stack([np.interp(ts, xt, theirs[:, k]) for k in range(4)])
            k = ctx.p.window_near
            hit = seen & (np.abs(mine[:, 0] - b[:, 0]) < k * (mine[:, 2] + b[:, 2])) \
                & (np.abs(mine[:, 1] - b[:, 1]) < k * (mine[:, 3] + b[:, 3]))
            if hit.any():
                out[x["track_id"]] = ts[hit].tolist()
        r["_near"] = out
    return r["_near"]


def _touching(ctx: _Ctx, r: dict) -> set[int]:
    return set(_near_times(ctx, r)) if r.get("path") and r.get("t_start") is not None else set()


def _colour_switches(r: dict, share: float, span: float = 1.0) -> list[float]:
    """Times where a track's box colour name changes for good: the colour of at least ``share`` of the boxes in
    the ``span`` seconds before differs from that of the ``span`` seconds after (one flickering box is no change).
    The path's colours are its boxes' own (the `tracks` table's ``box_color``)."""
    out: list[float] = []
    colours = _colours(r)
    if len(set(colours)) < 2:
        return out  # one colour all along: no change
    ts, _ = _arrays(r)  # increasing: the points of a time window are a slice
    for t in ts.tolist():
        lo, mid, hi = np.searchsorted(ts, [t - span, t, t + span], "left")
        before, after = colours[lo:mid], colours[mid:hi]
        if not before or not after:
            continue
        (cb, nb), (ca, na) = Counter(before).most_common(1)[0], Counter(after).most_common(1)[0]
        if cb != ca and nb >= share * len(before) and na >= share * len(after):
            out.append(t)
    return out


def _clear_stretches(ctx: _Ctx, r: dict, min_s: float) -> list[tuple[float, float]]:
    """Stretches [a, b] (seconds, inside the clip) over which a track's boxes show one object and all of it:
    none on a track with noisy boxes (``max_box_noise``), else ``window_pad_s`` away from the track's ends, from
    where its boxes change colour for good (``_colour_switches``: it may follow another object from there), from
    its box touching the frame's edge and from any moment its box comes near another track's box (kept or
    dropped: an occlusion, a merge or split, a possible id switch); never across a gap in its boxes."""
    if "_runs" not in r:
        r["_runs"] = _clear_runs(ctx, r)
    return [(a, b) for a, b in r["_runs"] if b - a >= min_s - 1e-9]


def _clear_runs(ctx: _Ctx, r: dict) -> list[tuple[float, float]]:
    """Every clear stretch of a track, however short (see _clear_stretches)."""
    path = r.get("path") or []
    p = ctx.p
    if not path or r.get("t_start") is None or r.get("box_noise") is None or r["box_noise"] > p.max_box_noise:
        return []  # noisy boxes: no stretch of them is clear
    c0, c1 = float(ctx.clip["start_s"]), float(ctx.clip["end_s"])
    ts, _ = _arrays(r)
    bad = [q["t"] for q in path if _at_edge(q, p.edge_margin)] + [t for ts_ in _near_times(ctx, r).values() for t in ts_]
    bad += _colour_switches(r, p.window_colour_share)
    lo, hi = max(r["t_start"] + p.window_pad_s, c0), min(r["t_end"] - p.window_pad_s, c1)
    ok = (ts >= lo) & (ts <= hi)
    for t in bad:
        ok &= np.abs(ts - t) > p.window_pad_s
    # a stretch never spans a gap in the track (missed frames: what the object did there is not seen)
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
    gap_after = np.append(np.diff(ts) > 1.5 * step + 1e-9, True)
    out, start = [], None
    for i, good in enumerate(ok):
        if good and start is None:
            start = i
        if (not good or gap_after[i]) and start is not None:
            end = i if good else i - 1
            out.append((float(ts[start]), float(ts[end])))
            start = None
    return out


def _snap(a: float, b: float, clip: dict) -> tuple[float, float]:
    """[a, b] shrunk to tenths of a second counted from the clip's start (the times a question shows)."""
    c0 = float(clip["start_s"])
    return c0 + math.ceil(round((a - c0) * 10, 6)) / 10, c0 + math.floor(round((b - c0) * 10, 6)) / 10


def _sizes(path: list[dict]) -> np.ndarray:
    return np.sqrt(np.clip([q["nw"] * q["nh"] for q in path], 1e-12, None))


def _steady_between(r: dict, t0: float, t1: float, p: QAParams) -> bool:
    """The box keeps its size and shape over [t0, t1] (``max_size_ratio``, ``max_aspect_change``): no blob
    growing, shrinking or changing shape there."""
    pts = [q for q in r["path"] if t0 <= q["t"] <= t1]
    if len(pts) < 3:
        return False
    size = _sizes(pts)
    aspect = np.clip([q["nw"] / max(q["nh"], 1e-12) for q in pts], 1e-12, None)
    return bool(size.max() / size.min() <= p.max_size_ratio and aspect.max() / aspect.min() <= p.max_aspect_change)


def _translates_between(r: dict, t0: float, t1: float, p: QAParams) -> bool:
    """The centre's motion over [t0, t1] is a translation of the object, not its box changing: the box is steady
    there (_steady_between), or the centre's net shift is larger than any change of the box's width or height
    over the window (the rule _build_obj applies to a whole track: a box edge that moves can shift the centre by
    half its change at most)."""
    if _steady_between(r, t0, t1, p):
        return True
    xy = _arrays(r)[1][_span(r, t0, t1)]
    if len(xy) < 3:
        return False
    w, h = int(r["width"]), int(r["height"])
    a, b = _path_at(r["path"], t0, w, h), _path_at(r["path"], t1, w, h)
    span = max(np.ptp(xy[:, 2]) * w, np.ptp(xy[:, 3]) * h)
    return bool(math.hypot(*(b[:2] - a[:2])) > span)


def _seen_at(r: dict, t: float, p: QAParams) -> bool:
    """The track's box at time t can be asked about: its size steady over t +- 0.2 s (``max_size_ratio``) and
    within ``max_box_change`` of the track's median size (not two objects merged into one blob, not a part of
    one), on a track that travels at least ``min_reliable_distance`` in all (a motion detector's box that never
    really moves may be a ghost of the background, not an object)."""
    if "_usual" not in r:
        _, xy = _arrays(r)
        r["_size"] = np.sqrt(np.clip(xy[:, 2] * xy[:, 3], 1e-12, None))
        r["_usual"] = float(np.median(r["_size"]))
    size, usual = r["_size"][_span(r, t - 0.2, t + 0.2)], r["_usual"]
    if len(size) < 3 or (r.get("distance") or 0.0) < p.min_reliable_distance:
        return False
    return bool(size.max() / size.min() <= p.max_size_ratio
                and max(size.max(), usual) / min(size.min(), usual) <= p.max_box_change)


_EXTREMES = {"left": ("furthest to the left", 0, 1), "right": ("furthest to the right", 0, -1),
             "top": ("highest in the frame", 1, 1),
             "bottom": ("lowest in the frame", 1, -1)}  # side: (words, axis of ncx / ncy, +1: smallest wins)


def _window_ref(ctx: _Ctx, o: _Obj, t0: float, t1: float) -> str | None:
    """How a windowed question names o: its referring expression when it is trusted; else "the <colour>
    <noun>" by the colour of at least ``window_colour_share`` of its boxes in [t0, t1] (a doubtful track's
    whole-track reference may describe another object), when no other track seen within 1 s of the window (kept
    or dropped, less one that was all out of the picture through the frame's edge before the window or comes into
    it after, see _crossing) has that colour and noun; else "the <colour> <noun> furthest to the left" (right, highest,
    lowest) when o's centre is that by ``region_margin`` of the frame over every such look-alike at the window's
    start, middle and end (o seen at all three, each look-alike at one at least)."""
    if not o.untrusted:
        return None if _numbered(o.ref) else o.ref
    key = (o.tid, t0, t1)
    if key not in ctx.window_refs:
        ctx.window_refs[key] = _colour_ref(ctx, o, t0, t1)
    return ctx.window_refs[key]


def _colour_ref(ctx: _Ctx, o: _Obj, t0: float, t1: float) -> str | None:
    """_window_ref of a doubtful track."""
    noun = _noun(o.rec.get("label"))
    cols = _colours(o.rec)[_span(o.rec, t0, t1)]
    top = Counter(cols).most_common(1)
    if not top or top[0][1] < ctx.p.window_colour_share * len(cols):
        return None
    colour = top[0][0]
    base = f"the {colour} {noun}" if colour else f"the {noun}"
    alike = []
    for x in ctx.everyone:
        if x["track_id"] == o.tid or x.get("t_start") is None or _noun(x.get("label")) != noun:
            continue
        if x["t_end"] < t0 - 1.0 or x["t_start"] > t1 + 1.0:
            continue
        gone = _crossing(ctx, x, "exits") if x["t_end"] < t0 else None
        coming = _crossing(ctx, x, "enters") if x["t_start"] > t1 else None
        if (gone is not None and gone[0] + gone[2] < t0) or (coming is not None and coming[0] - coming[2] > t1):
            continue  # all of it left the picture before the window (comes into it after): not in view then
        seen = set(_colours(x)[_span(x, t0 - 1.0, t1 + 1.0)]) | {x.get("color")}
        if colour in seen:
            alike.append(x)
    if not alike:
        return base
    side = _extreme_among(o.rec, alike, t0, t1, ctx.p.region_margin)
    return None if side is None else f"{base} {_EXTREMES[side][0]}"


def _window_move(ctx: _Ctx, r: dict, t0: float, t1: float,
                 p: QAParams) -> tuple[set[str], float, float, np.ndarray]:
    """(direction words under p's margins, net shift / diagonal, path length / net shift, the centre's
    displacement (dx, dy, size change) px) of a track over [t0, t1] (sectors only: its box keeps its size
    there)."""
    w, h = int(r["width"]), int(r["height"])
    diag = math.hypot(w, h)
    a, b = _path_at(r["path"], t0, w, h), _path_at(r["path"], t1, w, h)
    d = b - a
    net = math.hypot(d[0], d[1])
    length = _centre_length(r, t0, t1)
    dirs = _perturbed_directions(d[0], d[1], b[2] / max(a[2], 1e-9), diag, p)
    return dirs, net / diag, length / max(net, 1e-9), d


def _move_spans(segments: list[dict]) -> list[tuple[float, float]]:
    """The spans of a track's move segments, and of each run of two or more of them with no stop between (a
    motion the piecewise fit cut where it bends a little: the window checks decide whether it is one direction)."""
    spans: list[tuple[float, float]] = []
    run: list[dict] = []
    for s in [*segments, {"kind": "stop"}]:
        if s["kind"] == "move":
            spans.append((s["t0"], s["t1"]))
            run.append(s)
            continue
        if len(run) >= 2:
            spans.append((run[0]["t0"], run[-1]["t1"]))
        run = []
    return spans


def _clear_motion(ctx: _Ctx, r: dict, t0: float, t1: float) -> tuple[set[str], float, float] | None:
    """(direction words under the margins, dx px, dy px) of a track over [t0, t1] when its motion there is clear:
    a translation (_translates_between), a net shift of at least 5 % of the diagonal and a nearly straight path
    (``window_straightness``); None otherwise."""
    if not _translates_between(r, t0, t1, ctx.p):
        return None
    dirs, shift, bend, d = _window_move(ctx, r, t0, t1, ctx.p)
    if shift < 0.05 or bend > ctx.p.window_straightness:
        return None
    return dirs, float(d[0]), float(d[1])


def _one_sector(dirs: set[str]) -> str | None:
    """The direction word when there is one and it is a sector (not toward / away / stationary)."""
    d = next(iter(dirs), None)
    return d if len(dirs) == 1 and d in SECTORS else None


def _move_windows(ctx: _Ctx, o: _Obj) -> list[tuple[float, float, set[str], float, float]]:
    """(t0, t1, direction words under the margins, dx px, dy px) of the clear parts of o's motions (_move_spans
    within _clear_stretches) lasting ``window_min_s`` or more whose motion is clear there (_clear_motion);
    longest first."""
    if "_moves" in o.rec:
        return o.rec["_moves"]
    out: list[tuple[float, float, set[str], float, float]] = []
    spans = _move_spans(o.rec["segments"] or [])
    for a, b in _clear_stretches(ctx, o.rec, ctx.p.window_min_s):
        for s0, s1 in spans:
            t0, t1 = _snap(max(a, s0), min(b, s1), ctx.clip)
            if t1 - t0 < ctx.p.window_min_s - 1e-9 or any(abs(t0 - x[0]) + abs(t1 - x[1]) < 1e-6 for x in out):
                continue
            motion = _clear_motion(ctx, o.rec, t0, t1)
            if motion is not None:
                out.append((t0, t1, *motion))
    out.sort(key=lambda x: (-(x[1] - x[0]), x[0]))
    o.rec["_moves"] = out
    return out


def _direction_windows(ctx: _Ctx, o: _Obj) -> list[tuple[float, float, str]]:
    """(t0, t1, direction) of o's clear motions (_move_windows) in one direction under the margins, longest
    first, distinct directions."""
    picked: list[tuple[float, float, str]] = []
    for t0, t1, dirs, _dx, _dy in _move_windows(ctx, o):
        d = _one_sector(dirs)
        if d is not None and all(d != x[2] for x in picked):
            picked.append((t0, t1, d))
    return picked


def _window_sides(dx: float, dy: float, diag: float, p: QAParams) -> set[str | None]:
    """The sides of the frame (left / right / top / bottom) a displacement (px) heads to under p's angle and
    displacement margins; None among them: it may be too small to head anywhere."""
    ang, r = math.atan2(dy, dx), math.hypot(dx, dy)
    out: set[str | None] = set()
    for da in (-p.angle_margin_deg, 0.0, p.angle_margin_deg):
        for dr in (-p.displacement_margin, 0.0, p.displacement_margin):
            rr, a = max(r + dr * diag, 0.0), ang + math.radians(da)
            out.add(_side(rr * math.cos(a), rr * math.sin(a), diag, dominance=1.0, min_frac=0.05))
    return out


def _heading_windows(ctx: _Ctx, o: _Obj) -> list[tuple[float, float, str]]:
    """(t0, t1, side) of o's clear motions whose direction word sits between two sectors (no direction_during
    question) but that head to one side of the frame under the same margins (within 45 degrees of an axis, by
    ``angle_margin_deg``), longest first, distinct sides."""
    picked: list[tuple[float, float, str]] = []
    diag = math.hypot(int(o.rec["width"]), int(o.rec["height"]))
    for t0, t1, dirs, dx, dy in _move_windows(ctx, o):
        if len(dirs) < 2 or not dirs <= set(SECTORS):
            continue
        sides = _window_sides(dx, dy, diag, ctx.p)
        side = next(iter(sides))
        if len(sides) == 1 and side is not None and all(side != x[2] for x in picked):
            picked.append((t0, t1, side))
    return picked


def _q_heading_during(ctx: _Ctx, o: _Obj, win: tuple[float, float, str]) -> dict | None:
    t0, t1, side = win
    x = _window_ref(ctx, o, t0, t1)
    if x is None:
        return None
    q = ctx.pick(["Toward which side of the frame does {x} move between {a} s and {b} s?",
                  "From {a} s to {b} s, which side of the frame is {x} heading toward?"], "heading_during", o.tid,
                 t0, x=x, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
    others = [e for e in _SIDE_OPTION if e != side]
    ctx.rng("dis", "heading_during", o.tid, t0).shuffle(others)
    return _mcq(ctx, "location_motion", "heading_during", q, _SIDE_OPTION[side], [_SIDE_OPTION[e] for e in others],
                _fact("heading_during", [o.tid], side, t0=round(t0, 3), t1=round(t1, 3)))


def _q_direction_during(ctx: _Ctx, o: _Obj, win: tuple[float, float, str]) -> dict | None:
    t0, t1, d = win
    x = _window_ref(ctx, o, t0, t1)
    if x is None:
        return None
    q = ctx.pick(["Which way does {x} move between {a} s and {b} s?", "From {a} s to {b} s, in which direction does "
                  "{x} move?", "In which direction is {x} moving from {a} s to {b} s?"], "during", o.tid, t0,
                 x=x, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
    dis = _direction_distractors(d, ctx.rng("dis", "during", o.tid, t0))
    return _mcq(ctx, "motion_recognition", "direction_during", q, _DIR_OPTION[d], [_DIR_OPTION[e] for e in dis],
                _fact("direction_during", [o.tid], d, t0=round(t0, 3), t1=round(t1, 3)))


def _still_between(r: dict, t0: float, t1: float, p: QAParams) -> bool:
    """The track really stays in place over [t0, t1]: its centre spans less than ``still_tolerance`` of the
    diagonal, the net shift stays stationary under the margins and the box keeps its size and shape (no motion
    toward or away from the camera)."""
    w, h = int(r["width"]), int(r["height"])
    diag = math.hypot(w, h)
    xy = _arrays(r)[1][_span(r, t0, t1)]
    pts = np.column_stack([xy[:, 0] * w, xy[:, 1] * h])
    if len(pts) < 3 or math.hypot(*np.ptp(pts, axis=0)) >= p.still_tolerance * diag:
        return False
    ends = _path_at(r["path"], t1, w, h) - _path_at(r["path"], t0, w, h)
    return _perturbed_directions(ends[0], ends[1], 1.0, diag, p) == {"stationary"} and _steady_between(r, t0, t1, p)


def _moving_between(ctx: _Ctx, r: dict, t0: float, t1: float) -> str | None:
    """The one direction (a sector) a track moves in over [t0, t1] when its motion there is clear
    (_clear_motion) and one direction under the margins; None otherwise."""
    motion = _clear_motion(ctx, r, t0, t1)
    return None if motion is None else _one_sector(motion[0])


def _still_window(ctx: _Ctx, o: _Obj) -> tuple[float, float] | None:
    """The longest clear part of one of o's stops (a stop segment less ``window_pad_s`` at each end, within
    _clear_stretches) lasting ``window_min_s`` or more over which o really stays in place (_still_between), on
    a track that moves elsewhere (a box that never moves may be a ghost of the background, see _seen_at)."""
    r, p = o.rec, ctx.p
    best = None
    for a, b in _clear_stretches(ctx, r, p.window_min_s):
        for s in r["segments"] or []:
            if s["kind"] != "stop":
                continue
            # window_pad_s inside the stop: where the object slows down and starts again the path is smoothed
            t0, t1 = _snap(max(a, s["t0"] + p.window_pad_s), min(b, s["t1"] - p.window_pad_s), ctx.clip)
            if t1 - t0 < p.window_min_s - 1e-9 or (best and t1 - t0 <= best[1] - best[0]):
                continue
            if _still_between(r, t0, t1, p) and _seen_at(r, (t0 + t1) / 2, p):
                best = (t0, t1)
    return best


def _phase_text(phase: str) -> str:
    return "stays in place" if phase == "stationary" else f"moves {_DIR_PHRASE[phase]}"


def _q_then_during(ctx: _Ctx, o: _Obj) -> dict | None:
    """"What does X do between a s and b s?" -> "It stays in place, then moves left" (or moves, then stops; or
    one direction, then another): two consecutive segments of o inside one clear stretch, each clear over at
    least ``window_min_s`` (_still_between / _moving_between) once ``window_pad_s`` around the change between
    them is left out, with different answers; the longest such window. Distractors: the order reversed, the
    second phase changed, one phase all along."""
    p = ctx.p
    best: tuple[float, float, float, float, str, str] | None = None
    segs = o.rec["segments"] or []
    for a, b in _clear_stretches(ctx, o.rec, 2 * p.window_min_s):
        for s1, s2 in zip(segs, segs[1:]):
            t0, m0 = _snap(max(a, s1["t0"] + (p.window_pad_s if s1["kind"] == "stop" else 0.0)),
                           min(b, s1["t1"] - p.window_pad_s), ctx.clip)
            m1, t1 = _snap(max(a, s2["t0"] + p.window_pad_s),
                           min(b, s2["t1"] - (p.window_pad_s if s2["kind"] == "stop" else 0.0)), ctx.clip)
            if min(m0 - t0, t1 - m1) < p.window_min_s - 1e-9 or (best and t1 - t0 <= best[1] - best[0]):
                continue
            first, second = [("stationary" if _still_between(o.rec, u, v, p) else None) if s["kind"] == "stop"
                              else _moving_between(ctx, o.rec, u, v) for s, (u, v) in ((s1, (t0, m0)), (s2, (m1, t1)))]
            if first and second and first != second and _seen_at(o.rec, (t0 + t1) / 2, p):
                best = (t0, t1, m0, m1, first, second)
    if best is None:
        return None
    t0, t1, m0, m1, first, second = best
    x = _window_ref(ctx, o, t0, t1)
    if x is None:
        return None
    rng = ctx.rng("dis", "then_during", o.tid, t0)
    moving = [d for d in (first, second) if d != "stationary"]
    other = rng.choice([d for d in SECTORS if d not in (first, second)])
    answer = f"It {_phase_text(first)}, then {_phase_text(second)}"
    distractors = [f"It {_phase_text(second)}, then {_phase_text(first)}",
                   f"It {_phase_text(first)}, then {_phase_text(other)}",
                   f"It {_phase_text(moving[0])} the whole time",
                   f"It {_phase_text(other)}, then {_phase_text(second)}"]
    q = ctx.pick(["What does {x} do between {a} s and {b} s?", "From {a} s to {b} s, how does {x} move?"],
                 "then_during", o.tid, t0, x=x, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
    return _mcq(ctx, "temporal_order", "then_during", q, answer, distractors,
                _fact("then_during", [o.tid], [first, second], t0=round(t0, 3), t1=round(t1, 3), tm0=round(m0, 3),
                      tm1=round(m1, 3)))


def _q_still_during(ctx: _Ctx, o: _Obj) -> dict | None:
    """"How does X move between a s and b s?" when o stays in place then (_still_window); the distractors are
    motions."""
    win = _still_window(ctx, o)
    if win is None:
        return None
    t0, t1 = win
    x = _window_ref(ctx, o, t0, t1)
    if x is None:
        return None
    q = ctx.pick(["How does {x} move between {a} s and {b} s?", "From {a} s to {b} s, what does {x} do?"],
                 "still_during", o.tid, t0, x=x, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
    rng = ctx.rng("dis", "still_during", o.tid, t0)
    moves = [f"It moves {_DIR_PHRASE[d]}" for d in rng.sample(SECTORS, 3)]
    return _mcq(ctx, "motion_recognition", "still_during", q, "It stays in place", moves,
                _fact("still_during", [o.tid], "stationary", t0=round(t0, 3), t1=round(t1, 3)))


def _q_region_at(ctx: _Ctx, o: _Obj, spans: list[tuple[float, float]]) -> list[dict | None]:
    """Where o is at a moment of its clear stretches (a cell no margin can change; o moving then, see _seen_at),
    at most two times with different answers: the longest stretches first, each at its middle, then at a quarter
    and three quarters of it (an object on a cell's border at the middle is clear of it a little before or
    after)."""
    rows: list[dict | None] = []
    cells_asked: set[str] = set()
    for t, a, b in _moments(spans, ctx.clip):
        box = _box_at(o.rec, t)
        x = _window_ref(ctx, o, t - 0.5, t + 0.5)
        if box is None or x is None or not a <= t <= b or not _seen_at(o.rec, t, ctx.p):
            continue
        cells = _regions_near(float(box[0]), float(box[1]), ctx.p.region_margin)
        if len(cells) != 1 or cells <= cells_asked:
            continue
        true = next(iter(cells))
        cells_asked.add(true)
        q = ctx.pick(["Where in the frame is {x} at {t} s?", "At {t} s, in which part of the frame is {x}?",
                      "In which part of the frame is {x} {t} s into the clip?"], "region_at", o.tid, t, x=x,
                     t=_s(t, ctx.clip))
        dis = _region_distractors(true, None, ctx.rng("dis", "region_at", o.tid, t))
        rows.append(_mcq(ctx, "location_motion", "region_at", q, _cap(_REGION_TEXT[true]),
                         [_cap(_REGION_TEXT[e]) for e in dis], _fact("region_at", [o.tid], true, t=round(t, 3))))
        if len(rows) == 2:
            break
    return rows


def _moments(spans: list[tuple[float, float]], clip: dict) -> list[tuple[float, float, float]]:
    """(t, a, b): moments to ask about in stretches [a, b], the longest stretch first, each at its middle, then
    at a quarter and at three quarters of it, shown times in tenths of a second (_snap)."""
    out: list[tuple[float, float, float]] = []
    for a, b in sorted(spans, key=lambda w: (-(w[1] - w[0]), w[0])):
        for f in (0.5, 0.25, 0.75):
            t = _snap(a + f * (b - a), a + f * (b - a) + 1.0, clip)[0]
            if a <= t <= b and all(abs(t - m[0]) > 1e-6 for m in out):
                out.append((t, a, b))
    return out


def _common(sa: list[tuple[float, float]], sb: list[tuple[float, float]], min_s: float) -> list[tuple[float, float]]:
    """The overlaps of two tracks' clear stretches lasting at least min_s, longest first."""
    return sorted(((max(u0, v0), min(u1, v1)) for u0, u1 in sa for v0, v1 in sb
                   if min(u1, v1) - max(u0, v0) >= min_s - 1e-9), key=lambda w: (w[0] - w[1], w[0]))


def _centre_length(r: dict, t0: float, t1: float) -> float:
    """Length (px) of a track's smoothed centre path over [t0, t1]: its points inside, the ends interpolated."""
    w, h = int(r["width"]), int(r["height"])
    ts, xy = _arrays(r)
    at = np.concatenate([[t0], ts[(ts > t0) & (ts < t1)], [t1]])
    pts = np.column_stack([np.interp(at, ts, xy[:, 0]) * w, np.interp(at, ts, xy[:, 1]) * h])
    return float(np.hypot(*np.diff(pts, axis=0).T).sum())


def _path_length(r: dict, t0: float, t1: float) -> float:
    """Length of a track's smoothed centre path over [t0, t1], in frame diagonals."""
    return _centre_length(r, t0, t1) / math.hypot(int(r["width"]), int(r["height"]))


def _q_faster_during(ctx: _Ctx, a: _Obj, b: _Obj, sa: list[tuple[float, float]],
                     sb: list[tuple[float, float]]) -> dict | None:
    """Which of two objects covers more ground over their longest common clear stretch (steady boxes, at least
    ``window_min_s``): by ``speed_margin`` at least, the faster one moving at least 5 % of the diagonal there,
    both travelling at least ``min_reliable_distance`` in all (see _seen_at)."""
    common = _common(sa, sb, ctx.p.window_min_s)
    if not common:
        return None
    t0, t1 = _snap(*common[0], ctx.clip)
    if t1 - t0 < ctx.p.window_min_s - 1e-9 or not (_steady_between(a.rec, t0, t1, ctx.p)
                                                   and _steady_between(b.rec, t0, t1, ctx.p)):
        return None
    la, lb = _path_length(a.rec, t0, t1), _path_length(b.rec, t0, t1)
    fast = a if la > lb else b
    if (max(la, lb) < 0.05 or max(la, lb) < ctx.p.speed_margin * min(la, lb)
            or min(a.rec["distance"] or 0.0, b.rec["distance"] or 0.0) < ctx.p.min_reliable_distance):
        return None
    x, y = _window_ref(ctx, a, t0, t1), _window_ref(ctx, b, t0, t1)
    if x is None or y is None:
        return None
    first, second = (x, y) if ctx.rng("order", "faster", a.tid, b.tid).random() < 0.5 else (y, x)
    q = ctx.pick(["Between {a} s and {b} s, which moves faster: {x} or {y}?",
                  "From {a} s to {b} s, which is quicker: {x} or {y}?"], "faster", a.tid, b.tid,
                 a=_s(t0, ctx.clip), b=_s(t1, ctx.clip), x=first, y=second)
    answer, other = (x, y) if fast is a else (y, x)
    return _mcq(ctx, "motion_objects", "faster_during", q, answer,
                [other, "They move at about the same speed", "Neither of them moves"],
                _fact("faster_during", [a.tid, b.tid], fast.tid, t0=round(t0, 3), t1=round(t1, 3)))


def _q_approach_during(ctx: _Ctx, a: _Obj, b: _Obj, sa: list[tuple[float, float]],
                       sb: list[tuple[float, float]]) -> dict | None:
    """Whether two objects get closer together or move farther apart over a part of a common clear stretch: the
    stretch itself, or its part before / after the moment they are closest (furthest), the longest first that
    lasts ``window_min_s`` or more and over which the distance between their centres changes by
    ``approach_margin`` of the diagonal or more and never goes back by more than ``displacement_margin``; both
    boxes of their usual size at the window's ends (_seen_at: no merge, no part, no ghost)."""
    w, h = int(a.rec["width"]), int(a.rec["height"])
    diag = math.hypot(w, h)
    for lo, hi in _common(sa, sb, ctx.p.window_min_s):
        (ta, xa), (tb, xb) = _arrays(a.rec), _arrays(b.rec)
        ts = np.unique(np.concatenate([[lo, hi], ta[(ta > lo) & (ta < hi)], tb[(tb > lo) & (tb < hi)]]))
        dist = np.hypot(np.interp(ts, ta, xa[:, 0]) * w - np.interp(ts, tb, xb[:, 0]) * w,
                        np.interp(ts, ta, xa[:, 1]) * h - np.interp(ts, tb, xb[:, 1]) * h)
        turns = (float(ts[int(np.argmin(dist))]), float(ts[int(np.argmax(dist))]))
        parts = {(lo, hi), *((lo, t) for t in turns), *((t, hi) for t in turns)}
        for u, v in sorted(parts, key=lambda x: (x[0] - x[1], x[0])):
            t0, t1 = _snap(u, v, ctx.clip)
            if t1 - t0 < ctx.p.window_min_s - 1e-9 or not all(_seen_at(o.rec, t, ctx.p) for o in (a, b)
                                                               for t in (t0, t1)):
                continue
            inside = (ts > t0) & (ts < t1)
            d = np.concatenate([[np.interp(t0, ts, dist)], dist[inside], [np.interp(t1, ts, dist)]])
            change = (d[-1] - d[0]) / diag
            back = (d - np.minimum.accumulate(d)) if change < 0 else (np.maximum.accumulate(d) - d)
            if abs(change) < ctx.p.approach_margin or back.max() > ctx.p.displacement_margin * diag:
                continue
            x, y = _window_ref(ctx, a, t0, t1), _window_ref(ctx, b, t0, t1)
            if x is None or y is None:
                continue
            rel = "closer" if change < 0 else "apart"
            q = ctx.pick(["How does the distance between {x} and {y} change from {a} s to {b} s?",
                          "Between {a} s and {b} s, do {x} and {y} get closer together or move farther apart?"],
                         "approach_during", a.tid, b.tid, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip), x=x, y=y)
            text = {"closer": "They get closer together", "apart": "They move farther apart"}
            return _mcq(ctx, "motion_objects", "approach_during", q, text[rel],
                        [text["apart" if rel == "closer" else "closer"], "Their distance stays about the same",
                         "Neither of them moves"],
                        _fact("approach_during", [a.tid, b.tid], rel, t0=round(t0, 3), t1=round(t1, 3)))
    return None


_RELATIVE_OPTION = {"left": "To the left of {y}", "right": "To the right of {y}", "above": "Above {y}",
                    "below": "Below {y}"}


def _q_relative_at(ctx: _Ctx, a: _Obj, b: _Obj, sa: list[tuple[float, float]],
                   sb: list[tuple[float, float]]) -> list[dict | None]:
    """Where a is relative to b (left of / right of / above / below) at moments of their common clear stretches
    (_moments: the longest first, middle then quarters), at most two times with different answers (objects that
    pass each other): one axis at least ``relative_dominance`` times the other and at least ``relative_min`` of
    the frame's diagonal apart."""
    rows: list[dict | None] = []
    asked: set[str] = set()
    w, h = int(a.rec["width"]), int(a.rec["height"])
    for t, lo, hi in _moments(_common(sa, sb, ctx.p.point_min_s), ctx.clip):
        ba, bb = _box_at(a.rec, t), _box_at(b.rec, t)
        if ba is None or bb is None or not lo <= t <= hi or not (_seen_at(a.rec, t, ctx.p)
                                                                 and _seen_at(b.rec, t, ctx.p)):
            continue
        dx, dy = (ba[0] - bb[0]) * w, (ba[1] - bb[1]) * h
        big, small = max(abs(dx), abs(dy)), min(abs(dx), abs(dy))
        if big < ctx.p.relative_min * math.hypot(w, h) or big < ctx.p.relative_dominance * small:
            continue
        rel = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("below" if dy > 0 else "above")
        x, y = _window_ref(ctx, a, t - 0.5, t + 0.5), _window_ref(ctx, b, t - 0.5, t + 0.5)
        if x is None or y is None or rel in asked:
            continue
        asked.add(rel)
        q = ctx.pick(["At {t} s, where is {x} relative to {y}?", "Where is {x} compared with {y} at {t} s?"],
                     "relative", a.tid, b.tid, t, x=x, y=y, t=_s(t, ctx.clip))
        others = [k for k in _RELATIVE_OPTION if k != rel]
        ctx.rng("dis", "relative", a.tid, b.tid, t).shuffle(others)
        rows.append(_mcq(ctx, "location_motion", "relative_at", q, _RELATIVE_OPTION[rel].format(y=y),
                         [_RELATIVE_OPTION[k].format(y=y) for k in others],
                         _fact("relative_at", [a.tid, b.tid], rel, t=round(t, 3))))
        if len(rows) == 2:
            break
    return rows


def _cell_during(r: dict, t0: float, t1: float, margin: float) -> str | None:
    """The grid cell a track stays in over [t0, t1] (start, middle and end, no margin changing it)."""
    cells: set[str] = set()
    for t in (t0, (t0 + t1) / 2, t1):
        box = _box_at(r, t)
        if box is None:
            return None
        cells |= _regions_near(float(box[0]), float(box[1]), margin)
    return next(iter(cells)) if len(cells) == 1 else None


def _g_direction_during(ctx: _Ctx) -> list[dict | None]:
    """"Which object moves <d> between a s and b s?" (or, when others move d too, "... moves <d> in <region>"):
    one kept track clearly moves d over a clear stretch (and stays in that region of the frame); every other
    track seen at least 0.3 s of the window (kept or dropped) has steady boxes and, with wide margins
    (``doubt_angle_deg``), does not move d over its part of the window (or may not be in that region at the
    window's middle, with twice ``region_margin``)."""
    rows: list[dict | None] = []
    loose = replace(ctx.p, angle_margin_deg=ctx.p.doubt_angle_deg, displacement_margin=3 * ctx.p.displacement_margin)
    for o in ctx.objs:
        for t0, t1, d in _direction_windows(ctx, o)[:2]:
            x = _window_ref(ctx, o, t0, t1)
            if x is None or d not in _DIR_PHRASE:
                continue
            rivals, blocked = [], False
            for r in ctx.everyone:  # every other track seen >= 0.3 s of the window
                if r["track_id"] == o.tid or r.get("t_start") is None or not r.get("path"):
                    continue
                a, b = max(t0, r["t_start"]), min(t1, r["t_end"])
                if b - a < 0.3:
                    continue
                if r.get("box_noise") is None or r["box_noise"] > ctx.p.max_box_noise:
                    blocked = True
                elif d in _window_move(ctx, r, a, b, loose)[0]:
                    rivals.append(r)
            cell, extreme = None, None
            if blocked:
                continue
            if rivals:
                tm = (t0 + t1) / 2
                cell = _cell_during(o.rec, t0, t1, ctx.p.region_margin)
                if cell is None or any((box := _box_at(r, tm)) is None
                                       or cell in _regions_near(float(box[0]), float(box[1]), 2 * ctx.p.region_margin)
                                       for r in rivals):
                    cell, extreme = None, _extreme_among(o.rec, rivals, t0, t1, 2 * ctx.p.region_margin)
                    if extreme is None:
                        continue
            if extreme is not None:
                q = ctx.pick(["Of the objects that move {d} between {a} s and {b} s, which one is {e}?",
                              "Which object moving {d} from {a} s to {b} s is {e}?"], "g_during", o.tid, t0,
                             d=_DIR_PHRASE[d], e=_EXTREMES[extreme][0], a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
            else:
                where = f" in {_REGION_TEXT[cell]} of the frame" if cell else ""
                q = ctx.pick(["Which object moves {d}{w} between {a} s and {b} s?",
                              "From {a} s to {b} s, which object heads {d}{w}?"], "g_during", o.tid, t0,
                             d=_DIR_PHRASE[d], w=where, a=_s(t0, ctx.clip), b=_s(t1, ctx.clip))
            others = [r["track_id"] for r in ctx.everyone if r["track_id"] != o.tid]
            tm = round((t0 + t1) / 2, 3)
            extra = {"extreme": extreme, "t": tm} if extreme else {"region": cell, "t": tm} if cell else {}
            rows.append(_grounded_row(ctx, "descriptive", "g_direction_during", q, o.tid, x, (round(t0, 3), round(t1, 3)),
                                      _fact("g_direction_during", [o.tid, *others], o.tid, window="given",
                                            direction=d, t0=round(t0, 3), t1=round(t1, 3), **extra)))
    return rows


def _extreme_among(r: dict, rivals: list[dict], t0: float, t1: float, margin: float) -> str | None:
    """The side of _EXTREMES (left: "furthest to the left", ...) toward which track r's centre beats every rival
    track's by ``margin`` of the frame at the start, middle and end of [t0, t1]: r seen at all three, each rival
    at one at least and beaten wherever it is seen; None when no side holds."""
    times = (t0, (t0 + t1) / 2, t1)
    mine = [b for t in times if (b := _box_at(r, t)) is not None]
    theirs = [[_box_at(x, t) for t in times] for x in rivals]
    if len(mine) < len(times) or any(all(b is None for b in bs) for bs in theirs):
        return None
    for side, (_, axis, sign) in _EXTREMES.items():
        if all(sign * (b[axis] - mine[k][axis]) >= margin for bs in theirs for k, b in enumerate(bs) if b is not None):
            return side
    return None


_SIDES = ("left", "right", "top", "bottom")
_INWARD = {"left": ("ncx", 1), "right": ("ncx", -1), "top": ("ncy", 1), "bottom": ("ncy", -1)}  # (coordinate, sign)
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
_SIDE_PHRASE = {"left": "the left side", "right": "the right side", "top": "the top", "bottom": "the bottom"}


def _side_gap(q: dict, edge: str, side: str) -> float:
    """How far one edge of a path point's box (left / right / top / bottom) is from one side of the frame
    (fraction of the frame's width / height)."""
    centre, half = (q["ncx"], q["nw"] / 2) if edge in ("left", "right") else (q["ncy"], q["nh"] / 2)
    at = centre - half if edge in ("left", "top") else centre + half
    return float(at) if side in ("left", "top") else float(1 - at)


def _edge_gap(q: dict, side: str) -> float:
    """How far a path point's box is from one side of the frame."""
    return _side_gap(q, side, side)


def _far_gap(q: dict, side: str) -> float:
    """How far the far edge of a path point's box (the edge opposite that side) is from one side of the frame."""
    return _side_gap(q, _OPPOSITE[side], side)


def _clip_span(ctx: _Ctx) -> tuple[float, float] | None:
    """The clip's own start and end (a track first seen after its start appeared in it: the detector sees every
    frame of the clip); the tracks' span where they are not known."""
    bounds = _clip_bounds(ctx.everyone, ctx.clip)
    if bounds is None:
        return None
    c0 = float(ctx.clip["start_s"]) if ctx.clip.get("start_s") is not None else bounds[0]
    c1 = float(ctx.clip["end_s"]) if ctx.clip.get("end_s") is not None else bounds[1]
    return c0, c1


def _crossing(ctx: _Ctx, r: dict, which: str) -> tuple[float, str, float] | None:
    """(time, side, lag) where a track enters (``which`` = "enters": its first box) or leaves ("exits": its last box)
    the picture through one side of the frame inside the clip, or None.  Its boxes are clear (``max_box_noise``);
    that box touches that side only (``edge_margin``), more than 0.5 s after the clip's start (before its end);
    within ``crossing_lead_s`` the box comes off (reached) the edge and the centre moves inward (outward) by more
    than ``edge_margin`` of the frame; at the speed of its far edge then, the object came into (goes out of) view
    at most ``crossing_lead_s`` - ``window_pad_s`` before (after) that box; no other track's box comes near it
    from ``window_pad_s`` before to ``window_pad_s`` after that time, its boxes keep their colour there; and no
    other track (kept or dropped) ends (starts) at the same side (``crossing_band``) within ``fragment_gap_s``
    before (after) it and ``fragment_dist`` of it (the object was lost at the edge and found again there, not
    entering / leaving).  The lag: that time (seconds) the object was (is) partly in view before (after) the box, at
    its far edge's speed.  Made once per track row."""
    key = f"_crossing_{which}"
    if key not in r:
        r[key] = _find_crossing(ctx, r, which)
    return r[key]


def _find_crossing(ctx: _Ctx, r: dict, which: str) -> tuple[float, str, float] | None:
    """_crossing, computed."""
    p, path = ctx.p, r.get("path") or []
    bounds = _clip_span(ctx)
    if (len(path) < 3 or r.get("t_start") is None or bounds is None or r.get("box_noise") is None
            or r["box_noise"] > p.max_box_noise):
        return None
    c0, c1 = bounds
    enters = which == "enters"
    t, q = (float(r["t_start"]), path[0]) if enters else (float(r["t_end"]), path[-1])
    if (t <= c0 + 0.5) if enters else (t >= c1 - 0.5):
        return None
    sides = [x for x in _SIDES if _edge_gap(q, x) <= p.edge_margin]
    if len(sides) != 1:
        return None
    side = sides[0]
    lo, hi = (t, t + p.crossing_lead_s) if enters else (t - p.crossing_lead_s, t)
    part = [x for x in path if lo <= x["t"] <= hi]
    key, sign = _INWARD[side]
    shift = (part[-1] if enters else part[0])[key] - q[key]
    if (len(part) < 3 or all(_edge_gap(x, side) <= p.edge_margin for x in part)
            or sign * shift <= p.edge_margin):  # the centre away from the edge at the other end
        return None
    # how long the object was (will be) partly in view before (after) that box: the box's far edge, the one the
    # object crosses the frame's edge with first (last), against its speed over the part; the question's window
    # must hold that moment with window_pad_s to spare
    far = [_far_gap(x, side) for x in part]
    speed = (far[-1] - far[0]) / max(part[-1]["t"] - part[0]["t"], 1e-9) * (1 if enters else -1)
    lag = _far_gap(q, side) / speed if speed > 0 else math.inf
    if lag > p.crossing_lead_s - p.window_pad_s:
        return None
    near = [s for ts in _near_times(ctx, r).values() for s in ts]
    if any(lo - p.window_pad_s <= s <= hi + p.window_pad_s for s in near):
        return None
    if any(lo - p.window_pad_s <= s <= hi + p.window_pad_s for s in _colour_switches(r, p.window_colour_share)):
        return None
    w, h = int(r["width"]), int(r["height"])
    diag = math.hypot(w, h)
    pos = _path_at(path, t, w, h)[:2]
    for x in ctx.everyone:
        if x["track_id"] == r["track_id"] or not x.get("path") or x.get("t_start") is None:
            continue
        other = float(x["t_end"]) if enters else float(x["t_start"])
        gap = t - other if enters else other - t
        near_side = _edge_gap(x["path"][-1] if enters else x["path"][0], side) <= p.crossing_band
        if 0 <= gap <= p.fragment_gap_s and near_side and \
                math.hypot(*(_path_at(x["path"], other, w, h)[:2] - pos)) <= p.fragment_dist * diag:
            return None
    return t, side, max(lag, 0.0)


def _after_crossing(r: dict, t: float, which: str, lead: float) -> tuple[float, float]:
    """The part of a track over which it is named for its crossing at t: up to ``lead`` after it comes in, before it
    goes out."""
    return (t, min(t + lead, float(r["t_end"]))) if which == "enters" else (max(t - lead, float(r["t_start"])), t)


def _q_crossing_side(ctx: _Ctx, o: _Obj, which: str) -> dict | None:
    """"Through which side of the frame does X enter (leave), at about t s?" (location_motion) where the track
    enters (leaves) the picture (_crossing), X named over the second after (before) it (_window_ref)."""
    got = _crossing(ctx, o.rec, which)
    if got is None:
        return None
    t, side, _ = got
    t0, t1 = _after_crossing(o.rec, t, which, ctx.p.crossing_lead_s)
    x = _window_ref(ctx, o, t0, t1)
    if x is None:
        return None
    verb = "enter" if which == "enters" else "leave"
    q = ctx.pick(["Through which side of the frame does {x} {v}, at about {t} s?",
                  "At about {t} s, {x} {v}s the frame: through which side?"], f"{which}_side", o.tid,
                 x=x, v=verb, t=_s(t, ctx.clip))
    return _mcq(ctx, "location_motion", f"{which}_side", q, _SIDE_OPTION[side],
                [_SIDE_OPTION[k] for k in _SIDES if k != side],
                _fact(f"{which}_side", [o.tid], side, t=round(t, 3), t0=round(t0, 3), t1=round(t1, 3)))


def _unseen_crossing(x: dict, side: str, enters: bool) -> float | None:
    """When a track that starts (ends) inside the frame would have come in through (go out through) that side of
    the frame unseen, at its speed away from (toward) that side over its first (last) half second; None when it
    moves the other way."""
    path = x["path"]
    t0, t1 = float(x["t_start"]), float(x["t_end"])
    t, q = (t0, path[0]) if enters else (t1, path[-1])
    t2 = min(t0 + 0.5, t1) if enters else max(t1 - 0.5, t0)
    if abs(t2 - t) < 1e-6:
        return None
    key, sign = _INWARD[side]
    ts = [r["t"] for r in path]
    v = (float(np.interp(t2, ts, [r[key] for r in path])) - q[key]) / (t2 - t)  # frame fractions / s, later - earlier
    inward = sign * v if enters else -sign * v  # away from the side after it starts (toward it before it ends)
    if inward <= 0:
        return None
    gap = max(_edge_gap(q, side), 0.0)
    return t - gap / inward if enters else t + gap / inward


def _g_crossings(ctx: _Ctx) -> list[dict | None]:
    """"Which <noun> enters the frame from <side> between a s and b s?" (and "... leaves the frame through
    <side> ..."): a kept track enters (leaves) there then (_crossing; doubtful tracks too: the question is about
    the moment its identity is clear), [a, b] = its first (last) box's time +- ``crossing_lead_s``, and no other
    track (kept or dropped) starts (ends) inside the clip within ``crossing_band`` of the frame from that side
    from ``window_pad_s`` before a to ``crossing_lead_s`` after b (from ``crossing_lead_s`` before a to
    ``window_pad_s`` after b: tracks start late and end early), nor starts (ends) elsewhere moving away from (toward)
    that side at a speed that puts it there then (_unseen_crossing: it may have crossed unseen, e.g. behind
    another object).  Window ``given``: the target's part of [a, b]."""
    rows: list[dict | None] = []
    bounds = _clip_span(ctx)
    if bounds is None:
        return rows
    p, (c0, c1) = ctx.p, bounds
    for o in ctx.objs:
        for which in ("enters", "exits"):
            got = _crossing(ctx, o.rec, which)
            if got is None:
                continue
            t, side, _ = got
            a = max(c0, c0 + math.floor(round((t - p.crossing_lead_s - c0) * 10, 6)) / 10)
            b = min(c1, c0 + math.ceil(round((t + p.crossing_lead_s - c0) * 10, 6)) / 10)
            # a detector finds an object a little after it enters and loses it a little before it leaves: an
            # object whose track starts up to crossing_lead_s after b (ends before a) may have entered (left) in [a, b]
            lo_x, hi_x = ((a - p.window_pad_s, b + p.crossing_lead_s) if which == "enters"
                          else (a - p.crossing_lead_s, b + p.window_pad_s))
            rival = False
            for x in ctx.everyone:
                if x["track_id"] == o.tid or not x.get("path") or x.get("t_start") is None:
                    continue
                tx, qx = (x["t_start"], x["path"][0]) if which == "enters" else (x["t_end"], x["path"][-1])
                inside = tx > bounds[0] + 1e-3 if which == "enters" else tx < bounds[1] - 1e-3  # not there all along
                if not inside:
                    continue
                # at that side then, or (found / lost inside the frame: out of an occlusion, or into one) heading
                # from / to it fast enough to have crossed it unseen then
                seen = _edge_gap(qx, side) <= p.crossing_band
                unseen = _unseen_crossing(x, side, which == "enters")
                if (seen and lo_x <= tx <= hi_x) or (unseen is not None and lo_x <= unseen <= hi_x):
                    rival = True
                    break
            if rival:
                continue
            lo, hi = max(a, float(o.rec["t_start"])), min(b, float(o.rec["t_end"]))
            if hi - lo < p.min_window_s:
                continue
            noun = _noun(o.rec.get("label"))
            ref = _window_ref(ctx, o, *_after_crossing(o.rec, t, which, p.crossing_lead_s)) or \
                f"the {noun} that {'enters' if which == 'enters' else 'leaves'} through {_SIDE_PHRASE[side]}"
            if which == "enters":
                q = ctx.pick(["Which {n} enters the frame from {s} between {a} s and {b} s?",
                              "Between {a} s and {b} s, which {n} comes into view from {s}?"], "g_enters", o.tid,
                             n=noun, s=_SIDE_PHRASE[side], a=_s(a, ctx.clip), b=_s(b, ctx.clip))
            else:
                q = ctx.pick(["Which {n} leaves the frame through {s} between {a} s and {b} s?",
                              "Between {a} s and {b} s, which {n} goes out of view through {s}?"], "g_exits", o.tid,
                             n=noun, s=_SIDE_PHRASE[side], a=_s(a, ctx.clip), b=_s(b, ctx.clip))
            kind = f"g_{which}_during"
            others = [r["track_id"] for r in ctx.everyone if r["track_id"] != o.tid]
            rows.append(_grounded_row(ctx, "descriptive", kind, q, o.tid, ref, (round(lo, 3), round(hi, 3)),
                                      _fact(kind, [o.tid, *others], o.tid, window="given", side=side,
                                            t0=round(a, 3), t1=round(b, 3))))
    return rows


# --------------------------------------------------------------------------------------------------
# Grounded questions (GroundMoRe)


def _window(ctx: _Ctx, o: _Obj, kind: str, within: tuple[float, float] | None = None) -> tuple[float, float] | None:
    r = o.rec
    if kind == "motion":
        t0, t1 = r["onset_s"], r["end_s"]
    elif kind in ("first_move", "last_move"):
        if not o.moves:
            return None
        m = o.moves[0] if kind == "first_move" else o.moves[-1]
        t0, t1 = m["t0"], m["t1"]
    elif kind == "stops":
        sw = r["stop_windows"] or []
        if not sw:
            return None
        t0, t1 = sw[0][0], sw[-1][1]
    else:
        raise ValueError(kind)
    if t0 is None or t1 is None:
        return None
    lo = max(t0, r["t_start"], float(ctx.clip["start_s"]), within[0] if within else -math.inf)
    hi = min(t1, r["t_end"], float(ctx.clip["end_s"]), within[1] if within else math.inf)
    if hi - lo < ctx.p.min_window_s:
        return None
    return round(lo, 3), round(hi, 3)


def _grounded(ctx: _Ctx, q_type: str, kind: str, question: str, t: _Obj, window_kind: str,
              within_of: _Obj | None = None, **extra: Any) -> dict | None:
    within = None
    if within_of is not None:
        row = ctx.pairs.get((within_of.tid, t.tid))
        if row is None:
            return None
        within = (row["t0"], row["t1"])
    win = _window(ctx, t, window_kind, within)
    if win is None or t.ref.lower() in question.lower():
        return None
    fact = _fact(kind, [t.tid] + ([within_of.tid] if within_of else []) + list(extra.pop("others", [])), t.tid,
                 window=window_kind, **({"with": within_of.tid} if within_of else {}), **extra)
    return _grounded_row(ctx, q_type, kind, question, t.tid, t.ref, win, fact)


def _grounded_row(ctx: _Ctx, q_type: str, kind: str, question: str, target: int, answer: str,
                  win: tuple[float, float], fact: str) -> dict:
    return {
        "video_id": ctx.clip.get("video_id"), "clip_id": ctx.clip.get("clip_id"), "category": None,
        "question": question, "options": None, "answer_text": answer, "source": "rule", "verified": True,
        "grounded": True, "q_type": q_type, "target_track_id": target, "action_start_s": win[0],
        "action_end_s": win[1], "fact": fact, "writer": "rule", "prompt_version": RULES_VERSION, "kept": True,
        "reject_reason": None, "kind": kind,
    }


def grounded_questions(traj: pl.DataFrame, pairs: pl.DataFrame, clip: dict,
                       params: QAParams | None = None) -> list[dict]:
    """GroundMoRe-style questions of one clip (causal, sequential, counterfactual, descriptive) whose answer is
    one object: ``target_track_id``, ``answer_text`` (its referring expression) and the window of the asked-about
    motion [action_start_s, action_end_s] (absolute seconds, inside the clip and the track's span).  Same row
    layout as :func:`rule_questions` with ``options`` None."""
    return _grounded_rows(_Ctx(traj, pairs, clip, params or QAParams()))


def _grounded_rows(ctx: _Ctx) -> list[dict]:
    if not ctx.objs:
        return []
    rows: list[dict | None] = []
    rows += _g_descriptive(ctx)
    rows += _g_direction_during(ctx)
    rows += _g_crossings(ctx)
    rows += _g_causal(ctx)
    rows += _g_sequential(ctx)
    rows += _g_counterfactual(ctx)
    return [r for r in rows if r is not None]


def _g_descriptive(ctx: _Ctx) -> list[dict | None]:
    rows = []
    t = _extreme(ctx, "longest")
    if t is not None:
        q = ctx.pick(["Which object travels the longest distance in the clip?", "Which object covers the most ground?"],
                     "g_longest")
        rows.append(_grounded(ctx, "descriptive", "g_longest", q, t, "motion",
                              others=[o.tid for o in ctx.objs if o is not t]))
    t = _extreme(ctx, "fastest")
    if t is not None:
        q = ctx.pick(["Which object is the fastest mover in the clip?", "Which object moves most quickly?"],
                     "g_fastest")
        rows.append(_grounded(ctx, "descriptive", "g_fastest", q, t, "motion",
                              others=[o.tid for o in ctx.objs if o is not t]))
    if len(ctx.objs) >= 2 and all(o.reliable and not o.untrusted for o in ctx.objs):
        ranked = sorted(ctx.objs, key=lambda o: -o.rec["n_turns"])
        if ranked[0].rec["n_turns"] >= ranked[1].rec["n_turns"] + 2:
            q = ctx.pick(["Which object changes direction most often?", "Which object turns the most times?"],
                         "g_turns")
            rows.append(_grounded(ctx, "descriptive", "g_turns", q, ranked[0], "motion",
                                  others=[o.tid for o in ctx.objs if o is not ranked[0]]))
    for d in _DIR_PHRASE:
        hits = [o for o in ctx.objs if d in o.maybe]
        if ctx.n_static:  # a track dropped as static may hide a motion in any direction
            continue
        if len(hits) == 1 and not hits[0].untrusted and hits[0].dirs == {d} and hits[0].timed:
            q = ctx.pick(["Which object is moving {d} across the scene?", "Which object heads {d}?"], "g_direction", d,
                         d=_DIR_PHRASE[d])
            rows.append(_grounded(ctx, "descriptive", "g_direction", q, hits[0], "motion", direction=d,
                                  others=[o.tid for o in ctx.objs if o is not hits[0]]))
    if all(o.stops_ok and o.reps_ok and not o.untrusted for o in ctx.objs) and not ctx.n_static:
        for activity, key, window in (("stop_and_go", "n_stops", "stops"), ("back_and_forth", "repetitions", "motion")):
            hits = [o for o in ctx.objs if o.rec[key] >= 1]
            if len(hits) == 1 and _activity(hits[0]) == activity:
                if activity == "stop_and_go":
                    q = ctx.pick(["Which object comes to a halt for a while and then moves on?",
                                  "Which object pauses before moving again?"], "g_activity", activity)
                else:
                    q = ctx.pick(["Which object moves to and fro?", "Which object keeps reversing its direction?"],
                                 "g_activity", activity)
                rows.append(_grounded(ctx, "descriptive", "g_activity", q, hits[0], window, activity=activity,
                                      others=[o.tid for o in ctx.objs if o is not hits[0]]))
    return rows


def _heads_toward(ctx: _Ctx, t: _Obj, r: _Obj, row: dict) -> float:
    """Cosine between t's displacement and the direction from t to r at the start of their common window."""
    w, h = t.rec["width"], t.rec["height"]
    a = _path_at(t.rec["path"], row["t0"], w, h)[:2]
    b = _path_at(r.rec["path"], row["t0"], w, h)[:2]
    move = np.array([t.rec["dx"] * w, t.rec["dy"] * h])
    to_r = b - a
    den = float(np.linalg.norm(move) * np.linalg.norm(to_r))
    return float(move @ to_r) / den if den > 0 else 0.0


def _g_causal(ctx: _Ctx) -> list[dict | None]:
    rows: list[dict | None] = []
    if ctx.n_static:  # "which object moves <d> to ..." needs every other object's direction
        return rows
    for r in ctx.objs:
        for t in ctx.objs:
            if t is r or t.direction not in SECTORS or t.untrusted or r.untrusted or not (t.timed and r.timed):
                continue
            row = ctx.pairs.get((r.tid, t.tid))
            if row is None or row["distance_start"] is None:
                continue
            change = row["distance_end"] - row["distance_start"]
            d = t.direction
            rivals = [o for o in ctx.objs if o is not t and o is not r and d in o.maybe]
            if rivals:
                continue
            cos = _heads_toward(ctx, t, r, row)
            if row["approach"] == "approaching" and change <= -0.1 and cos >= 0.5:
                q = ctx.pick(["Which object moves {d} to approach {r}?",
                              "Which object heads {d} to get closer to {r}?"],
                             "g_approach", r.tid, t.tid, d=_DIR_PHRASE[d], r=r.ref)
                rows.append(_grounded(ctx, "causal", "g_approach", q, t, "motion", within_of=r, direction=d,
                                      relation="approaching"))
            elif row["approach"] == "moving_apart" and change >= 0.1 and cos <= -0.5:
                q = ctx.pick(["Which object moves {d} to get away from {r}?", "Which object heads {d}, away from {r}?"],
                             "g_apart", r.tid, t.tid, d=_DIR_PHRASE[d], r=r.ref)
                rows.append(_grounded(ctx, "causal", "g_approach", q, t, "motion", within_of=r, direction=d,
                                      relation="moving_apart"))
    return rows


def _g_sequential(ctx: _Ctx) -> list[dict | None]:
    rows: list[dict | None] = []
    if len(ctx.objs) < 2 or any(not o.reliable or o.untrusted for o in ctx.objs) or ctx.n_static:
        return rows
    gap = ctx.p.min_order_gap_s
    for r in ctx.objs:
        others = [o for o in ctx.objs if o is not r]
        on_r, end_r = r.rec["onset_s"], r.rec["end_s"]
        # starts moving after R stops
        if _really_stops(r):
            after = [o for o in others if o.rec["onset_s"] > end_r + gap]
            if len(after) == 1 and all(o.rec["onset_s"] < end_r - gap for o in others if o is not after[0]):
                q = ctx.pick(["Which object starts moving after {r} stops?",
                              "Which object begins to move once {r} has stopped?"],
                             "g_after_stop", r.tid, r=r.ref)
                rows.append(_grounded(ctx, "sequential", "g_after_stop", q, after[0], "first_move", ref=r.tid))
        # stops moving before R starts
        before = [o for o in others if o.rec["end_s"] < on_r - gap and _really_stops(o)]
        if len(before) == 1 and all(o.rec["end_s"] > on_r + gap for o in others if o is not before[0]):
            q = ctx.pick(["Which object stops moving before {r} starts?",
                          "Which object has already stopped when {r} starts to move?"],
                         "g_before_start", r.tid, r=r.ref)
            rows.append(_grounded(ctx, "sequential", "g_before_start", q, before[0], "last_move", ref=r.tid))
        # starts before / after R does
        early = [o for o in others if o.rec["onset_s"] < on_r - gap]
        late = [o for o in others if o.rec["onset_s"] > on_r + gap]
        if len(early) == 1 and len(late) == len(others) - 1:
            q = ctx.pick(["Which object starts moving before {r} does?",
                          "Which object is already moving when {r} sets off?"],
                         "g_starts_before", r.tid, r=r.ref)
            rows.append(_grounded(ctx, "sequential", "g_starts_before", q, early[0], "first_move", ref=r.tid))
        if len(late) == 1 and len(early) == len(others) - 1:
            q = ctx.pick(["Which object starts moving after {r} does?", "Which object sets off later than {r}?"],
                         "g_starts_after", r.tid, r=r.ref)
            rows.append(_grounded(ctx, "sequential", "g_starts_after", q, late[0], "first_move", ref=r.tid))
    return rows


def _g_counterfactual(ctx: _Ctx) -> list[dict | None]:
    rows = []
    for d in _DIR_PHRASE:
        hits = [o for o in ctx.objs if d in o.maybe]
        if ctx.n_static:  # a track dropped as static may hide a motion in any direction
            continue
        if len(hits) == 2 and all(o.dirs == {d} and o.timed and not o.untrusted for o in hits):
            for r, t in (hits, hits[::-1]):
                q = ctx.pick(["If {r} had stayed still, which object would be the only one moving {d}?",
                              "Suppose {r} had not moved: which object would then be the only one going {d}?"],
                             "g_cf_direction", r.tid, d, r=r.ref, d=_DIR_PHRASE[d])
                rows.append(_grounded(ctx, "counterfactual", "g_cf_direction", q, t, "motion", direction=d, ref=r.tid))
    if len(ctx.objs) == 2 and all(o.reliable and not o.untrusted for o in ctx.objs) and not ctx.n_static:
        for r, t in (ctx.objs, ctx.objs[::-1]):
            q = ctx.pick(["If {r} had not moved at all, which object would be the only one moving in the clip?",
                          "Suppose {r} had stayed still the whole time: which object would be the only one in motion?"],
                         "g_cf_mover", r.tid, r=r.ref)
            rows.append(_grounded(ctx, "counterfactual", "g_cf_mover", q, t, "motion", ref=r.tid))
    return rows


# --------------------------------------------------------------------------------------------------
# LLM-written questions


def llm_rows(questions: list[dict], traj: pl.DataFrame, pairs: pl.DataFrame, clip: dict, model: str | None,
             prompt_version: str | None) -> list[dict]:
    """Rows (the :func:`rule_questions` layout) for LLM-written questions ({question, options, answer letter,
    category}), each checked by :func:`verify_llm_question`: verified True / None are kept, False are kept =
    false with the reason."""
    out = []
    for q in questions:
        ok, reason = verify_llm_question(q, traj, pairs)
        opts = [str(x) for x in (q.get("options") or [])]
        letter = str(q.get("answer") or "")
        idx = LETTERS.find(letter) if len(letter) == 1 else -1
        answer = opts[idx] if 0 <= idx < len(opts) else None
        out.append({
            "video_id": clip.get("video_id"), "clip_id": clip.get("clip_id"), "category": q.get("category"),
            "question": str(q.get("question") or ""), "options": opts, "answer_text": answer, "llm_answer": letter,
            "source": "llm", "verified": ok, "grounded": False, "q_type": None, "target_track_id": None,
            "action_start_s": None, "action_end_s": None, "fact": None, "writer": model,
            "prompt_version": prompt_version,
            "kept": ok is not False, "reject_reason": reason, "kind": "llm",
        })
    return out


_NUM = {"zero": 0, "no": 0, "none": 0, "never": 0, "not": 0, "once": 1, "one": 1, "single": 1, "twice": 2, "two": 2,
        "thrice": 3, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_VERT = {"up": -1, "upward": -1, "upwards": -1, "rises": -1, "rise": -1, "ascends": -1, "upper": -1, "top": -1,
         "down": 1, "downward": 1, "downwards": 1, "falls": 1, "fall": 1, "descends": 1, "lower": 1, "bottom": 1}
_HORIZ = {"left": -1, "leftward": -1, "leftwards": -1, "right": 1, "rightward": 1, "rightwards": 1}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _claimed_direction(text: str) -> str | None:
    """The direction word an option claims, or None."""
    t = text.lower()
    if re.search(r"toward[s]? the camera|closer to the camera|approach(es)? the camera|gets? (bigger|larger)|grows", t):
        return "toward"
    if re.search(r"away from the camera|(farther|further) from the camera|gets? smaller|shrinks|recedes", t):
        return "away"
    if re.search(r"stays? (still|in place)|does not move|doesn't move|remains? still|stationary", t):
        return "stationary"
    w = _words(t)
    v = next((_VERT[x] for x in w if x in _VERT), 0)
    hz = next((_HORIZ[x] for x in w if x in _HORIZ), 0)
    if not v and not hz:
        return None
    ang = math.degrees(math.atan2(-v, hz)) % 360.0
    return SECTORS[int(((ang + 22.5) % 360.0) // 45.0)]


def _dir_compatible(claim: str, fact: str) -> bool:
    if claim == fact:
        return True
    if claim in SECTORS and fact in SECTORS:
        diff = abs(SECTORS.index(claim) - SECTORS.index(fact)) % 8
        return min(diff, 8 - diff) <= 1
    return False


def _claimed_cells(text: str) -> set[str] | None:
    """Cells of the 3x3 grid a region phrase covers ("the left side": the left column), or None."""
    w = _words(text)
    t = " ".join(w)
    row = col = None
    if re.search(r"\b(top|upper)\b", t):
        row = 0
    elif re.search(r"\b(bottom|lower)\b", t):
        row = 2
    if re.search(r"\bleft\b", t):
        col = 0
    elif re.search(r"\bright\b", t):
        col = 2
    centre = bool(re.search(r"\b(center|centre|middle)\b", t))
    if row is None and col is None:
        return {"center"} if centre else None
    if centre:  # "top center", "middle left"
        row = 1 if row is None else row
        col = 1 if col is None else col
    return {REGIONS[r][c] for r in range(3) for c in range(3)
            if (row is None or r == row) and (col is None or c == col)}


def _claimed_count(text: str) -> int | None:
    for x in _words(text):
        if x.isdigit():
            return int(x)
        if x in _NUM:
            return _NUM[x]
    return None


def _mentions(text: str, objs: list[_Obj]) -> list[_Obj]:
    """Objects a text refers to, in order of appearance: the full referring expression, else a colour + noun or
    a colour / label that only one object has."""
    low = " " + " ".join(_words(text)) + " "
    found: dict[int, int] = {}
    for o in sorted(objs, key=lambda o: -len(o.ref)):
        k = low.find(" " + " ".join(_words(o.ref)) + " ")
        if k >= 0 and not any(abs(k - p) < 3 for p in found.values()):
            found[o.tid] = k
    colours = Counter(o.rec.get("color") for o in objs)
    labels = Counter(_noun(o.rec.get("label")) for o in objs)
    for o in objs:
        if o.tid in found:
            continue
        c, noun = o.rec.get("color"), _noun(o.rec.get("label"))
        if c and colours[c] == 1:
            k = low.find(f" {c} ")
            if k >= 0:
                found[o.tid] = k
                continue
        if noun != "object" and labels[noun] == 1 and (not c or colours[c] == len(objs)):
            k = low.find(f" {noun} ")
            if k >= 0:
                found[o.tid] = k
    return sorted((o for o in objs if o.tid in found), key=lambda o: found[o.tid])


def verify_llm_question(q: dict, traj: pl.DataFrame, pairs: pl.DataFrame | None = None,
                        params: QAParams | None = None) -> tuple[bool | None, str | None]:
    """Check an LLM-written multiple-choice question against the clip's facts.

    Returns (False, 'structure: ...') for a malformed question (not 4 distinct non-empty options, answer not in
    A-D, unknown category); (False, reason) when a checkable claim of the correct option contradicts the facts
    (e.g. 'direction: facts say left, answer says right'); (True, None) when at least one claim was checked and
    all agree; (None, None) when nothing could be checked."""
    p = params or QAParams()
    opts = q.get("options")
    if not isinstance(opts, list | tuple) or len(opts) != 4:
        return False, "structure: needs exactly 4 options"
    opts = [str(x).strip() if x is not None else "" for x in opts]
    if any(not x for x in opts):
        return False, "structure: empty option"
    if len({x.lower() for x in opts}) != 4:
        return False, "structure: options are not distinct"
    letter = str(q.get("answer") or "").strip().upper()
    if len(letter) != 1 or letter not in LETTERS:
        return False, f"structure: answer {q.get('answer')!r} is not one of A-D"
    if q.get("category") not in CATEGORIES:
        return False, f"structure: unknown category {q.get('category')!r}"
    question = str(q.get("question") or "")
    if len(question.strip()) < 5:
        return False, "structure: empty question"
    answer = opts[LETTERS.index(letter)]
    clip = {"video_id": None, "clip_id": None, "start_s": 0.0, "end_s": math.inf}
    ctx = _Ctx(traj, pairs, clip, p)
    objs = list(ctx.objs)
    if not objs:
        return None, None
    ql = question.lower()
    asked = _mentions(question, objs)
    named = _mentions(answer, objs)
    checks: list[tuple[bool, str]] = []

    which_object = bool(re.search(r"\b(which|what) (object|one|item|thing|of the)\b|\bwho\b|\bwhich\b.*\bor\b", ql))
    if which_object and (named or re.search(r"same time|simultaneous", answer.lower())):
        checks += _check_which(ql, answer, named, asked, objs, ctx, p)
    elif asked:
        o = asked[0]
        if not o.untrusted:
            checks += _check_about(ql, answer, o, p)
    bad = [reason for ok, reason in checks if not ok]
    if bad:
        return False, bad[0]
    if checks:
        return True, None
    return None, None


def _check_about(ql: str, answer: str, o: _Obj, p: QAParams) -> list[tuple[bool, str]]:
    """Claims of an answer about one object's own motion."""
    out: list[tuple[bool, str]] = []
    r = o.rec
    if re.search(r"\bhow many\b|\bnumber of\b|\bhow often\b", ql):
        n = _claimed_count(answer)
        what = None
        if re.search(r"back.and.forth|to and fro|oscillat|repeat|cycle|round trip|reverse", ql):
            what, ok = "repetitions", o.reps_ok
        elif re.search(r"\bstop|\bpause|\bhalt", ql):
            what, ok = "n_stops", o.stops_ok
        elif re.search(r"\bturn|change[s]? direction", ql):
            what, ok = "n_turns", o.reliable
        if what and n is not None and ok:
            fact_n = int(r[what])
            noun = {"repetitions": "back-and-forth cycles", "n_stops": "stops", "n_turns": "turns"}[what]
            out.append((n == fact_n, f"count: facts say {fact_n} {noun}, answer says {n}"))
        return out
    region_q = re.search(r"\bwhere\b|which (part|region|area|corner|side)|what (part|region|area|corner|side)", ql)
    if region_q and not re.search(r"toward|towards|head|moving to|move to", ql):
        cells = _claimed_cells(answer)
        if cells is not None:
            if re.search(r"\b(start|begin|first|initial|appear)", ql):
                which, fact_cells = "start", o.start_regions
            elif re.search(r"\b(end|finish|final|last|stop)", ql):
                which, fact_cells = "end", o.end_regions
            else:
                return out
            if len(fact_cells) == 1:
                fact = next(iter(fact_cells))
                out.append((fact in cells, f"region: facts say {which}s at {fact}, answer says {answer}"))
        return out
    claim = _claimed_direction(answer)
    if claim is None:
        return out
    if re.search(r"\bfirst\b", ql) and o.moves:
        m = o.moves[0]
        if len(m["cands"]) == 1:
            out.append((_dir_compatible(claim, m["direction"]),
                        f"direction: facts say it first moves {m['direction']}, answer says {claim}"))
        return out
    if re.search(r"\blast\b|\bfinal|\bat the end\b|\bafter\b", ql) and o.moves:
        m = o.moves[-1]
        if len(m["cands"]) == 1:
            out.append((_dir_compatible(claim, m["direction"]),
                        f"direction: facts say it last moves {m['direction']}, answer says {claim}"))
        return out
    if re.search(r"\bat \d|\bbetween \d|\d+(\.\d+)? ?s\b|second", ql):
        return out  # a time-specific claim: not checked
    fact = o.direction
    if fact is None:
        return out
    if _dir_compatible(claim, fact):
        out.append((True, ""))
    elif any(_dir_compatible(claim, m["direction"]) for m in o.moves) and fact == "stationary":
        pass  # it does move that way at some point
    else:
        out.append((False, f"direction: facts say {fact}, answer says {claim}"))
    return out


def _check_which(ql: str, answer: str, named: list[_Obj], asked: list[_Obj], objs: list[_Obj], ctx: _Ctx,
                 p: QAParams) -> list[tuple[bool, str]]:
    """Claims of a "which object ..." answer."""
    out: list[tuple[bool, str]] = []
    pool = asked if len(asked) >= 2 else objs
    same = bool(re.search(r"same time|simultaneous", answer.lower()))
    t = named[0] if named else None
    for word, key in (("start", "onset_s"), ("begin", "onset_s"), ("stop", "end_s"), ("finish", "end_s")):
        if word in ql and re.search(r"\bfirst\b|\blast\b|\bearlier\b|\blater\b|\bbefore\b|\bafter\b", ql):
            if any(not o.reliable for o in pool) or len(pool) < 2:
                return out
            times = sorted((o.rec[key], o.tid) for o in pool if o.rec[key] is not None)
            if len(times) < 2:
                return out
            last = bool(re.search(r"\blast\b|\blater\b|\bafter\b", ql)) and "first" not in ql
            ranked = times[::-1] if last else times
            lead, runner = ranked[0], ranked[1]
            gap = abs(lead[0] - runner[0])
            name = ctx.by_id[lead[1]].ref
            if same:
                if gap > 0.3:
                    out.append((False, f"order: facts say {name} {word}s {'last' if last else 'first'} "
                                       f"({gap:.1f} s apart), answer says the same time"))
                else:
                    out.append((True, ""))
            elif t is not None and gap >= 0.3:
                out.append((t.tid == lead[1], f"order: facts say {name} {word}s {'last' if last else 'first'}, "
                                              f"answer says {t.ref}"))
            return out
    if t is None:
        return out
    if t.untrusted:
        return out
    for pattern, key in ((r"longest|farthest|furthest|most distance|greatest distance|most ground", "distance"),
                         (r"fastest|quickest|highest speed|most quickly", "mean_speed")):
        if re.search(pattern, ql):
            if any(o.untrusted for o in objs) or len(objs) < 2:
                return out
            best = max(objs, key=lambda o: o.rec[key] or 0.0)
            ratio = (best.rec[key] or 0.0) / max(t.rec[key] or 0.0, 1e-9)
            if best is t:
                out.append((True, ""))
            elif ratio >= p.min_margin_ratio:
                out.append((False, f"which object: facts say {best.ref} has the largest {key}, answer says {t.ref}"))
            return out
    claim = _claimed_direction(ql.split("which", 1)[-1]) if "which" in ql else None
    if claim is not None and claim != "stationary":
        if t.direction is None:
            return out
        if not _dir_compatible(claim, t.direction):
            out.append((False, f"direction: facts say {t.ref} moves {t.direction}, answer says it moves {claim}"))
        else:
            rivals = [o for o in objs if o is not t and o.direction and o.direction == claim]
            if rivals:
                out.append((False, f"which object: {rivals[0].ref} also moves {claim}"))
            else:
                out.append((True, ""))
    return out


# --------------------------------------------------------------------------------------------------
# Selection, letters, table rows


def _norm_tokens(text: str) -> set[str]:
    return set(_words(text))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _dedupe(rows: list[dict], threshold: float) -> list[dict]:
    """Drop near-duplicates (token Jaccard >= threshold with an earlier row).  Two rule rows are never near-
    duplicates of each other unless they state the same fact: in a crowd, questions about different objects
    differ only in the referring expression, and both are wanted."""
    kept: list[dict] = []
    toks: list[set[str]] = []
    for r in rows:
        t = _norm_tokens(r["question"])
        if any(_jaccard(t, u) >= threshold and not (r.get("source") == k.get("source") == "rule"
                                                       and r.get("fact") != k.get("fact"))
               for u, k in zip(toks, kept)):
            continue
        kept.append(r)
        toks.append(t)
    return kept


def _topic(r: dict) -> tuple:
    try:
        f = json.loads(r["fact"]) if r.get("fact") else {}
    except ValueError:
        f = {}
    return tuple(f.get("tracks", [])[:1])


def _pick_mcq(rows: list[dict], budget: int, p: QAParams, rng: random.Random) -> list[dict]:
    """Choose up to ``budget`` questions following the category weights (largest deficit first); within a
    category prefer verified questions, kinds and objects asked about least so far, then a seeded order."""
    pools: dict[Any, list[dict]] = {}  # by the rows' category (None for a row without one)
    for r in rows:
        pools.setdefault(r.get("category"), []).append(r)
    for pool in pools.values():
        rng.shuffle(pool)
    total_w = sum(p.weight(c) for c in pools if p.weight(c) > 0) or 1.0
    picked: list[dict] = []
    per_cat: Counter = Counter()
    kinds: Counter = Counter()
    topics: Counter = Counter()
    while len(picked) < budget:
        open_cats = [c for c in CATEGORIES if pools.get(c) and p.weight(c) > 0]
        if not open_cats:
            break
        n = len(picked) + 1
        cat = max(open_cats, key=lambda c: (p.weight(c) / total_w * n - per_cat[c], p.weight(c)))
        pool = pools[cat]
        best = min(range(len(pool)), key=lambda i: (pool[i].get("verified") is not True, kinds[pool[i].get("kind")],
                                                    topics[_topic(pool[i])], i))
        r = pool.pop(best)
        picked.append(r)
        per_cat[cat] += 1
        kinds[r.get("kind")] += 1
        topics[_topic(r)] += 1
    return picked


def _pick_grounded(rows: list[dict], budget: int, rng: random.Random) -> list[dict]:
    """Up to ``budget`` grounded questions, q_types in turn (in a seeded order), kinds and targets varied."""
    pools: dict[str, list[dict]] = {}
    for r in rows:
        pools.setdefault(r["q_type"], []).append(r)
    for pool in pools.values():
        rng.shuffle(pool)
    order = [t for t in Q_TYPES if pools.get(t)]
    rng.shuffle(order)
    picked: list[dict] = []
    kinds: Counter = Counter()
    targets: Counter = Counter()
    while len(picked) < budget and any(pools.get(t) for t in order):
        for t in order:
            if len(picked) >= budget or not pools.get(t):
                continue
            pool = pools[t]
            best = min(range(len(pool)), key=lambda i: (kinds[pool[i]["kind"]], targets[pool[i]["target_track_id"]], i))
            r = pool.pop(best)
            picked.append(r)
            kinds[r["kind"]] += 1
            targets[r["target_track_id"]] += 1
    return picked


def qa_id(video_id: str, clip_id: str | None, question: str) -> str:
    return hashlib.sha256(f"{video_id}\x1f{clip_id}\x1f{question}".encode()).hexdigest()[:16]


_OUT_KEYS = ("video_id", "clip_id", "qa_id", "category", "question", "option_a", "option_b", "option_c", "option_d",
             "answer", "answer_text", "source", "verified", "grounded", "q_type", "target_track_id", "action_start_s",
             "action_end_s", "fact", "writer", "prompt_version", "kept", "reject_reason")


def _table_row(r: dict, video_id: str, options: Sequence[str | None], letter: str | None) -> dict:
    opts = (list(options) + [None] * 4)[:4]
    row = {k: r.get(k) for k in _OUT_KEYS}
    row.update(video_id=video_id, qa_id=qa_id(video_id, r.get("clip_id"), r["question"]), option_a=opts[0],
               option_b=opts[1], option_c=opts[2], option_d=opts[3], answer=letter)
    if r.get("grounded"):
        row["category"] = r.get("category")
        row["q_type"] = r.get("q_type")
    else:
        row["q_type"] = None
    return row


def finalize(rows: list[dict], video_id: str, params: QAParams | None = None) -> list[dict]:
    """The qa_pairs rows of one video from candidate rows (:func:`rule_questions`, :func:`grounded_questions`,
    :func:`llm_rows`), per clip: near-duplicates removed (normalised token Jaccard >= dedupe_threshold, earlier
    rows win: rule before LLM when passed in that order), up to ``grounded_per_clip`` grounded questions and
    ``n_questions`` multiple-choice ones chosen (seeded by video + clip id), answer letters balanced (each question's answer
    goes to the letter used least so far in the clip, ties broken by the seeded RNG), the distractors shuffled
    into the other letters (seeded by video id + question).  Rejected LLM questions (kept false) are passed
    through with their own option order.  Output dicts have exactly the QA_PAIRS columns."""
    p = params or QAParams()
    by_clip: dict[str | None, list[dict]] = {}
    for r in rows:
        by_clip.setdefault(r.get("clip_id"), []).append(r)
    out: list[dict] = []
    for clip_id, rs in by_clip.items():
        rejected = [r for r in rs if r.get("kept") is False]
        cands = _dedupe([r for r in rs if r.get("kept") is not False and r.get("question")], p.dedupe_threshold)
        grounded = [r for r in cands if r.get("grounded")]
        mcq = [r for r in cands if not r.get("grounded") and r.get("options") and len(r["options"]) == 4
               and r.get("answer_text") in r["options"]]
        g_sel = _pick_grounded(grounded, p.grounded_per_clip, random.Random(seed_for(video_id, clip_id, "grounded")))
        m_sel = _pick_mcq(mcq, p.n_questions, p, random.Random(seed_for(video_id, clip_id, "select")))
        m_sel.sort(key=lambda r: CATEGORIES.index(r["category"]) if r.get("category") in CATEGORIES
                   else len(CATEGORIES))
        letter_rng = random.Random(seed_for(video_id, clip_id, "letters"))
        used = Counter(dict.fromkeys(LETTERS, 0))
        for r in m_sel:
            low = min(used.values())
            letter = letter_rng.choice([x for x in LETTERS if used[x] == low])
            used[letter] += 1
            distractors = [x for x in r["options"] if x != r["answer_text"]]
            random.Random(seed_for(video_id, r["question"])).shuffle(distractors)
            k = LETTERS.index(letter)
            options = distractors[:k] + [r["answer_text"]] + distractors[k:]
            out.append(_table_row(r, video_id, options, letter))
        for r in g_sel:
            out.append(_table_row(r, video_id, [None] * 4, None))
        for r in rejected:
            opts = [str(x) for x in (r.get("options") or [])]
            llm_letter = r.get("llm_answer") if r.get("llm_answer") in tuple(LETTERS) else None
            out.append(_table_row(r, video_id, opts, llm_letter))
    return out
