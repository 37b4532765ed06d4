"""Correctness of the rule-based and grounded questions (fm_assets.labels.qa) against GROUND TRUTH, through the real
pipeline stages without Dagster, on the synthetic scenes (fm_assets.synthetic.standard_scenes()).

For every scene (rendered with each --seeds value: the seed changes the textures, hence the detector's boxes):
decode + the `motion` detector (fm_assets.defs.perception.detect_video, as the `detections` asset), a fresh tracker per
clip (TrackerResource.track_clip, as the `tracks` asset), one clip spanning the whole video, then
motion_facts.trajectories + pair_relations, then qa.clip_questions + finalize.

Each question is scored against the scene's truth (facts.json and the keyframes, never the pipeline's facts) by
the matching and scoring of `fm eval labels` (fm_assets.evaluation.labels): tracks are matched to truth objects by
box IoU over time (<name>.gt.txt, Hungarian on the mean IoU over the frames where either exists, >= 0.3), the
question's `fact` is recomputed from the matched truth objects -- here the generator's exact facts (facts_truth),
where `fm eval labels` measures them on the truth boxes -- and the question is correct when it equals the
question's answer; for "which object" questions the truth answer is recomputed over ALL truth objects (an object
the pipeline missed makes the question wrong); grounded questions also need the action window to overlap the
truth window with IoU >= 0.5. Orders closer than 0.3 s and comparisons within 10 % in the truth are doubtful:
listed, and counted as not correct here.

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

from fm_assets import synthetic as S  # noqa: E402
from fm_assets.evaluation import labels as L  # noqa: E402
from fm_assets.labels import qa  # noqa: E402
from fm_assets.labels.ids import make_video_id  # noqa: E402
from fm_assets.labels.motion_facts import pair_relations, trajectories  # noqa: E402
from fm_assets.labels.schemas import QA_PAIRS, frame  # noqa: E402
from fm_assets.labels.tracking import DetectionParams, clip_track_rows, detect_video  # noqa: E402
from fm_resources.detection.resource import DetectorResource  # noqa: E402
from fm_resources.trackers import TrackerResource  # noqa: E402
from fm_resources.video import decode  # noqa: E402

# --------------------------------------------------------------------------------------------------
# Pipeline (no Dagster)


def run_pipeline(truth: S.SceneTruth, spec: S.SceneSpec, detector, tracker: TrackerResource, video_id: str):
    """tracks, trajectories, pairs and the clip dict of one rendered scene, one clip over the whole video."""
    n, fps = spec.n_frames, spec.fps
    clip_id = f"{video_id}:0"
    clip_row = {"clip_id": clip_id, "start_frame": 0, "end_frame": n}
    dets = detect_video(video_id, decode(truth.mp4, 0), pl.DataFrame([clip_row]), fps, detector,
                        DetectionParams()).table
    tracks = clip_track_rows(video_id, clip_row, dets, tracker.track_clip)[0]
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
# Truth facts: the generator's exact facts (facts.json and the keyframes) in fm_assets.evaluation.labels' form,
# so that the matching and the scoring of every question kind are the ones `fm eval labels` uses


def facts_truth(spec: S.SceneSpec, facts: dict) -> L.ClipTruth:
    """The scene's truth as one clip over the whole video; every fact has one value (exact: no doubt but
    order gaps under labels.ORDER_GAP_S and comparisons within labels.COMPARE_MARGIN)."""
    duration = facts["duration_s"]
    diag = math.hypot(spec.width, spec.height)
    specs = {o.obj_id: o for o in spec.objects}
    objs = {}
    for o in facts["objects"]:
        oid, obj = o["obj_id"], specs[o["obj_id"]]
        end = o["disappear_s"] if o["disappear_s"] is not None else duration
        t0, t1 = max(0.0, o["appear_s"]), min(duration, end)
        segs = [L.Seg(s["t0"], s["t1"], s["kind"], s["direction"], frozenset({s["direction"]}))
                for s in o["segments"]]
        mv = [k for k, s in enumerate(segs) if s.kind == "move"]
        stops = [(s.t0, s.t1) for k, s in enumerate(segs)
                 if s.kind == "stop" and mv and mv[0] < k < mv[-1] and s.t1 - s.t0 >= S.MIN_STOP_S]
        cuts = sorted({t0, t1, *(k.t for k in obj.keyframes if t0 < k.t < t1)})
        n_turns = L.turns(np.array([S.object_state(obj, t)[:2] for t in cuts]), L.TURN_TOL * diag)
        n_dirs = len({s.word for s in segs if s.kind == "move"})
        dx, dy = o["dx"] * spec.width, o["dy"] * spec.height

        def position(t, obj=obj, t0=t0, t1=t1):
            return S.object_state(obj, t)[:2] if t0 <= t <= t1 else None

        def size(t, obj=obj, t0=t0, t1=t1):
            return math.sqrt(obj.w * obj.h) * S.object_state(obj, t)[2] if t0 <= t <= t1 else None

        def bottom(t, obj=obj, t0=t0, t1=t1):
            cx, cy, scale = S.object_state(obj, t)
            return cy + obj.h * scale / 2 if t0 <= t < t1 else None

        objs[oid] = L.ObjFacts(
            oid=oid, t_first=t0, t_last=t1, direction=frozenset({o["direction"]}),
            start_region=frozenset({o["start_region"]}), end_region=frozenset({o["end_region"]}),
            side=frozenset({L._side(dx, dy, diag)}), segments=segs, n_stops=frozenset({o["n_stops"]}),
            repetitions=frozenset({o["repetitions"]}), n_turns=frozenset({n_turns}), distance=o["distance"],
            mean_speed=o["mean_speed"], mover=frozenset({o["onset_s"] is not None}), onset=o["onset_s"],
            end=o["end_s"], onset_span=None if o["onset_s"] is None else (o["onset_s"],) * 2,
            end_span=None if o["end_s"] is None else (o["end_s"],) * 2,
            activity=frozenset({L._activity(o["n_stops"], o["repetitions"], n_dirs, n_turns)}), stop_windows=stops,
            position=position, size=size, bottom=bottom, visible_s=t1 - t0)
    return L.ClipTruth(spec.width, spec.height, spec.fps, 0.0, duration, objs)


def match_tracks(tracks: pl.DataFrame, gt_path: Path, clip_row: dict) -> dict[int, int]:
    """track_id -> truth obj_id (fm_assets.evaluation.labels.match_tracks: mean IoU over the frames where either
    exists, Hungarian, >= labels.MIN_IOU)."""
    boxes = L.boxes_by_track(tracks.to_dicts())
    return L.match_tracks(boxes, L.read_truth(gt_path), L.sampled_frames(clip_row, boxes))[0]


def score_row(row: dict, truth: L.ClipTruth, match: dict[int, int]) -> tuple[str, str]:
    v = L.score_question(row, truth, match)
    return v.status, v.reason


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
            match = match_tracks(tracks, truth_files.gt, {"start_frame": 0, "end_frame": spec.n_frames})
            truth = facts_truth(spec, truth_files.facts)
            cands = qa.clip_questions(traj, pairs, clip, params)
            final = qa.finalize(cands, video_id, params)
            frame(final, QA_PAIRS)  # the table contract holds
            for name, rows in (("selected", final), ("candidates", cands if args.candidates else [])):
                for r in rows:
                    status, why = score_row(r, truth, match)
                    results[name].append({"scene": spec.name, "seed": seed, "row": r, "ok": status == "correct",
                                          "status": status, "why": why})
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
        lines += [f"**{title}**", "", "| group | n | correct | doubtful | % |", "|---|--:|--:|--:|--:|"]
        groups: dict[str, list] = defaultdict(list)
        for x in res:
            r = x["row"]
            groups[f"category {r['category']}" if not r["grounded"] else f"grounded {r['q_type']}"].append(x)
        order = [f"category {c}" for c in qa.CATEGORIES] + [f"grounded {t}" for t in qa.Q_TYPES]
        for g in order:
            xs = groups.get(g, [])
            n, c, d = len(xs), sum(x["ok"] for x in xs), sum(x["status"] == "doubtful" for x in xs)
            lines.append(f"| {g} | {n} | {c} | {d} | {100 * c / n:.1f} |" if n else f"| {g} | 0 | 0 | 0 | - |")
        n, c, d = len(res), sum(x["ok"] for x in res), sum(x["status"] == "doubtful" for x in res)
        lines.append(f"| **all** | {n} | {c} | {d} | {100 * c / n:.1f} |")
        kinds = Counter(json.loads(x["row"]["fact"])["kind"] for x in res)
        lines += ["", "Kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), ""]
        wrong = [x for x in res if not x["ok"]]
        if wrong:
            lines.append("Not correct (wrong, doubtful or unscored; all count against the % above):")
            for x in wrong:
                r = x["row"]
                lines.append(f"- {x['scene']} seed {x['seed']}: {x['status']}: \"{r['question']}\" -> "
                             f"{r['answer_text']!r}: {x['why']}")
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
