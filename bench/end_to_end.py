"""Benchmark: end-to-end labeling time of the whole per-video graph against PyAV decode-only, per video.

For every video, in ONE process against a temporary FM_HOME (its own Dagster instance and lake), interleaved
(one warm-up round, then N x (decode-only, decode + RGB, end-to-end)), this measures the wall time of

1. decode-only: av.open, first video stream, ``thread_type = "AUTO"`` (the decoder settings of
   fm_resources.video.decode), decode every frame, no conversion;
2. decode + RGB: fm_resources.video.decode over every frame and ``Frame.rgb()`` on each (the conversion the
   `ingest` step does on the sampled frames it detects on; `ingest` reads the luma plane, which needs no conversion);
3. end-to-end: the `label_videos` job for that video partition through Dagster, in this process, exactly as
   `fm run` does (fm_assets.cli.run_videos: ``job.execute_in_process(partition_key=..., instance=...,
   asset_selection=<all per-video assets>)``) with the embedded defaults: `motion` detector, ByteTrack, the
   `template` caption writer (no LLM), and every per-video asset check. Registration (hashing the file) and the
   dataset job (`splits`, over all videos) are not part of it.

Per video it prints frames, decode-only s, decode+RGB s, end-to-end s, the ratios (target: end-to-end <= 2x
decode-only), the per-stage seconds of the lake's `stage_runs` table (wall time of each asset's step, as
`fm sql -f sql/reports/stage_seconds.sql` shows them; `videos`, `raw_clips` and `detections` are one step, `ingest`), the
time spent in check steps (from the run's Dagster event log) and the rest of the run (Dagster between steps).
The warm-up run of each video also counts how often the pipeline decodes the video (passes, frames decoded,
RGB conversions) by wrapping fm_resources.video.decode / Frame.rgb for that run only.

    .venv/bin/python bench/end_to_end.py --markdown                   # synthetic demo scenes + ../shared/data/videos
    .venv/bin/python bench/end_to_end.py -n 1 --no-real some.mp4     # demo scenes + your files
    .venv/bin/python bench/end_to_end.py --profile 30 --json /tmp/e2e.json   # + cProfile of one run per video over target

``--profile [TOP]`` runs every video over the target once more under cProfile, prints the TOP functions by
own time and by cumulative time, and a breakdown over the pipeline's own functions (where the time goes).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py (bench/ is the script folder, first on sys.path)
from raw_clips import decode_only  # the same decode-only baseline as bench/raw_clips.py

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "videos"
TARGET = 2.0
ASSET_STEPS = ("ingest", "tracks", "trajectories", "captions", "qa_pairs")
STAGES = ("ingest", "tracks", "trajectories", "captions", "qa_pairs")

# Functions whose cumulative time the profile breakdown reports (substring of "file:function").
PROFILE_PARTS = [
    ("ingest: analyse_video (probe + the one decode pass: scan, clip plan, detections)", "ingest.py:analyse_video"),
    ("  the scan (Scanner.add)", "clipping.py:add"),
    ("  detections: DetectionPass.clip (rgb kept; detector + colours, where not in a pool)", "tracking.py:clip"),
    ("  motion detector (detect_clip)", "motion.py:detect_clip"),
    ("  colour naming (box_appearance)", "tracking.py:box_appearance"),
    ("  Frame.rgb", "video.py:rgb"),
    ("tracks: tracker.track_clip", "trackers.py:track_clip"),
    ("tracks: overlay (decode to the middle frame + draw)", "perception.py:overlay"),
    ("trajectories: motion_facts.trajectories", "motion_facts.py:trajectories"),
    ("trajectories: pictures (plots.trajectory_pictures)", "plots.py:trajectory_pictures"),
    ("trajectories: stills for the pictures (clip_still)", "perception.py:clip_still"),
    ("captions + qa: rule questions (qa._rule_rows)", "qa.py:_rule_rows"),
    ("captions + qa: grounded questions (qa._grounded_rows)", "qa.py:_grounded_rows"),
    ("captions: template_caption", "captions.py:template_caption"),
    ("checks: Warehouse.connect (views over the lake)", "warehouse.py:connect"),
    ("checks: the check queries (offending_rows)", "checks.py:offending_rows"),
    ("IO manager: handle_output (Parquet writes)", "lake.py:handle_output"),
    ("IO manager: _record_stage (stage_runs)", "lake.py:_record_stage"),
    ("IO manager: load_input", "lake.py:load_input"),
    ("Dagster: event log writes (store_event)", "sqlite_event_log.py:store_event"),
    ("PyAV decode (all passes)", "video.py:decode"),
]


# -- environment --------------------------------------------------------------------------------------


def prepare_home(home: Path) -> None:
    """A fresh FM_HOME (instance + lake) with nothing watched; must run before fm_assets.definitions is imported."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FM_HOME"] = str(home)
    os.environ["FM_INPUTS"] = str(home / "inbox")
    for var in ("FM_LAKE", "FM_LLM_MODEL", "DAGSTER_HOME"):
        os.environ.pop(var, None)
    from fm_resources.settings import dagster_home

    os.environ["DAGSTER_HOME"] = str(dagster_home())


def machine_facts() -> dict:
    import av
    import dagster

    return machine.machine_facts(Dagster=dagster.__version__, PyAV=av.__version__)


machine_line = machine.machine_line


# -- the three measurements ---------------------------------------------------------------------------




def decode_rgb(path: Path) -> int:
    from fm_resources.video import decode

    n = 0
    for f in decode(path):
        f.rgb()
        n += 1
    return n


class Pipeline:
    """The per-video graph as `fm run` executes it (fm_assets.cli.run_videos), in this process."""

    def __init__(self):
        from dagster import DagsterInstance

        from fm_assets.cli.run import selection_until
        from fm_assets.definitions import defs

        self.instance = DagsterInstance.get()
        self.defs = defs
        self.lake = defs.resources["lake"]
        self.warehouse = defs.resources["warehouse"]
        self.selection = selection_until(None)
        self.job = defs.resolve_job_def("label_videos")
        self.config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def register(self, path: Path) -> str:
        from fm_resources.registry import register_video
        from fm_resources.video import VideoStore

        vid = register_video(str(path), VideoStore(inputs=[str(path)]), self.lake).video_id
        if not self.instance.has_dynamic_partition("videos", vid):
            self.instance.add_dynamic_partitions("videos", [vid])
        return vid

    def run(self, video_id: str):
        return self.job.execute_in_process(partition_key=video_id, instance=self.instance,
                                           asset_selection=self.selection, raise_on_error=False,
                                           run_config=self.config, tags={"fm/launched_by": "bench/end_to_end.py"})

    def stage_seconds(self, run_id: str) -> dict[str, float]:
        df = self.warehouse.query("SELECT asset, seconds FROM stage_runs WHERE run_id = ?", [run_id])
        got = dict(df.iter_rows())
        out = {}
        for stage in STAGES:
            if stage == "ingest":  # videos, raw_clips and detections are the outputs of the one `ingest` step
                vals = [got[a] for a in ("videos", "raw_clips", "detections") if got.get(a) is not None]
                out[stage] = max(vals) if vals else None
            else:
                out[stage] = got.get(stage)
        return out

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """Wall seconds of every step of a run, from its event log (start to success / failure)."""
        from dagster import DagsterEventType

        start, end = {}, {}
        for e in self.instance.all_logs(run_id):
            ev = e.dagster_event
            if ev is None or not e.step_key:
                continue
            if ev.event_type == DagsterEventType.STEP_START:
                start[e.step_key] = e.timestamp
            elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                end[e.step_key] = e.timestamp
        return {k: end[k] - start[k] for k in start if k in end}


SQLITE_SYNC_OFF = {"on": False}


def install_sqlite_switch() -> None:
    """Diagnostic only (--sqlite-sync-off): lets a run open every SQLite connection of the Dagster instance with
    PRAGMA synchronous=OFF (no fsync on commit / WAL checkpoint; unsafe on power loss), to measure how much of
    a run is spent syncing Dagster's event log to disk."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragma(dbapi_con, _record):
        if SQLITE_SYNC_OFF["on"] and isinstance(dbapi_con, sqlite3.Connection):
            dbapi_con.execute("PRAGMA synchronous=OFF")


@contextlib.contextmanager
def count_decodes(stats: dict):
    """Wrap fm_resources.video.decode (everywhere it was imported) and Frame.rgb to count decode passes,
    frames decoded (last index + 1 of each pass) and RGB conversions."""
    import fm_resources.video as V

    orig_decode, orig_rgb = V.decode, V.Frame.rgb
    stats.update(passes=0, frames=0, rgb=0)

    def decode(*a, **k):
        stats["passes"] += 1
        last = -1
        try:
            for f in orig_decode(*a, **k):
                last = f.idx
                yield f
        finally:
            stats["frames"] += last + 1

    def rgb(self, *a, **k):
        stats["rgb"] += 1
        return orig_rgb(self, *a, **k)

    patched = [m for m in list(sys.modules.values())
               if getattr(m, "__name__", "").startswith(("fm_assets", "fm_resources")) and getattr(m, "decode", None) is orig_decode]
    for m in patched:
        m.decode = decode
    V.Frame.rgb = rgb
    try:
        yield stats
    finally:
        for m in patched:
            m.decode = orig_decode
        V.Frame.rgb = orig_rgb


def collect(args, tmp: Path) -> list[tuple[str, Path]]:
    from fm_assets.synthetic import make_demo_videos

    videos = [("synthetic", p) for p in make_demo_videos(tmp / "synthetic")] if not args.no_synthetic else []
    if not args.no_real:
        if DEFAULT_REAL.is_dir():
            videos += [("real", p) for p in sorted(DEFAULT_REAL.glob("*.mp4"))]
        else:
            print(f"skipping real footage: {DEFAULT_REAL} is absent (it lives beside the clone in ../shared/data)")
    videos += [("given", Path(p).resolve()) for p in args.paths]
    return videos


def bench_video(pipe: Pipeline, kind: str, path: Path, repeats: int, sync_off: bool = False) -> dict:
    vid = pipe.register(path)
    runs = {"decode_s": [], "decode_rgb_s": [], "e2e_s": [], "e2e_sync_off_s": [], "stages": [], "steps": [],
            "success": []}
    decodes: dict = {}
    frames = None
    for k in range(repeats + 1):  # k == 0: warm-up round (also counts the decode passes)
        t = time.perf_counter()
        frames = decode_only(path)
        d = time.perf_counter() - t
        t = time.perf_counter()
        decode_rgb(path)
        drgb = time.perf_counter() - t
        with count_decodes(decodes) if k == 0 else contextlib.nullcontext():
            t = time.perf_counter()
            res = pipe.run(vid)
            e2e = time.perf_counter() - t
        if k == 0:
            events = pipe.instance.all_logs(res.run_id)
            decodes["events"] = sum(1 for e in events if e.dagster_event is not None)
            decodes["steps"] = len(pipe.step_seconds(res.run_id))
        if k:
            runs["decode_s"].append(d)
            runs["decode_rgb_s"].append(drgb)
            runs["e2e_s"].append(e2e)
            runs["stages"].append(pipe.stage_seconds(res.run_id))
            runs["steps"].append(pipe.step_seconds(res.run_id))
            runs["success"].append(res.success)
        if k and sync_off:
            SQLITE_SYNC_OFF["on"] = True
            try:
                t = time.perf_counter()
                pipe.run(vid)
                runs["e2e_sync_off_s"].append(time.perf_counter() - t)
            finally:
                SQLITE_SYNC_OFF["on"] = False
    med = statistics.median
    dec, drgb, e2e = med(runs["decode_s"]), med(runs["decode_rgb_s"]), med(runs["e2e_s"])
    stages = {s: (med([r[s] for r in runs["stages"] if r[s] is not None]) if any(r[s] is not None for r in runs["stages"])
                  else None) for s in STAGES}
    checks = med([sum(v for s, v in r.items() if s not in ASSET_STEPS) for r in runs["steps"]])
    outside = med([e - sum(r.values()) for e, r in zip(runs["e2e_s"], runs["steps"])])
    failed_checks = []
    if not all(runs["success"]):
        from fm_assets.cli.run import failed_checks

        failed_checks = [f"{c['check']} ({c['rows']} rows)" for c in failed_checks(res)]
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        res_str = f"{s.codec_context.width}x{s.codec_context.height}"
    return {
        "video": path.name, "kind": kind, "path": str(path), "video_id": vid, "frames": frames, "resolution": res_str,
        "decode_s": dec, "decode_rgb_s": drgb, "e2e_s": e2e, "ratio": e2e / dec, "ratio_rgb": e2e / drgb,
        "e2e_sync_off_s": med(runs["e2e_sync_off_s"]) if runs["e2e_sync_off_s"] else None,
        "stage_s": stages, "checks_s": checks, "outside_steps_s": outside,
        "success": all(runs["success"]), "failed_checks": failed_checks, "decodes": dict(decodes),
        "runs": runs,
    }


def profile_video(pipe: Pipeline, r: dict, top: int) -> dict:
    prof = cProfile.Profile()
    prof.enable()
    pipe.run(r["video_id"])
    prof.disable()
    st = pstats.Stats(prof)
    total = max(st.total_tt, 1e-9)
    parts = []
    for label, pattern in PROFILE_PARTS:
        file_part, func = pattern.split(":")
        ct = sum(v[3] for (f, _, fn), v in st.stats.items() if fn == func and f.endswith("/" + file_part))
        ncalls = sum(v[1] for (f, _, fn), v in st.stats.items() if fn == func and f.endswith("/" + file_part))
        parts.append({"part": label, "cum_s": ct, "share": ct / total, "calls": ncalls})
    out = io.StringIO()
    st2 = pstats.Stats(prof, stream=out)
    st2.sort_stats("tottime").print_stats(top)
    st2.sort_stats("cumulative").print_stats(top)
    return {"video": r["video"], "total_s": total, "parts": parts, "text": out.getvalue()}


# -- output -------------------------------------------------------------------------------------------


def fmt(v, nd=3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def totals(results: list[dict]) -> dict:
    dec = sum(r["decode_s"] for r in results)
    drgb = sum(r["decode_rgb_s"] for r in results)
    e2e = sum(r["e2e_s"] for r in results)
    off = [r["e2e_sync_off_s"] for r in results]
    return {"frames": sum(r["frames"] for r in results), "decode_s": dec, "decode_rgb_s": drgb, "e2e_s": e2e,
            "ratio": e2e / dec, "ratio_rgb": e2e / drgb,
            "e2e_sync_off_s": sum(off) if all(v is not None for v in off) else None,
            "stage_s": {s: sum(r["stage_s"][s] or 0.0 for r in results) for s in STAGES},
            "checks_s": sum(r["checks_s"] for r in results),
            "outside_steps_s": sum(r["outside_steps_s"] for r in results)}


def table_lines(results: list[dict], tot: dict) -> list[str]:
    off = tot["e2e_sync_off_s"] is not None
    extra_h, extra_a = (" e2e, SQLite sync off (diagnostic) s |", "--:|") if off else ("", "")
    lines = ["| video | frames | resolution | decode-only s | decode+RGB s | end-to-end s | ratio e2e / decode | "
             "ratio e2e / decode+RGB |" + extra_h + " run |",
             "|---|--:|--:|--:|--:|--:|--:|--:|" + extra_a + "---|"]
    for r in results:
        status = "ok" if r["success"] else "failed: " + ", ".join(r["failed_checks"] or ["run failed"])
        x = f" {r['e2e_sync_off_s']:.3f} |" if off else ""
        lines.append(f"| {r['video']} ({r['kind']}) | {r['frames']} | {r['resolution']} | {r['decode_s']:.3f} | "
                     f"{r['decode_rgb_s']:.3f} | {r['e2e_s']:.3f} | {r['ratio']:.1f} | {r['ratio_rgb']:.1f} |{x} {status} |")
    x = f" {tot['e2e_sync_off_s']:.3f} |" if off else ""
    lines.append(f"| **total** (sum of medians) | {tot['frames']} | | {tot['decode_s']:.3f} | {tot['decode_rgb_s']:.3f} | "
                 f"{tot['e2e_s']:.3f} | **{tot['ratio']:.1f}** | {tot['ratio_rgb']:.1f} |{x} |")
    return lines


def stage_lines(results: list[dict], tot: dict) -> list[str]:
    lines = ["| video | " + " | ".join(STAGES) + " | check steps | rest of run | steps | events | decode passes | "
             "frames decoded | RGB conversions |",
             "|---|" + "--:|" * (len(STAGES) + 7)]
    for r in results:
        d = r["decodes"]
        lines.append(f"| {r['video']} | " + " | ".join(fmt(r["stage_s"][s]) for s in STAGES)
                     + f" | {r['checks_s']:.3f} | {r['outside_steps_s']:.3f} | {d.get('steps', '-')} | "
                       f"{d.get('events', '-')} | {d.get('passes', '-')} | "
                       f"{d.get('frames', '-')} ({d.get('frames', 0) / max(r['frames'], 1):.1f}x) | {d.get('rgb', '-')} |")
    lines.append("| **total** | " + " | ".join(f"{tot['stage_s'][s]:.3f}" for s in STAGES)
                 + f" | {tot['checks_s']:.3f} | {tot['outside_steps_s']:.3f} | | | | | |")
    return lines


def markdown(results, tot, facts, command, repeats, when, profiles) -> str:
    lines = [f"### End-to-end labeling vs PyAV decode-only ({when})", "", f"Command: `{command}`", "",
             f"Machine: {machine_line(facts)}.", "",
             f"Median wall time of {repeats} interleaved rounds per video after one warm-up round; end-to-end = the "
             "`label_videos` run of one video partition in-process (as `fm run`), embedded defaults (`motion`, "
             f"ByteTrack, template captions), all per-video checks; target end-to-end <= {TARGET:g}x decode-only.", ""]
    lines += table_lines(results, tot)
    lines += ["", "Seconds per stage (median; `stage_runs` table: wall time of each asset's step, ingest = the "
              "videos + raw_clips step), check steps and the rest of the run (event log), and how often the run "
              "decoded the video (counted in the warm-up run):", ""]
    lines += stage_lines(results, tot)
    for p in profiles:
        lines += ["", f"cProfile of one end-to-end run of {p['video']} ({p['total_s']:.2f} s profiled; cumulative "
                  "seconds, parts overlap where one calls another):", "", "| part | calls | cum s | share |", "|---|--:|--:|--:|"]
        lines += [f"| {q['part']} | {q['calls']} | {q['cum_s']:.3f} | {100 * q['share']:.0f}% |" for q in p["parts"] if q["calls"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="more video files")
    ap.add_argument("-n", "--repeats", type=int, default=3, help="measured rounds per video (after one warm-up)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic demo scenes")
    ap.add_argument("--no-real", action="store_true", help=f"skip the real footage in {DEFAULT_REAL}")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown block for BENCHMARKS.md")
    ap.add_argument("--json", metavar="OUT", help="save machine facts and raw timings to this file")
    ap.add_argument("--profile", type=int, nargs="?", const=30, default=0, metavar="TOP",
                    help="cProfile one more run of every video over the target; print TOP rows (default 30)")
    ap.add_argument("--sqlite-sync-off", action="store_true",
                    help="diagnostic: also time each round's run with Dagster's SQLite at synchronous=OFF")
    ap.add_argument("--profile-only", nargs="*", metavar="NAME", help="profile only these video file names")
    args = ap.parse_args(argv)
    exe = Path(sys.executable)
    exe_s = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else exe.name
    command = " ".join([exe_s, "bench/end_to_end.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="fm-bench-e2e-") as tmp:
        tmp_path = Path(tmp)
        prepare_home(tmp_path / "fm_home")
        videos = collect(args, tmp_path)
        pipe = Pipeline()
        if args.sqlite_sync_off:
            install_sqlite_switch()
        results = []
        for kind, path in videos:
            t0 = time.perf_counter()
            r = bench_video(pipe, kind, path, args.repeats, args.sqlite_sync_off)
            results.append(r)
            print(f"{path.name}: {r['frames']} frames, decode {r['decode_s']:.3f} s, decode+rgb {r['decode_rgb_s']:.3f} s, "
                  f"end-to-end {r['e2e_s']:.3f} s, ratio {r['ratio']:.2f} ({'ok' if r['success'] else 'FAILED'}; "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
        tot = totals(results)
        print()
        print("\n".join(table_lines(results, tot)))
        print()
        print("\n".join(stage_lines(results, tot)))
        wh = pipe.warehouse
        print("\nfm sql -f sql/reports/stage_seconds.sql over this lake (all runs, latest per (asset, video)):")
        print(wh.query((ROOT / "sql" / "reports" / "stage_seconds.sql").read_text()))
        print(f"\nMachine: {machine_line(facts)}; {when}")
        profiles = []
        if args.profile:
            for r in results:
                if (args.profile_only and r["video"] not in args.profile_only) or (not args.profile_only and r["ratio"] <= TARGET):
                    continue
                p = profile_video(pipe, r, args.profile)
                profiles.append(p)
                print(f"\n===== cProfile: end-to-end run of {r['video']} (ratio {r['ratio']:.2f}) =====")
                for q in p["parts"]:
                    if q["calls"]:
                        print(f"  {q['part']:<62} {q['calls']:>7} calls {q['cum_s']:8.3f} s {100 * q['share']:5.1f}%")
                print(p["text"])
    if args.markdown:
        print()
        print(markdown(results, tot, facts, command, args.repeats, when, profiles))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "date": when, "machine": facts, "repeats": args.repeats,
                                               "target_ratio": TARGET, "videos": results, "total": tot,
                                               "profiles": profiles}, indent=1, default=str))
        print(f"raw timings saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
