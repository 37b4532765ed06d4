"""Benchmark: the whole `fm run` command on long videos against PyAV decode-only time (issue 14: <= 15x), with its
peak memory (flat in the video's length; < 1.5 GB on a 60-minute video) and how often it decodes the video.

For every video, a fresh FM_HOME, the embedded defaults (`motion` detector, ByteTrack, `template` captions, every
check): one `fm run -q <folder holding only that video>` as a subprocess, timed from start to exit (process start,
imports, Dagster, every stage, checks and `splits` included). Then PyAV decode-only of the same file (the
decoder settings of fm_resources.video.decode: first video stream, ``thread_type = "AUTO"``, no conversion),
best of 3. The process is `python bench/fm_run.py --child run ...`, which wraps fm_resources.video.decode (a
counter, nothing else) and then calls `fm`'s own entry point (fm_assets.cli.entry_point), so the run is
exactly `fm run`'s and also reports its decode passes: how many times a pass over the video started, by which
stage, and the frames each pass decoded.
Peak RSS is the child's VmHWM at its end (`fm run` executes in-process; with `clip_pool: process` the
detector's worker processes are not in it; not the child's ru_maxrss, which Linux carries over from the parent's
memory at the fork: with --long, the parent has just held the source's decoded frames), and a 0.1 s sampling of
its resident memory says which stage holds the peak. The same sampling records the proportional set size (PSS)
of the child and all its descendants (the worker processes and forkserver of `clip_pool: process`, the tracking
workers), which counts memory they share once: its peak, and its peak in each stage. Per-stage seconds are the
lake's `stage_runs` (as `fm sql -f sql/reports/stage_seconds.sql` shows them; `videos`, `raw_clips` and `detections` are one
step, ingest, shown as "ingest + detections").

``--long SRC --repeat N`` first makes a long real video from SRC: its frames played forward, backward, forward, ...
N times (so it stays continuous footage: one shot), H.264 by PyAV with the synthetic scenes' fixed encoder settings
(fm_assets.synthetic.generator.write_h264: the same input gives the same bytes), kept in --cache.

    .venv/bin/python bench/fm_run.py --long vtest.avi --repeat 4 --markdown      # vtest.avi x4: 5.3 minutes
    .venv/bin/python bench/fm_run.py some.mp4 --json /tmp/fm_run.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import machine  # bench/machine.py (bench/ is the script folder, first on sys.path)
from raw_clips import decode_only  # the decode-only baseline of bench/raw_clips.py

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET = 15.0


def make_long(src: Path, repeat: int, cache: Path) -> Path:
    """SRC's frames forward, backward, forward, ... `repeat` times as one H.264 mp4 in `cache` (made once)."""
    import av

    from fm_assets.synthetic.generator import write_h264

    out = cache / f"{src.stem}_x{repeat}.mp4"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 25).limit_denominator(1001)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2

    def played():
        i = 0
        for k in range(repeat):
            for img in (frames if k % 2 == 0 else frames[::-1]):
                yield i, img[:h2, :w2]
                i += 1

    tmp = out.with_suffix(".tmp.mp4")
    write_h264(tmp, played(), w2, h2, rate)
    tmp.replace(out)
    return out


def child(argv: list[str], report: Path) -> int:
    """`fm <argv>` in this process, with fm_resources.video.decode counted (passes, the stage that started each,
    frames it decoded); the counts are written to `report` at the end."""
    import threading
    import traceback

    import fm_resources.video as video

    passes: list[dict] = []
    real = video.decode
    lock = threading.Lock()

    def counted(path, *args, **kwargs):
        stack = traceback.extract_stack(limit=12)
        where = next((f"{Path(fr.filename).stem}.{fr.name}" for fr in reversed(stack[:-1])
                      if "/fm_assets/defs/" in fr.filename), "other")
        entry = {"by": where, "frames": 0}
        with lock:
            passes.append(entry)
        for f in real(path, *args, **kwargs):
            entry["frames"] += 1
            yield f

    import fm_assets.definitions  # noqa: F401  (every asset module, so that the loop below finds their `decode`)

    video.decode = counted
    for name, mod in list(sys.modules.items()):  # the modules that imported `decode` by name get the counter too
        if name.startswith("fm_assets") and getattr(mod, "decode", None) is real:
            mod.decode = counted

    from fm_assets.cli import entry_point

    rss: list[tuple[float, int]] = []  # (unix time, resident MB), every 0.1 s: which stage holds the peak
    tree = [0]  # the highest proportional set size (PSS) of this process and all its descendants, MB
    pss: list[tuple[float, int]] = []  # (unix time, that PSS in MB), every 0.1 s: which stage holds its peak
    done = threading.Event()
    page = os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while not done.wait(0.1):
            with open("/proc/self/statm") as fh:
                rss.append((time.time(), int(fh.read().split()[1]) * page // 2**20))
            pss.append((time.time(), tree_pss_mb(os.getpid())))
            tree[0] = max(tree[0], pss[-1][1])

    threading.Thread(target=sample, daemon=True).start()
    sys.argv = ["fm", *argv]
    try:
        rc = entry_point()  # the `fm` executable's own (its garbage-collector settings included)
    finally:
        done.set()
        # the peak resident memory of this process since its exec (not ru_maxrss, which also counts what the
        # parent held when it forked this child: e.g. the frames --long decoded)
        with open("/proc/self/status") as fh:
            hwm = next((int(ln.split()[1]) // 1024 for ln in fh if ln.startswith("VmHWM:")), None)
        report.write_text(json.dumps({"passes": passes, "rss": rss, "pss": pss, "peak_rss_mb": hwm,
                                       "peak_tree_pss_mb": tree[0]}))
    return int(rc or 0)


def stage_runs(home: Path) -> list[tuple[str, float, float]]:
    """(asset, start, end) in unix seconds of every step in the lake's stage_runs."""
    import duckdb

    files = sorted(str(p) for p in (home / "lake" / "stage_runs").rglob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    return [(a, float(end) - float(sec), float(end)) for a, end, sec in con.execute(
        "SELECT asset, epoch(finished_at), seconds FROM read_parquet(?, union_by_name=true)", [files]).fetchall()]


def tree_pss_mb(root: int) -> int:
    """The proportional set size of process `root` and all its descendants (the detector's worker processes, the
    forkserver), MB: memory they share (libraries, shared memory blocks) is counted once in all, not once each."""
    pids, i = [root], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as fh:
                    pids += [int(x) for x in fh.read().split()]
        except OSError:
            pass  # gone meanwhile
        i += 1
    kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                kb += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return kb // 1024


def peak_by_stage(steps: list[tuple[str, float, float]], rss: list[tuple[float, int]]) -> dict[str, int]:
    """Highest MB sampled (resident, or PSS with the children) during each stage's step (and "other": outside
    every step)."""
    out: dict[str, int] = {}
    for t, mb in rss:
        stage = next((a for a, t0, t1 in steps if t0 <= t <= t1 and a != "videos"), "other")
        out[stage] = max(out.get(stage, 0), mb)
    return out


POOLS = {  # --clip-pools: how the `motion` detector's clips are spread over the cores (DetectorResource)
    "serial": {"clip_workers": 1},
    "thread": {"clip_workers": 0, "clip_pool": "thread"},
    "process": {"clip_workers": 0, "clip_pool": "process"},
}


def measure(video: Path, pool: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="fm-bench-run-") as tmp:
        tmp_p = Path(tmp)
        folder = tmp_p / "in"
        folder.mkdir()
        os.symlink(video.resolve(), folder / video.name)
        home = tmp_p / "home"
        env = {**os.environ, "FM_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        report = tmp_p / "decodes.json"
        extra: list[str] = []
        if pool is not None:
            cfg = tmp_p / "pool.yaml"
            cfg.write_text(json.dumps({"resources": {"detector": {"config": POOLS[pool]}}}))  # JSON is YAML
            extra = ["--config", str(cfg)]
        log = tmp_p / "fm.log"
        with open(log, "w") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(report), "run", "-q",
                                  *extra, str(folder)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            _, status, usage = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            raise SystemExit(f"fm run failed on {video} (exit {rc}):\n{log.read_text()[-4000:]}")
        counted = json.loads(report.read_text()) if report.exists() else {"passes": [], "rss": []}
        steps = stage_runs(home)
        stages: dict[str, float] = {}
        for a, t0, t1 in steps:
            stages[a] = round(stages.get(a, 0.0) + t1 - t0, 3)
    decode = []
    for _ in range(3):
        t = time.perf_counter()
        n = decode_only(video)
        decode.append(time.perf_counter() - t)
    return {"video": video.name + (f" ({pool})" if pool else ""), "frames": n, "decode_s": round(min(decode), 3), "fm_run_s": round(wall, 2),
            "ratio": round(wall / min(decode), 1),
            # CPU seconds of `fm run` and the processes it waited for: less noisy than the wall time on a shared VM
            # when two settings are compared (the detector's worker processes are the forkserver's children: not in it)
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": counted.get("peak_rss_mb") or round(usage.ru_maxrss / 1024),
            "peak_tree_pss_mb": counted.get("peak_tree_pss_mb"),
            "passes": counted["passes"], "stages": stages, "peak_mb_by_stage": peak_by_stage(steps, counted["rss"]),
            "peak_pss_mb_by_stage": peak_by_stage(steps, counted.get("pss", []))}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[3:], Path(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="videos")
    ap.add_argument("--long", type=Path, help="make a long video from this one (see --repeat) and measure it too")
    ap.add_argument("--repeat", type=int, nargs="+", default=[4], help="times SRC is played (several: one video each)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fm-bench-long")
    ap.add_argument("--clip-pools", nargs="+", choices=sorted(POOLS), default=None,
                    help="run each video once per way of detecting clips (default: the configured one)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import av

    result = {"command": "bench/fm_run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "machine": machine.machine_facts(av=av.__version__),
              "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "videos": []}
    videos = list(args.paths)
    if args.long:
        videos += [make_long(args.long, r, args.cache) for r in args.repeat]
    if not videos:
        ap.error("no video given (paths or --long)")
    for v, pool in [(v, pool) for v in videos for pool in (args.clip_pools or [None])]:
        r = measure(v, pool)
        result["videos"].append(r)
        by: dict[str, list[int]] = {}
        for pss in r["passes"]:
            by.setdefault(pss["by"], []).append(pss["frames"])
        print(f"{r['video']}: {r['frames']} frames, decode-only {r['decode_s']} s, fm run {r['fm_run_s']} s = "
              f"{r['ratio']}x (target <= {TARGET:g}x), {r['cpu_s']} CPU s, peak RSS {r['peak_rss_mb']} MB (with its child processes: "
              f"{r['peak_tree_pss_mb']} MB PSS); decode passes "
              f"{len(r['passes'])}: {by}; stages {r['stages']}; peak MB by stage {r['peak_mb_by_stage']}; peak PSS MB "
              f"(with its child processes) by stage {r['peak_pss_mb_by_stage']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.markdown:
        print(machine.run_header(result, "One `fm run` per video, fresh FM_HOME, embedded defaults."))
        # videos, raw_clips and detections are one step (`ingest`: one decode pass), shown as its `detections`
        stages = ("detections", "tracks", "trajectories", "captions", "qa_pairs", "splits")
        print("| video | frames | decode-only s | fm run s | ratio | CPU s | peak RSS MB | with children, PSS MB | "
              "decode passes (frames) | "
              + " | ".join(("ingest + detections", *stages[1:])) + " | rest |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|---|" + "--:|" * (len(stages) + 1))
        for r in result["videos"]:
            passes = ", ".join(f"{p['by'].split('.')[0]} ({p['frames']})" for p in r["passes"])
            rest = r["fm_run_s"] - sum(v for k, v in r["stages"].items() if k not in ("videos", "raw_clips"))
            print(f"| {r['video']} | {r['frames']} | {r['decode_s']} | {r['fm_run_s']} | **{r['ratio']}** | {r['cpu_s']} | "
                  f"{r['peak_rss_mb']:.0f} | {r['peak_tree_pss_mb']} | {passes} | " + " | ".join(f"{r['stages'].get(s, 0):.2f}" for s in stages)
                  + f" | {rest:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
