"""Correctness of the rule-based and grounded questions (fm_assets.labels.qa) against GROUND TRUTH, through the real
pipeline stages without Dagster, on the synthetic scenes (fm_assets.synthetic.standard_scenes()).

For every scene (rendered with each --seeds value: the seed changes the textures, hence the detector's boxes):
decode + the `motion` detector (fm_assets.defs.perception.detect_video, as the `detections` asset), a fresh tracker per
clip (TrackerResource.track_clip, as the `tracks` asset), one clip spanning the whole video, then
motion_facts.trajectories + pair_relations, then qa.rule_questions + grounded_questions + finalize.

Each question is scored against the scene's truth (facts.json and the keyframes, never the pipeline's facts):
tracks are matched to truth objects by box IoU over time (<name>.gt.txt, Hungarian on the mean IoU), the
question's `fact` is recomputed from the matched truth objects with the generator's definitions, and the
question is correct when it equals the question's answer; for "which object" questions the truth answer is
recomputed over ALL truth objects (an object the pipeline missed makes the question wrong); grounded questions
also need the action window to overlap the truth window with IoU >= 0.5.

    .venv/bin/python bench/qa_correctness.py [--seeds 0 1 2] [--dir DIR] [--markdown] [--candidates]

--candidates also scores every generated candidate (before finalize's selection), a stricter test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from fm_assets import synthetic as S  # noqa: E402
from fm_assets.labels import qa  # noqa: E402
from fm_assets.labels.ids import make_video_id  # noqa: E402
from fm_assets.labels.motion_facts import _turns, pair_relations, trajectories  # noqa: E402
from fm_assets.labels.schemas import DETECTIONS, QA_PAIRS, TRACKS, frame  # noqa: E402
from fm_assets.labels.tracking import DetectionParams, clip_track_rows, detect_video  # noqa: E402
from fm_resources.detection.resource import DetectorResource  # noqa: E402
from fm_resources.trackers import TrackerResource  # noqa: E402
from fm_resources.video import decode  # noqa: E402

SAME_S = 0.3  # truth orders closer than this are ambiguous (pair_relations' 'same')
APPROACH_FRAC = 0.05


# --------------------------------------------------------------------------------------------------
# Pipeline (no Dagster)


def run_pipeline(truth: S.SceneTruth, spec: S.SceneSpec, detector, tracker: TrackerResource, video_id: str):
    """tracks, trajectories, pairs and the clip dict of one rendered scene, one clip over the whole video."""
    n, fps = spec.n_frames, spec.fps
    clip_id = f"{video_id}:0"
    clip_row = {"clip_id": clip_id, "start_frame": 0, "end_frame": n}
    rows, _, _ = detect_video(video_id, decode(truth.mp4, 0), pl.DataFrame([clip_row]), fps, detector, DetectionParams())
    dets = frame(rows, DETECTIONS)
    tracks = frame(clip_track_rows(video_id, clip_row, dets, tracker.track_clip)[0], TRACKS)
    traj = trajectories(tracks, spec.width, spec.height)
    pairs = pair_relations(traj)
    clip = {"video_id": video_id, "clip_id": clip_id, "start_s": 0.0, "end_s": truth.facts["duration_s"]}
    return tracks, traj, pairs, clip, "color" in dets.columns and dets["color"].null_count() < len(dets)


def random_scenes(n: int, seed: int = 0) -> list[S.SceneSpec]:
    """Harder scenes for --random: 2-3 objects in their own bands (no occlusions), each with 1-4 legs (moves in
    any direction, holds of 0.6-1.6 s, some size changes toward / away from the camera, some late entries),
    colours drawn with repeats, so refs need regions / onset order."""
    rng = np.random.default_rng(seed)
    colours = ["red", "blue", "green", "yellow", "orange", "purple", "cyan", "white"]
    specs = []
    for k in range(n):
        n_obj = int(rng.integers(2, 4))
        vertical = bool(rng.random() < 0.5)  # bands are columns: objects move mostly up / down
        band = (640 if vertical else 480) / n_obj
        objs = []
        for i in range(n_obj):
            w, h = float(rng.uniform(50, 80)), float(rng.uniform(50, 80))
            half = 0.5 * max(w, h) * 1.6 + 4  # half the largest box: neighbours never overlap
            lo_b, hi_b = i * band + half, (i + 1) * band - half  # the band's range for the centre
            def point(lo_b=lo_b, hi_b=hi_b, half=half, vertical=vertical):
                a = float(rng.uniform(lo_b, max(lo_b, hi_b)))
                b = float(rng.uniform(half, (480 if vertical else 640) - half))
                return (round(a, 1), round(b, 1)) if vertical else (round(b, 1), round(a, 1))
            t = round(float(rng.uniform(0.3, 2.0)), 2)
            x, y = point()
            scale = 1.0
            kfs = [S.Keyframe(t, x, y, scale)]
            for _ in range(int(rng.integers(1, 5))):
                kind = rng.choice(["move", "move", "hold", "scale"])
                if kind == "hold":
                    t += float(rng.uniform(0.6, 1.6))
                elif kind == "scale":
                    t += float(rng.uniform(1.5, 3.0))
                    scale = float(np.clip(scale * rng.choice([0.6, 1.6]), 0.6, 1.6))
                else:
                    t += float(rng.uniform(1.0, 2.5))
                    x, y = point()
                if t > 7.6:
                    break
                kfs.append(S.Keyframe(round(t, 2), round(x, 1), round(y, 1), scale))
            appear = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.2 else 0.0
            if len(kfs) < 2:
                continue
            objs.append(S.ObjectSpec(i + 1, "object", str(rng.choice(colours)), str(rng.choice(["box", "disc"])),
                                     w, h, tuple(kfs), appear_s=min(appear, kfs[0].t)))
        specs.append(S.SceneSpec(name=f"random_{seed}_{k:02d}", duration_s=8.0, objects=tuple(objs)))
    return specs


# --------------------------------------------------------------------------------------------------
# Track <-> truth matching


def match_tracks(tracks: pl.DataFrame, gt_path: Path) -> dict[int, int]:
    """track_id -> truth obj_id by Hungarian assignment on the mean box IoU over the track's frames (>= 0.5)."""
    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    gt_by = defaultdict(dict)
    for f, oid, x, y, w, h, *_ in gt:
        gt_by[int(f)][int(oid)] = (x, y, x + w, y + h)
    tids = sorted(tracks["track_id"].unique().to_list())
    oids = sorted({int(o) for o in gt[:, 1]})
    score = np.zeros((len(tids), len(oids)))
    for i, tid in enumerate(tids):
        t = tracks.filter(pl.col("track_id") == tid)
        for fr, x1, y1, x2, y2 in t.select("frame_idx", "x1", "y1", "x2", "y2").iter_rows():
            for j, oid in enumerate(oids):
                g = gt_by[int(fr) + 1].get(oid)
                if g is not None:
                    score[i, j] += _iou((x1, y1, x2, y2), g)
        score[i] /= max(len(t), 1)
    rows, cols = linear_sum_assignment(-score)
    return {tids[i]: oids[j] for i, j in zip(rows, cols) if score[i, j] >= 0.5}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Truth facts (the generator's definitions, from facts.json and the keyframes)


class Truth:
    def __init__(self, spec: S.SceneSpec, facts: dict):
        self.spec, self.facts = spec, facts
        self.duration = facts["duration_s"]
        self.diag = math.hypot(spec.width, spec.height)
        self.objs = {o["obj_id"]: o for o in facts["objects"]}
        self.specs = {o.obj_id: o for o in spec.objects}

    def window(self, oid: int) -> tuple[float, float]:
        o = self.objs[oid]
        end = o["disappear_s"] if o["disappear_s"] is not None else self.duration
        return max(0.0, o["appear_s"]), min(self.duration, end)

    def moves(self, oid: int) -> list[dict]:
        return [s for s in self.objs[oid]["segments"] if s["kind"] == "move"]

    def stop_windows(self, oid: int) -> list[tuple[float, float]]:
        segs = self.objs[oid]["segments"]
        mv = [k for k, s in enumerate(segs) if s["kind"] == "move"]
        return [(s["t0"], s["t1"]) for k, s in enumerate(segs)
                if s["kind"] == "stop" and mv and mv[0] < k < mv[-1] and s["t1"] - s["t0"] >= S.MIN_STOP_S]

    def n_turns(self, oid: int) -> int:
        t0, t1 = self.window(oid)
        obj = self.specs[oid]
        cuts = sorted({t0, t1, *(k.t for k in obj.keyframes if t0 < k.t < t1)})
        xy = np.array([S.object_state(obj, t)[:2] for t in cuts])
        return _turns(xy, 0.02 * self.diag, 45.0)

    def activity(self, oid: int) -> str | None:
        o = self.objs[oid]
        dirs = {m["direction"] for m in self.moves(oid)}
        if o["n_stops"] == 0 and o["repetitions"] == 0 and len(dirs) == 1 and self.n_turns(oid) == 0:
            return "steady"
        if o["n_stops"] >= 1 and o["repetitions"] == 0:
            return "stop_and_go"
        if o["repetitions"] >= 1 and o["n_stops"] == 0:
            return "back_and_forth"
        return None

    def movers(self) -> list[int]:
        return [k for k, o in self.objs.items() if o["onset_s"] is not None]

    def direction_at(self, oid: int, t: float) -> str | None:
        for s in self.objs[oid]["segments"]:
            if s["t0"] <= t <= s["t1"]:
                return s["direction"]
        return None

    def side(self, oid: int) -> str:
        o = self.objs[oid]
        dx, dy = o["dx"] * self.spec.width, o["dy"] * self.spec.height
        if abs(dx) >= abs(dy):
            return "right" if dx > 0 else "left"
        return "bottom" if dy > 0 else "top"

    def distance_change(self, a: int, b: int) -> float | None:
        """Change of the centre distance (diagonals) over the common visible window of a and b."""
        (a0, a1), (b0, b1) = self.window(a), self.window(b)
        t0, t1 = max(a0, b0), min(a1, b1)
        if t1 <= t0:
            return None
        def dist(t):
            (xa, ya, _), (xb, yb, _) = S.object_state(self.specs[a], t), S.object_state(self.specs[b], t)
            return math.hypot(xa - xb, ya - yb) / self.diag
        return dist(t1) - dist(t0)

    def action_window(self, oid: int, kind: str, with_oid: int | None) -> tuple[float, float] | None:
        o = self.objs[oid]
        if kind == "motion":
            t0, t1 = o["onset_s"], o["end_s"]
        elif kind in ("first_move", "last_move"):
            mv = self.moves(oid)
            if not mv:
                return None
            m = mv[0] if kind == "first_move" else mv[-1]
            t0, t1 = m["t0"], m["t1"]
        elif kind == "stops":
            sw = self.stop_windows(oid)
            if not sw:
                return None
            t0, t1 = sw[0][0], sw[-1][1]
        else:
            return None
        if t0 is None:
            return None
        lo, hi = self.window(oid)
        t0, t1 = max(t0, lo), min(t1, hi)
        if with_oid is not None:
            lo, hi = self.window(with_oid)
            t0, t1 = max(t0, lo), min(t1, hi)
        return (t0, t1) if t1 > t0 else None


def _unique(ids: list[int]) -> int | None:
    return ids[0] if len(ids) == 1 else None


def _first(truth: Truth, oids: list[int], key: str) -> int | None:
    """The object whose onset / end is first by more than SAME_S (None when tied or missing)."""
    vals = sorted((truth.objs[o][key], o) for o in oids if truth.objs[o][key] is not None)
    if len(vals) < 2 or len(vals) < len(oids) or vals[1][0] - vals[0][0] <= SAME_S:
        return None
    return vals[0][1]


def truth_answer(fact: dict, truth: Truth, match: dict[int, int]) -> tuple[object, object, int | None]:
    """(truth value in fact space, the question's value mapped to truth space, truth target obj for windows)."""
    kind, value = fact["kind"], fact["value"]
    # the tracks the question is about must be real objects (the others listed are context only)
    object_answer = kind.startswith("g_") or kind in ("starts_first", "stops_first", "which_direction",
                                                      "which_activity", "longest", "fastest")
    needed = [value] if object_answer else [fact["tracks"][0]]
    needed += [fact[k] for k in ("ref", "with") if fact.get(k) is not None]
    if fact.get("scope") == "pair":
        needed += fact["tracks"]
    missing = sorted({t for t in needed if match.get(t) is None})
    if missing:
        raise LookupError(f"track(s) {missing} match no truth object")
    g = [match.get(t) for t in fact["tracks"]]
    o = g[0]
    objs = truth.objs
    if kind == "direction":
        return objs[o]["direction"], value, None
    if kind == "direction_at":
        return truth.direction_at(o, fact["t"]), value, None
    if kind == "activity":
        return truth.activity(o), value, None
    if kind in ("start_region", "end_region"):
        return objs[o][kind], value, None
    if kind == "heading":
        return truth.side(o), value, None
    if kind in ("first_move", "last_move"):
        mv = truth.moves(o)
        return (mv[0] if kind == "first_move" else mv[-1])["direction"] if mv else None, value, None
    if kind in ("repetitions", "n_stops"):
        return objs[o][kind], value, None
    answer = match.get(value) if isinstance(value, int) else None
    if kind in ("starts_first", "stops_first"):
        key = "onset_s" if kind == "starts_first" else "end_s"
        pool = truth.movers() if fact.get("scope") == "all" else g
        return _first(truth, pool, key), answer, None
    if kind in ("which_direction", "g_direction"):
        return _unique([k for k in objs if objs[k]["direction"] == fact["direction"]]), answer, answer
    if kind in ("which_activity", "g_activity"):
        key = "n_stops" if fact["activity"] == "stop_and_go" else "repetitions"
        hits = [k for k in objs if objs[k][key] >= 1]
        t = _unique(hits)
        return (t if t is not None and truth.activity(t) == fact["activity"] else None), answer, answer
    if kind in ("longest", "fastest", "g_longest", "g_fastest", "g_turns"):
        key = {"longest": "distance", "fastest": "mean_speed"}.get(kind.removeprefix("g_"))
        val = (lambda k: objs[k][key]) if key else truth.n_turns
        ranked = sorted(objs, key=lambda k: -val(k))
        best = ranked[0] if len(ranked) < 2 or val(ranked[0]) > val(ranked[1]) else None
        return best, answer, answer
    ref = match.get(fact.get("ref", fact.get("with")))
    if ref is None:
        raise LookupError(f"reference track {fact.get('ref', fact.get('with'))} matches no truth object")
    others = [k for k in truth.movers() if k != ref]
    if kind == "g_approach":
        d = fact["direction"]
        ok = []
        for k in others:
            ch = truth.distance_change(ref, k)
            rel = (None if ch is None else "approaching" if ch < -APPROACH_FRAC
                   else "moving_apart" if ch > APPROACH_FRAC else "steady")
            if objs[k]["direction"] == d and rel == fact["relation"]:
                ok.append(k)
        rivals = [k for k in others if objs[k]["direction"] == d]
        return (_unique(ok) if len(rivals) == 1 else None), answer, answer
    on_r, end_r = objs[ref]["onset_s"], objs[ref]["end_s"]
    if kind == "g_after_stop":
        hits = [k for k in others if objs[k]["onset_s"] > end_r + SAME_S]
        t = _unique(hits) if all(objs[k]["onset_s"] < end_r - SAME_S for k in others if k not in hits) else None
        return t, answer, answer
    if kind == "g_before_start":
        hits = [k for k in others if objs[k]["end_s"] < on_r - SAME_S]
        t = _unique(hits) if all(objs[k]["end_s"] > on_r + SAME_S for k in others if k not in hits) else None
        return t, answer, answer
    if kind in ("g_starts_before", "g_starts_after"):
        early = [k for k in others if objs[k]["onset_s"] < on_r - SAME_S]
        late = [k for k in others if objs[k]["onset_s"] > on_r + SAME_S]
        if len(early) + len(late) != len(others):
            return None, answer, answer
        return _unique(early if kind == "g_starts_before" else late), answer, answer
    if kind == "g_cf_direction":
        hits = sorted(k for k in objs if objs[k]["direction"] == fact["direction"])
        return (next((k for k in hits if k != ref), None) if len(hits) == 2 and ref in hits else None), answer, answer
    if kind == "g_cf_mover":
        mv = truth.movers()
        return (next((k for k in mv if k != ref), None) if len(mv) == 2 and ref in mv else None), answer, answer
    raise KeyError(f"unknown fact kind {kind!r}")


def score_row(row: dict, truth: Truth, match: dict[int, int]) -> tuple[bool, str]:
    fact = json.loads(row["fact"])
    try:
        want, got, target = truth_answer(fact, truth, match)
    except LookupError as exc:
        return False, str(exc)
    if want is None:
        return False, f"truth has no unique answer (question says {got})"
    if want != got:
        return False, f"truth {want!r}, question {got!r}"
    if row["grounded"]:
        win = truth.action_window(target, fact["window"], match.get(fact.get("with")) if fact.get("with") else None)
        if win is None:
            return False, "truth has no action window"
        a0, a1 = row["action_start_s"], row["action_end_s"]
        inter = max(0.0, min(a1, win[1]) - max(a0, win[0]))
        iou = inter / (max(a1, win[1]) - min(a0, win[0]))
        if iou < 0.5:
            return False, f"window [{a0:.2f}, {a1:.2f}] vs truth [{win[0]:.2f}, {win[1]:.2f}] (IoU {iou:.2f})"
    return True, ""


# --------------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--dir", type=Path, default=None, help="render scenes here (default: a temp dir)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--candidates", action="store_true", help="also score every candidate before selection")
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="also N random harder scenes (random_scenes), rendered with seed 0")
    ap.add_argument("--random-seed", type=int, default=0, help="seed of the random scenes' specs")
    args = ap.parse_args()
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    out_dir = Path(tmp.name) if tmp else args.dir
    detector, tracker = DetectorResource().build(), TrackerResource()
    params = qa.QAParams()
    results = {"selected": [], "candidates": []}
    colour_from_detector = True
    n_videos = 0
    jobs = [(seed, spec) for seed in args.seeds for spec in S.standard_scenes()]
    jobs += [(0, spec) for spec in random_scenes(args.random, args.random_seed)]
    for seed, spec in jobs:
        if True:
            truth_files = S.render_scene(spec, out_dir / f"seed{seed}", seed)
            video_id = make_video_id(f"{spec.name}.mp4", truth_files.facts["mp4_sha256"])
            tracks, traj, pairs, clip, has_colour = run_pipeline(truth_files, spec, detector, tracker, video_id)
            colour_from_detector &= has_colour
            n_videos += 1
            match = match_tracks(tracks, truth_files.gt)
            truth = Truth(spec, truth_files.facts)
            cands = qa.rule_questions(traj, pairs, clip, params) + qa.grounded_questions(traj, pairs, clip, params)
            final = qa.finalize(cands, video_id, params)
            frame(final, QA_PAIRS)  # the table contract holds
            for name, rows in (("selected", final), ("candidates", cands if args.candidates else [])):
                for r in rows:
                    ok, why = score_row(r, truth, match)
                    results[name].append({"scene": spec.name, "seed": seed, "row": r, "ok": ok, "why": why})
    if tmp:
        tmp.cleanup()
    elapsed = time.perf_counter() - started

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [f"### Question correctness vs ground truth on the synthetic scenes ({now})", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/qa_correctness.py', *sys.argv[1:]])}`", "",
             f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; {n_videos} videos "
             f"({len(S.standard_scenes())} standard scenes x seeds {args.seeds}"
             f"{f' + {args.random} random scenes (spec seed {args.random_seed})' if args.random else ''}), detector `{detector.name}`, tracker "
             f"{tracker.kind}, QAParams defaults; track colours "
             f"{'from the detections table' if colour_from_detector else 'MISSING from detections (refs by label only)'}; "
             f"{elapsed:.0f} s in all.", ""]
    for name in ("selected", "candidates"):
        res = results[name]
        if not res:
            continue
        title = "finalize output (what qa_pairs stores)" if name == "selected" else "every candidate before selection"
        lines += [f"**{title}**", "", "| group | n | correct | % |", "|---|--:|--:|--:|"]
        groups: dict[str, list] = defaultdict(list)
        for x in res:
            r = x["row"]
            groups[f"category {r['category']}" if not r["grounded"] else f"grounded {r['q_type']}"].append(x)
        order = [f"category {c}" for c in qa.CATEGORIES] + [f"grounded {t}" for t in qa.Q_TYPES]
        for g in order:
            xs = groups.get(g, [])
            n, c = len(xs), sum(x["ok"] for x in xs)
            lines.append(f"| {g} | {n} | {c} | {100 * c / n:.1f} |" if n else f"| {g} | 0 | 0 | - |")
        n, c = len(res), sum(x["ok"] for x in res)
        lines.append(f"| **all** | {n} | {c} | {100 * c / n:.1f} |")
        kinds = Counter(json.loads(x["row"]["fact"])["kind"] for x in res)
        lines += ["", "Kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), ""]
        wrong = [x for x in res if not x["ok"]]
        if wrong:
            lines.append("Wrong:")
            for x in wrong:
                r = x["row"]
                lines.append(f"- {x['scene']} seed {x['seed']}: \"{r['question']}\" -> {r['answer_text']!r}: {x['why']}")
            lines.append("")
        if name == "selected":
            letters = Counter(x["row"]["answer"] for x in res if not x["row"]["grounded"])
            lines += ["Answer letters: " + ", ".join(f"{k} {letters.get(k, 0)}" for k in "ABCD"), ""]
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("|", " ").replace("**", ""))
    by_cat = defaultdict(list)
    for x in results["selected"]:
        by_cat[x["row"]["category"] or x["row"]["q_type"]].append(x["ok"])
    return 0 if all(sum(v) >= 0.98 * len(v) for v in by_cat.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
