"""The CPU cost of one frame in the two per-frame stages, on one thread, with the video already decoded: the
embedded `motion` detector (MotionDetector.detect_clip) plus the detections table's rows (detection_rows: colour,
appearance histogram and mask of every box), and mmdet's ByteTrack through TrackerResource.track_clip fed with
those detections. This is the work that `ingest` spreads over the clip workers and that `tracks` runs, without
decoding, the thread pool or Dagster.

The first N frames of the video (RGB, full size) are cut into clips of --clip frames; each measure is the best
of --repeats passes. The rows' count and a digest of the tracks say whether two versions of the code gave the
same output.

    .venv/bin/python bench/per_frame.py /tmp/fm-bench-long/vtest_x16.mp4 --frames 600 --markdown

Compare two versions of the code by running this script from a frozen copy of each (`git archive`), alternated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from fm_assets.labels.tracking import detection_rows  # noqa: E402
from fm_assets.labels.types import Detections  # noqa: E402
from fm_resources.detection.motion import MotionDetector  # noqa: E402
from fm_resources.trackers import TrackerResource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402


def first_frames(path: Path, n: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            if len(out) >= n:
                break
            out.append(frame.to_ndarray(format="rgb24"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--clip", type=int, default=100, help="frames per clip given to the detector")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    frames = first_frames(args.video, args.frames)
    if len(frames) < 3:
        raise SystemExit(f"{args.video}: fewer than 3 frames decoded")
    clips = [frames[i : i + args.clip] for i in range(0, len(frames), args.clip)]
    detector, tracker = MotionDetector(), TrackerResource()
    detect_s, track_s = [], []
    rows: list[dict] = []
    dets: list[Detections] = []
    for _ in range(args.repeats):
        rows, dets = [], []
        started = time.perf_counter()
        for clip in clips:
            found = detector.detect_clip(clip)
            for j, (img, d) in enumerate(zip(clip, found)):
                rows.extend(detection_rows("v", "c", j, j / 10, d, 1.0, 1, img))
            dets.extend(found)
        detect_s.append(time.perf_counter() - started)
    tracker.track_clip(dets[:20])  # mmdet imported and registered before the clock starts
    tracked = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        tracked = tracker.track_clip(dets)
        track_s.append(time.perf_counter() - started)
    assert tracked is not None
    digest = hashlib.sha256(b"".join(a.tobytes() for a in (tracked.frame, tracked.track_id,
                                                             tracked.boxes.round(3)))).hexdigest()[:12]
    n = len(frames)
    result = {
        "command": "bench/per_frame.py " + " ".join(sys.argv[1:]),
        "machine": machine_facts(), "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "video": args.video.name, "frames": n, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "detect_ms_per_frame": round(min(detect_s) / n * 1000, 2), "detection_rows": len(rows),
        "track_ms_per_frame": round(min(track_s) / n * 1000, 3), "tracked_boxes": len(tracked),
        "tracks_digest": digest,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.markdown:
        print(f"| {result['video']} ({result['size']}) | {n} | {result['detect_ms_per_frame']} | "
              f"{result['detection_rows']} | {result['track_ms_per_frame']} | {result['tracked_boxes']} | {digest} |")
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
