"""Benchmark: what the memory of `fm run` is made of, stage by stage (issue 14: peak RSS flat in the video's length).

`bench/fm_run.py` gives each stage's peak resident memory. This script says which part of it is memory the
program still uses. It runs `fm`'s own entry point (`fm run -q`, a fresh FM_HOME, template captions) in this
process on one video. A thread samples every 0.25 s:
- the resident set size (VmRSS);
- glibc's `mallinfo2()`: heap bytes in use (`uordblks`), heap bytes free but kept by the allocator (`fordblks`,
  resident or not) and bytes in mmapped blocks (`hblkhd`);
- Python's allocated blocks (`sys.getallocatedblocks`).

Per stage, the maxima over the stage's seconds (from the lake's `stage_runs`) are printed, then VmHWM at the end.
Not counted by mallinfo: pymalloc's arenas, polars' own allocator (jemalloc) and the shared libraries' pages, which
are part of RSS. `--trim S` also calls `malloc_trim(0)` every S seconds (does the allocator hand memory back?).

    .venv/bin/python bench/heap_by_stage.py /tmp/fm-bench-long/vtest_x4.mp4
    .venv/bin/python bench/heap_by_stage.py /tmp/fm-bench-long/vtest_x16.mp4 --trim 2
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import machine  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def status(field: str) -> int:
    """A /proc/self/status figure in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return -1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--trim", type=float, default=0.0, help="call malloc_trim(0) every this many seconds")
    args = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="fm-bench-heap-"))
    folder = base / "videos"
    folder.mkdir()
    (folder / args.video.name).symlink_to(args.video.resolve())
    os.environ.update(FM_HOME=str(base / "home"), FM_LLM_MODEL="template")
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    samples: list[tuple[float, int, int, int, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        last_trim = time.monotonic()
        while not done.is_set():
            m = libc.mallinfo2()
            samples.append((time.time(), status("VmRSS"), m.uordblks >> 20, m.fordblks >> 20, m.hblkhd >> 20,
                            sys.getallocatedblocks()))
            if args.trim and time.monotonic() - last_trim >= args.trim:
                libc.malloc_trim(0)
                last_trim = time.monotonic()
            done.wait(0.25)

    facts = machine.machine_facts()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    from fm_assets.cli import entry_point

    sys.argv = ["fm", "run", str(folder), "-q"]
    try:
        code = entry_point()
    except SystemExit as exc:
        code = exc.code
    done.set()
    sampler.join()
    if code:
        print(f"fm run exited {code}", file=sys.stderr)
        return 1
    import polars as pl

    stages = pl.read_parquet(base / "home" / "lake" / "stage_runs" / "*.parquet").sort("finished_at")
    print(machine.machine_line(facts))
    print(f"{args.video.name}: VmHWM {status('VmHWM')} MB; trim every {args.trim or '-'} s\n")
    print("| stage | s | peak RSS MB | heap in use MB | heap free MB | mmapped MB | Python blocks (k) |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for r in stages.iter_rows(named=True):
        if r["asset"] in ("videos", "raw_clips"):  # one step with `detections`
            continue
        end = r["finished_at"].timestamp()
        inside = [s for s in samples if end - (r["seconds"] or 0.0) <= s[0] <= end]
        if inside:
            cols = [max(s[i] for s in inside) for i in range(1, 6)]
            print(f"| {'ingest' if r['asset'] == 'detections' else r['asset']} | {r['seconds']:.1f} | "
                  f"{' | '.join(str(c) for c in cols[:4])} | {cols[4] // 1000} |")
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
