"""Tracking quality and speed of the embedded default (`motion` detector + mmdet ByteTrack) on real footage
with MOTChallenge ground truth (../shared/data/mot/TUD-Campus), through the pipeline's own functions:
detect_video (the `detections` asset's work), TrackerResource.track_clip (the `tracks` asset's), mot_text
(`fm export mot`), scored with TrackEval (fm_assets.evaluation.mot_metrics).

    .venv/bin/python bench/tracking.py [--sample-fps 25 10] [--repeats 3] [--markdown]
    .venv/bin/python bench/tracking.py --repeats 1 --det '{"min_diff": 18}' --trk '{"high_score": 0.5}'

--det passes keyword arguments to fm_resources.detection.motion.MotionDetector, --trk fields to TrackerResource
(for tuning; the defaults are what the pipeline runs).

Speed is detection + tracking frames per second over the sampled frames (PyAV decoding of those frames included,
as the `detections` asset decodes them), median of the repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from fm_assets.evaluation.mot_metrics import evaluate, parse_mot, read_mot  # noqa: E402
from fm_assets.labels.tracking import (  # noqa: E402
    DetectionParams,
    clip_track_rows,
    detect_video,
    mot_text,
    sample_step,
)
from fm_resources.detection.motion import MotionDetector  # noqa: E402
from fm_resources.detection.resource import DetectorResource  # noqa: E402
from fm_resources.trackers import TrackerResource  # noqa: E402
from fm_resources.video import decode  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def run_once(video: Path, n_frames: int, fps: float, sample_fps: float, detector, tracker: TrackerResource):
    """The `detections` and `tracks` assets' own functions over one clip spanning the whole video."""
    clip = {"clip_id": "c", "start_frame": 0, "end_frame": n_frames}
    run = detect_video("v", decode(video, 0), pl.DataFrame([clip]), fps, detector,
                       DetectionParams(sample_fps=sample_fps))
    dets, n_sampled, busy_det = run.table, run.frames, run.busy_s
    t1 = time.perf_counter()
    step = sample_step(fps, sample_fps)
    tracks = clip_track_rows("v", clip, dets, tracker.track_clip)[0]
    busy_track = time.perf_counter() - t1
    return tracks, n_sampled, busy_det, busy_track, step


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample-fps", type=float, nargs="+", default=[25.0, 10.0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--det", type=json.loads, default=None, help="MotionDetector keyword arguments (JSON)")
    ap.add_argument("--trk", type=json.loads, default={}, help="TrackerResource fields (JSON)")
    args = ap.parse_args()
    video, gt_path = DATA / "videos" / "TUD-Campus.mp4", DATA / "mot" / "TUD-Campus" / "gt.txt"
    if not video.exists():
        print(f"bench/tracking.py: {video} not found (needs ../shared/data)", file=sys.stderr)
        return 2
    n_frames = sum(1 for _ in decode(video))
    gt = read_mot(gt_path, is_gt=True)
    detector = MotionDetector(**args.det) if args.det is not None else DetectorResource().build()
    tracker = TrackerResource(**args.trk)
    run_once(video, n_frames, 25.0, args.sample_fps[0], detector, tracker)  # warm-up: imports, mmdet registry
    results = []
    for sfps in args.sample_fps:
        runs = [run_once(video, n_frames, 25.0, sfps, detector, tracker) for _ in range(args.repeats)]
        tracks, n_sampled, _, _, step = runs[0]
        det_s = statistics.median(r[2] for r in runs)
        trk_s = statistics.median(r[3] for r in runs)
        sampled = set(range(1, n_frames + 1, step))
        # (a) scored on the sampled frames only; (b) as exported (`fm export mot`, interpolated), on all frames
        m_sampled = evaluate(gt[[int(f) in sampled for f in gt[:, 0]]], parse_mot(mot_text(tracks, interpolate=False)), n_frames)
        m_export = evaluate(gt, parse_mot(mot_text(tracks, interpolate=True)), n_frames)
        results.append((sfps, step, n_sampled, det_s, trk_s, m_sampled, m_export))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [
        f"### Embedded default on TUD-Campus ({now})", "",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/tracking.py', *sys.argv[1:]])}`", "",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; detector `{detector.name}`"
        f"{' ' + json.dumps(args.det) if args.det else ''}, tracker {tracker.kind} (mmdet 3.3"
        f"{', ' + json.dumps(args.trk) if args.trk else ', defaults of TrackerResource'}); {args.repeats} repeats, median; "
        f"load average at end {os.getloadavg()[0]:.1f}.", "",
        "| sampling | frames tracked | scored on | MOTA | IDF1 | HOTA | IDSW | FP | FN | det+track frames/s | detector ms/frame | tracker ms/frame |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for sfps, step, n, det_s, trk_s, ms, me in results:
        fps_total = n / (det_s + trk_s)
        for label, m in (("sampled frames", ms), (f"all {n_frames} frames (export, interpolated)", me)):
            lines.append(f"| {sfps:g} fps (every {step}) | {n} | {label} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | {m['HOTA']:.3f} | "
                         f"{m['IDSW']} | {m['FP']} | {m['FN']} | {fps_total:.1f} | {1000 * det_s / n:.1f} | {1000 * trk_s / n:.1f} |")
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("|", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
