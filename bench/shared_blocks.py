"""Benchmark: what it costs the `ingest` step's main process to hand a clip's frames to a worker process through
shared memory, in a new block per clip (as before session 15) against a block reused from clip to clip
(fm_assets.labels.tracking._SharedBlocks).

A new block's pages are faulted in and zeroed by the kernel the first time they are written; a reused block's are
already there. Each round writes CLIPS clips of FRAMES frames (768x576 RGB by default, vtest.avi's size: 1.3 MB a
frame) into shared memory, as DetectionPass.clip does, and reports milliseconds per frame. Rounds alternate (new,
reused, new, reused, ...): the machine's noise hits both.

    .venv/bin/python bench/shared_blocks.py                      # 768x576, 72-frame clips, 10 clips a round
    .venv/bin/python bench/shared_blocks.py --size 1920 1080 --rounds 4
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

from fm_assets.labels.tracking import _free, _SharedBlocks  # noqa: E402


def new_blocks(batch: list, shape: tuple[int, ...], clips: int) -> None:
    """A new block per clip, written and removed (the code before session 15)."""
    from multiprocessing import shared_memory

    for _ in range(clips):
        block = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)))
        frames = np.ndarray(shape, np.uint8, buffer=block.buf)
        for k, (_, _, img) in enumerate(batch):
            frames[k] = img
        del frames
        _free(block)


def reused_blocks(batch: list, shape: tuple[int, ...], clips: int, blocks: _SharedBlocks) -> None:
    """_SharedBlocks: each clip's block given back once done and taken for the next."""
    for _ in range(clips):
        block = blocks.take(batch, shape)
        blocks.give(block)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=[768, 576], metavar=("W", "H"))
    ap.add_argument("--frames", type=int, default=72, help="frames a clip")
    ap.add_argument("--clips", type=int, default=10, help="clips a round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each way")
    args = ap.parse_args()
    w, h = args.size
    rng = np.random.default_rng(0)
    batch = [(i, i / 10, rng.integers(0, 256, (h, w, 3), np.uint8)) for i in range(args.frames)]
    shape = (args.frames, h, w, 3)
    blocks = _SharedBlocks()
    reused_blocks(batch, shape, 1, blocks)  # the block exists before the first timed round, as after a first clip
    times: dict[str, list[float]] = {"new block per clip": [], "reused block": []}
    try:
        for _ in range(args.rounds):
            for name, run in (("new block per clip", lambda: new_blocks(batch, shape, args.clips)),
                              ("reused block", lambda: reused_blocks(batch, shape, args.clips, blocks))):
                started = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - started) / (args.clips * args.frames) * 1000)
    finally:
        blocks.close()
    print(f"{w}x{h}, {args.frames}-frame clips, {args.clips} clips a round, {args.rounds} rounds each")
    print(rounds_table(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
