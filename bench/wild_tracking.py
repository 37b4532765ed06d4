"""Tracking quality of the embedded default on the "wild" synthetic family (fm_assets.synthetic.wild): random
textures and lighting, shadows, camera jitter, objects that start still, stop, cross and occlude.

For every scene of the seed set: the pipeline's own functions (`detect_video` over PyAV-decoded frames with the
`motion` detector, the video tiled into clips of at most 10 s like one shot, `shot_track_rows` with ByteTrack over
the shot and gap bridging, `mot_text` as `fm export mot` writes it), scored with TrackEval against the truth of the
objects that move, on the frames where at least half of the object is visible (a motion detector cannot see an
object that never moves).

    .venv/bin/python bench/wild_tracking.py [--seeds dev|heldout] [--det JSON] [--trk JSON] [--tracker JSON]
                                            [--per-clip] [--markdown]

`--det` / `--trk` / `--tracker` try other MotionDetector / TrackParams / TrackerResource settings (e.g. --det
'{"shadows": false}'; --trk '{"segment_frames": 20}' --tracker '{"keep_lost_frames": 5}' cuts these short scenes
into segments whose trackers start 13 frames early, to see what the joins at the cuts cost).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from fm_assets import synthetic as S  # noqa: E402
from fm_assets.evaluation.mot_metrics import evaluate, parse_mot  # noqa: E402
from fm_assets.labels.schemas import TRACKS, frame  # noqa: E402
from fm_assets.labels.tracking import (  # noqa: E402
    DetectionParams,
    TrackParams,
    detect_video,
    mot_text,
    run_frames,
    run_track_rows,
    track_runs,
)
from fm_resources.detection.motion import MotionDetector  # noqa: E402
from fm_resources.trackers import TrackerResource  # noqa: E402
from fm_resources.video import decode  # noqa: E402


def score(seed: int, out: Path, det_kw: dict, trk_kw: dict, per_clip: bool = False,
          tracker_kw: dict | None = None) -> dict:
    t = S.render_wild(seed, out)
    truth = t.truth
    fps, n = truth["fps"], truth["n_frames"]
    movers = [o["obj_id"] for o in truth["objects"] if o.get("moves")]
    gt = np.array([[float(v) for v in line.split(",")] for line in t.gt.read_text().splitlines()])
    gt = gt[np.isin(gt[:, 1], movers) & (gt[:, 8] >= 0.5)][:, :7]
    k = math.ceil(n / (10 * fps))
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    clips = [{"clip_id": f"c{i}", "shot_idx": 0, "start_frame": int(bounds[i]), "end_frame": int(bounds[i + 1])}
             for i in range(k)]
    dets = detect_video(t.mp4.stem, decode(t.mp4, 0), pl.DataFrame(clips), fps, MotionDetector(**det_kw),
                        DetectionParams()).table
    runs = [[c] for c in clips] if per_clip else [clips]  # --per-clip: a fresh tracker per clip (before issue 13)
    # as the `tracks` asset does: the runs' frames, their trackers (a long run cut into segments: segment_frames),
    # then the rows with gap bridging
    params, tracker = TrackParams(**trk_kw), TrackerResource(**(tracker_kw or {}))
    prepared = [rf for rf in (run_frames(run, dets.filter(pl.col("clip_id").is_in([c["clip_id"] for c in run])))
                              for run in runs) if rf]
    tracked, next_id = [frame([], TRACKS)], 1
    for rf, got in zip(prepared, track_runs(prepared, tracker.follower(), params.segment_frames,
                                            tracker.warmup_frames(), tracker.min_track_len)):
        table, _, next_id = run_track_rows(t.mp4.stem, rf, got, params, next_id)
        tracked.append(table)
    tracks = pl.concat(tracked)
    m = evaluate(gt, parse_mot(mot_text(tracks)), n)
    return {"scene": t.mp4.stem, "gt_boxes": len(gt), "ids": tracks["track_id"].n_unique() if len(tracks) else 0, **m}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", choices=["dev", "heldout"], default="dev")
    ap.add_argument("--det", type=json.loads, default={}, help="MotionDetector keyword arguments (JSON)")
    ap.add_argument("--trk", type=json.loads, default={}, help="TrackParams fields (JSON)")
    ap.add_argument("--tracker", type=json.loads, default={}, help="TrackerResource fields (JSON)")
    ap.add_argument("--per-clip", action="store_true", help="a fresh tracker per clip instead of one per shot")
    ap.add_argument("--dir", type=Path, help="where the scenes are rendered (default: a temporary folder)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    seeds = S.WILD_DEV_SEEDS if args.seeds == "dev" else S.WILD_HELDOUT_SEEDS
    with tempfile.TemporaryDirectory(prefix="fm-wild-") as tmp:
        out = args.dir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        res = [score(s, out, args.det, args.trk, args.per_clip, args.tracker) for s in seeds]
    n = sum(r["gt_boxes"] for r in res)
    pooled = 1 - sum(r["FP"] + r["FN"] + r["IDSW"] for r in res) / n
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [f"### `motion` + ByteTrack on the wild family, {args.seeds} seeds ({now})", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/wild_tracking.py', *sys.argv[1:]])}`", "",
             f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}.", "",
             "| scene | truth boxes | ids | MOTA | IDF1 | IDSW | FP | FN |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    lines += [f"| {r['scene']} | {r['gt_boxes']} | {r['ids']} | {r['MOTA']:.3f} | {r['IDF1']:.3f} | {r['IDSW']} | "
              f"{r['FP']} | {r['FN']} |" for r in res]
    lines += [f"| **pooled** | {n} | | {pooled:.3f} | {np.mean([r['IDF1'] for r in res]):.3f} (mean) | "
              f"{sum(r['IDSW'] for r in res)} | {sum(r['FP'] for r in res)} | {sum(r['FN'] for r in res)} |"]
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("|", " "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
