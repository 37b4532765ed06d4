"""Benchmark: the `tracks` stage's own work on one long shot, against the shot's length (issue 14: the run's
memory flat in the video's length, and no step slower than linear).

For each length N (frames, ``--frames``), a shot's detections are made up, as the `detections` table holds them:
``--objects`` boxes that stay in view the whole shot (people standing or pacing slowly: the longest tracks a
static camera gives), each with its own colour histogram, at 10 fps. They go through
fm_assets.labels.tracking.shot_track_rows with the real mmdet ByteTracker (fm_resources.trackers.TrackerResource),
as the asset does. Reported per N: seconds, seconds per 1,000 detections, the peak of the Python heap during the
call (tracemalloc, in a second call; tracemalloc slows the call, so the seconds come from the first) per
detection, and the tracks found.

Flat means the per-1,000 seconds and the bytes per detection do not grow with N.

    .venv/bin/python bench/tracks_scale.py                         # 1,000 / 4,000 / 16,000 frames, 4 objects
    .venv/bin/python bench/tracks_scale.py --frames 2000 8000 --markdown
    PYTHONPATH=/path/to/other/checkout .venv/bin/python /path/to/other/checkout/bench/tracks_scale.py   # other code
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import machine  # noqa: E402  # bench/machine.py

FPS = 10.0


def shot(n: int, objects: int):
    """(clips of the run, detections table) of a one-shot video of n frames with `objects` slow movers."""
    import numpy as np

    from fm_assets.labels.schemas import DETECTIONS, frame

    clip_len = 100
    clips = [{"clip_id": f"v-{k:04d}", "clip_idx": k, "shot_idx": 0, "start_frame": a, "end_frame": min(a + clip_len, n),
              "start_s": a / FPS, "end_s": min(a + clip_len, n) / FPS, "kept": True}
             for k, a in enumerate(range(0, n, clip_len))]
    rows = []
    for c in clips:
        for f in range(c["start_frame"], c["end_frame"]):
            for k in range(objects):
                x = 40 + 150 * k + 30 * np.sin(f / 50 + k)  # pacing to and fro in its own lane
                hist = [0] * 36
                hist[(9 * k) % 36] = 255
                rows.append({"video_id": "v", "clip_id": c["clip_id"], "frame_idx": f, "t_s": f / FPS, "det_idx": k,
                             "x1": float(x), "y1": 100.0, "x2": float(x) + 40, "y2": 180.0, "score": 0.9,
                             "label": "person", "sample_step": 1, "color": "red", "hist": hist})
    return clips, frame(rows, DETECTIONS)


def measure(n: int, objects: int) -> dict:
    from fm_assets.labels.tracking import TrackParams, shot_track_rows
    from fm_resources.trackers import TrackerResource

    clips, dets = shot(n, objects)
    tracker = TrackerResource()
    started = time.perf_counter()
    table, _, _ = shot_track_rows("v", clips, dets, tracker.track_clip, TrackParams())
    seconds = time.perf_counter() - started
    tracemalloc.start()
    shot_track_rows("v", clips, dets, tracker.track_clip, TrackParams())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"frames": n, "detections": len(dets), "seconds": seconds, "s_per_1000": 1000 * seconds / len(dets),
            "peak_bytes_per_detection": peak / len(dets), "tracks": table["track_id"].n_unique()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--objects", type=int, default=4)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    from fm_resources.mmdet_trackers import register_mmdet

    register_mmdet()  # seconds, once: not part of any row
    results = []
    for n in args.frames:
        r = measure(n, args.objects)
        results.append(r)
        print(f"{n} frames, {r['detections']} detections: {r['seconds']:.2f} s ({r['s_per_1000']:.3f} s per 1,000), "
              f"heap peak {r['peak_bytes_per_detection'] / 1000:.2f} KB per detection, {r['tracks']} tracks", flush=True)
    if args.markdown:
        print()
        print(f"Command: `{' '.join(['.venv/bin/python', 'bench/tracks_scale.py', *sys.argv[1:]])}`; machine: "
              f"{machine.machine_line(machine.machine_facts())}; code: {ROOT}")
        print()
        print("| frames | detections | s | s per 1,000 detections | heap peak KB per detection | tracks |")
        print("|--:|--:|--:|--:|--:|--:|")
        for r in results:
            print(f"| {r['frames']:,} | {r['detections']:,} | {r['seconds']:.2f} | {r['s_per_1000']:.3f} | "
                  f"{r['peak_bytes_per_detection'] / 1000:.2f} | {r['tracks']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
