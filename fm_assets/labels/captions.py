"""Pure functions behind `captions` and the LLM's questions: the facts an LLM is shown (and the template writer
reads), the versioned prompt files in fm_assets/labels/prompts/, the structured output every writer returns, the
offline `template` writer, and the messages and reply schema of LLM-written questions. No Dagster, no IO beyond
reading the packaged prompt files.

Both writers fill the same seven aspects of FoundationMotion's captions (motion recognition, temporal order,
object-action association, location-based motion, repetition counting, direction / distance / velocity / path,
spatial relationships) plus an overview sentence; the caption text is the overview followed by one bullet per
aspect that applies.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import polars as pl
from pydantic import BaseModel, Field

from fm_assets.labels.qa import refer

PROMPTS = Path(__file__).parent / "prompts"
ASPECTS = ("motion_recognition", "temporal_order", "object_action", "location_motion", "repetition",
           "direction_speed_path", "spatial_relations")
_NONE = {"", "none", "none.", "n/a", "not applicable", "not applicable."}


class CaptionOut(BaseModel):
    """The structured output of every caption writer (validated for LLM replies)."""

    overview: str = Field(min_length=3)
    motion_recognition: str
    temporal_order: str
    object_action: str
    location_motion: str
    repetition: str
    direction_speed_path: str
    spatial_relations: str

    def text(self) -> str:
        bullets = [f"- {getattr(self, a).strip()}" for a in ASPECTS if getattr(self, a).strip().lower() not in _NONE]
        return "\n".join([self.overview.strip(), *bullets])


@cache
def prompt(name: str) -> tuple[str, str]:
    """(template text, version) of fm_assets/labels/prompts/<name>.md; the version names the file and a hash of its
    content, so editing a prompt changes the LLM cache key."""
    text = (PROMPTS / f"{name}.md").read_text()
    return text, f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _rel(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 2)


def clip_facts(traj: pl.DataFrame, pairs: pl.DataFrame, clip: dict) -> dict:
    """What writers see of one clip: duration, objects (referring expression + facts, times from the clip's
    start) and pair relations, as plain JSON-able data."""
    kept = traj.filter(pl.col("kept")).sort("track_id") if len(traj) else traj
    t0 = float(clip["start_s"])
    refs = refer(kept) if len(kept) else {}
    objects = []
    for r in kept.iter_rows(named=True):
        objects.append({
            "track_id": r["track_id"], "ref": refs[r["track_id"]], "label": r["label"], "color": r["color"],
            "visible_s": [_rel(r["t_start"], t0), _rel(r["t_end"], t0)],
            "direction": r["direction"], "distance": round(r["distance"], 3), "mean_speed": round(r["mean_speed"], 3),
            "max_speed": round(r["max_speed"], 3), "start_region": r["start_region"], "end_region": r["end_region"],
            "n_stops": r["n_stops"], "stops_s": [[_rel(a, t0), _rel(b, t0)] for a, b in (r["stop_windows"] or [])],
            "n_turns": r["n_turns"], "repetitions": r["repetitions"],
            "moves_s": [_rel(r["onset_s"], t0), _rel(r["end_s"], t0)],
            "segments": [{"t0": _rel(s["t0"], t0), "t1": _rel(s["t1"], t0), "kind": s["kind"],
                          "direction": s["direction"]} for s in (r["segments"] or [])],
        })
    relations = []
    for p in pairs.filter(pl.col("a") < pl.col("b")).sort("a", "b").iter_rows(named=True) if len(pairs) else ():
        if p["a"] not in refs or p["b"] not in refs:
            continue
        relations.append({
            "a": refs[p["a"]], "b": refs[p["b"]], "starts_first": p["starts_first"], "stops_first": p["stops_first"],
            "approach": p["approach"], "b_relative_to_a_start": p["position_start"],
            "b_relative_to_a_end": p["position_end"], "closest_s": _rel(p["min_distance_t"], t0),
        })
    return {"duration_s": round(float(clip["end_s"]) - t0, 2), "objects": objects, "relations": relations}


def caption_messages(facts: dict, trajectory: dict, n_frames: int) -> tuple[list[dict], str]:
    """Chat messages for an LLM caption writer and the prompt version."""
    text, version = prompt("caption_v1")
    note = (f"- {n_frames} frames of the clip, one every 0.5 s, in order." if n_frames else "")
    system = text.format(duration_s=facts["duration_s"], frames_note=note)
    user = json.dumps({"objects": facts["objects"], "relations": facts["relations"], "trajectory": trajectory},
                      separators=(",", ":"))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], version


# --------------------------------------------------------------------------------------------------------------
# The offline `template` writer

_DIRECTION = {
    "toward": "moves toward the camera", "away": "moves away from the camera", "stationary": "stays in place",
    "right": "moves right", "left": "moves left", "up": "moves up", "down": "moves down",
    "up-right": "moves up and to the right", "up-left": "moves up and to the left",
    "down-right": "moves down and to the right", "down-left": "moves down and to the left",
}
_POSITION = {"left_of": "to the left of", "right_of": "to the right of", "above": "above", "below": "below"}


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _does(o: dict) -> str:
    """What one object does, in a verb phrase."""
    if o["direction"] == "stationary" and o["repetitions"]:
        what = f"goes back and forth {_times(o['repetitions'])} and ends where it started"
    elif o["direction"] == "stationary":
        what = "moves around but ends where it started"
    else:
        what = _DIRECTION[o["direction"]]
        if o["repetitions"]:
            what += f", going back and forth {_times(o['repetitions'])}"
    if o["n_stops"]:
        what += f", stopping {_times(o['n_stops'])} on the way"
    return what


def template_caption(facts: dict) -> CaptionOut:
    """A deterministic caption of one clip from its facts (see `clip_facts`), covering the seven aspects."""
    objs = facts["objects"]
    if not objs:
        none = "none"
        return CaptionOut(overview="Nothing moves in this clip.", motion_recognition="No object moves.",
                          temporal_order=none, object_action=none, location_motion=none, repetition=none,
                          direction_speed_path=none, spatial_relations=none)
    names = [o["ref"] for o in objs]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    overview = _cap(f"{listed} {'moves' if len(objs) == 1 else 'move'} in this {facts['duration_s']:g} s clip: "
                    + "; ".join(f"{o['ref']} {_does(o)}" for o in objs) + ".")
    recognition = " ".join(_cap(f"{o['ref']} {_does(o)}.") for o in objs)

    movers = sorted((o for o in objs if o["moves_s"][0] is not None), key=lambda o: (o["moves_s"][0], o["track_id"]))
    if len(movers) > 1:
        order = ", then ".join(f"{o['ref']} at {o['moves_s'][0]:g} s" for o in movers)
        ends = sorted(movers, key=lambda o: (o["moves_s"][1], o["track_id"]))
        temporal = _cap(f"{order} start moving; {ends[0]['ref']} is the first to stop, at {ends[0]['moves_s'][1]:g} s.")
    elif movers:
        o = movers[0]
        temporal = _cap(f"{o['ref']} starts moving at {o['moves_s'][0]:g} s and stops at {o['moves_s'][1]:g} s.")
    else:
        temporal = "none"
    action = " ".join(_cap(f"{o['ref']} ({o['label']}{', ' + o['color'] if o['color'] else ''}) is the one that "
                           f"{_does(o)}.") for o in objs)
    location = " ".join(
        _cap(f"{o['ref']} starts at the {o['start_region']} of the frame and ends at the {o['end_region']}.")
        if o["start_region"] != o["end_region"] else _cap(f"{o['ref']} starts and ends at the {o['start_region']}.")
        for o in objs)
    reps = [f"{o['ref']} goes back and forth {_times(o['repetitions'])}" for o in objs if o["repetitions"]]
    reps += [f"{o['ref']} stops {_times(o['n_stops'])}" for o in objs if o["n_stops"]]
    repetition = _cap("; ".join(reps) + ".") if reps else "none"
    paths = []
    for o in objs:
        turns = f", turning {_times(o['n_turns'])}" if o["n_turns"] else ", along a straight path"
        paths.append(_cap(f"{o['ref']} travels {o['distance']:.2f} frame diagonals at {o['mean_speed']:.2f} "
                          f"diagonals per second on average (up to {o['max_speed']:.2f}){turns}."))
    spatial = []
    for r in facts["relations"]:
        start = f"{r['b']} is {_POSITION[r['b_relative_to_a_start']]} {r['a']}" if r["b_relative_to_a_start"] else ""
        change = {"approaching": "they approach each other", "moving_apart": "they move apart",
                  "steady": "their distance stays about the same"}.get(r["approach"] or "", "")
        end = (f", ending {_POSITION[r['b_relative_to_a_end']]} it" if r["b_relative_to_a_end"]
               and r["b_relative_to_a_end"] != r["b_relative_to_a_start"] else "")
        spatial.append(_cap(f"at first {start}; {change}{end}.") if start else _cap(f"{change}."))
    return CaptionOut(overview=overview, motion_recognition=recognition, temporal_order=temporal,
                      object_action=action, location_motion=location, repetition=repetition,
                      direction_speed_path=" ".join(paths), spatial_relations=" ".join(spatial) or "none")


class LLMQuestion(BaseModel):
    question: str = Field(min_length=5)
    options: list[str] = Field(min_length=4, max_length=4)
    answer: str = Field(pattern="^[A-D]$")
    category: str


class LLMQuestions(BaseModel):
    questions: list[LLMQuestion]


def qa_messages(caption: str, facts: dict, n: int, n_frames: int) -> tuple[list[dict], str]:
    text, version = prompt("qa_v1")
    note = f"You also see {n_frames} frames of the clip, one per second, in order." if n_frames else ""
    system = text.format(n_questions=n, frames_note=note)
    user = json.dumps({"caption": caption, "objects": facts["objects"], "relations": facts["relations"]},
                      separators=(",", ":"))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], version
