"""Benchmark: the RGB conversion of a decoded frame, which `ingest`'s decode loop does for every sampled frame
(fm_resources.video.Frame.rgb), against PyAV's default `to_ndarray(format="rgb24")` (swscale's automatic threads and
bilinear flag) and the default on one thread. Every way's pixels are compared with the default's.

The first FRAMES frames of VIDEO are decoded once and kept; the ways then take turns, ROUNDS times each, each
converting all of them (milliseconds per frame, each round).

    .venv/bin/python bench/rgb_convert.py /tmp/fm-bench-long/vtest_x4.mp4
    .venv/bin/python bench/rgb_convert.py some.mp4 --frames 200 --rounds 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from machine import rounds_table  # noqa: E402  (bench/machine.py: bench/ is the script folder, first on sys.path)

from fm_resources.video import decode  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    frames = []
    for fr in decode(args.video):
        frames.append(fr)
        if len(frames) >= args.frames:
            break
    f0 = frames[0].av_frame
    ways = {
        "PyAV's default (automatic threads)": lambda fr: fr.av_frame.to_ndarray(format="rgb24"),
        "default, one thread": lambda fr: fr.av_frame.to_ndarray(format="rgb24", threads=1),
        "Frame.rgb": lambda fr: fr.rgb(),
    }
    reference = [ways["PyAV's default (automatic threads)"](fr) for fr in frames]
    times: dict[str, list[float]] = {name: [] for name in ways}
    same: dict[str, bool] = {}
    for _ in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            out = [way(fr) for fr in frames]
            times[name].append((time.perf_counter() - started) / len(frames) * 1000)
            same[name] = same.get(name, True) and all(np.array_equal(a, b) for a, b in zip(reference, out))
            del out
    print(f"{args.video.name}: {len(frames)} frames, {f0.width}x{f0.height} {f0.format.name}, {args.rounds} rounds")
    print(rounds_table(times, extra=("same pixels as the default", {k: "yes" if v else "NO" for k, v in same.items()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
