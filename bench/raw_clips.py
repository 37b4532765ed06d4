"""Benchmark: the `ingest` asset's per-video work (`raw_clips`) against PyAV decode-only, on the same file.

For every video, in one process and interleaved (warm-up decode, warm-up raw_clips, then N x (decode,
raw_clips)), this measures the wall time of

1. decode-only: av.open, first video stream, ``thread_type = "AUTO"`` (the decoder settings of
   fm_resources.video.decode), decode every frame, nothing else;
2. raw_clips: what fm_assets.defs.ingest.ingest does for one partition, without Dagster: ``analyse_video`` (probe,
   one decode + scan pass, clip plan), one JPEG thumbnail per clip written with ``Lake.write_bytes``, the
   contact sheet of the run metadata, and the `videos` / `raw_clips` tables built with ``schemas.frame`` and
   written with ``Lake.write_parquet`` (as LakeIOManager does) into a Lake on a temp dir.

The target is raw_clips <= 1.5x decode-only.  Usage (from the repo root)::

    .venv/bin/python bench/raw_clips.py                     # ../shared/data/videos/*.mp4
    .venv/bin/python bench/raw_clips.py --synthetic -n 3    # plus the synthetic demo scenes
    .venv/bin/python bench/raw_clips.py clip.mp4 some/folder --markdown --json timings.json
    .venv/bin/python bench/raw_clips.py --profile 25        # cProfile one raw_clips run per video over target
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from fm_assets.defs.ingest import analyse_video, ingest_metadata, save_thumbnails  # noqa: E402
from fm_assets.labels.clipping import ClipParams  # noqa: E402
from fm_assets.labels.ids import make_video_id  # noqa: E402
from fm_assets.labels.schemas import RAW_CLIPS, VIDEOS, frame  # noqa: E402
from fm_resources.lake import Lake, table_key  # noqa: E402
from fm_resources.video import VIDEO_EXTENSIONS, VideoStore, sha256_file, stream_info  # noqa: E402

DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
TARGET = 1.5
STAGES = ("analyse_s", "thumbs_s", "tables_s", "metadata_s", "parquet_s")


# -- the two measured workloads -----------------------------------------------------------------------


def decode_only(path: Path) -> int:
    """Decode every frame of the first video stream with the pipeline's decoder settings; nothing else."""
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        for _ in container.decode(stream):
            n += 1
    return n


def raw_clips(video_id: str, uri: str, sha256: str, store: VideoStore, lake: Lake, params: ClipParams) -> dict:
    """fm_assets.defs.ingest.ingest_video's steps for one partition, each timed (no registry lookup, no Output
    objects; the IO manager's Parquet writes are done here with the same Lake call). Returns stage times."""
    t0 = time.perf_counter()
    row, clips, scan = analyse_video(video_id, uri, sha256, store, params)
    t1 = time.perf_counter()
    thumbs = save_thumbnails(video_id, clips, scan, lake)
    t2 = time.perf_counter()
    videos_df, clips_df = frame([row], VIDEOS), frame(clips, RAW_CLIPS)
    t3 = time.perf_counter()
    ingest_metadata(row, clips_df, thumbs, uri)  # the Output metadata of ingest: counts and the contact sheet
    t4 = time.perf_counter()
    lake.write_parquet(table_key("videos", video_id), videos_df)  # what LakeIOManager.handle_output does
    lake.write_parquet(table_key("raw_clips", video_id), clips_df)
    t5 = time.perf_counter()
    return {"analyse_s": t1 - t0, "thumbs_s": t2 - t1, "tables_s": t3 - t2, "metadata_s": t4 - t3, "parquet_s": t5 - t4,
            "status": row["status"], "n_frames": row.get("n_frames"), "n_clips": len(clips),
            "n_kept": row.get("n_clips_kept"), "n_thumbs": len(thumbs)}


# -- plumbing -----------------------------------------------------------------------------------------


def collect(args: argparse.Namespace, tmp: Path) -> list[Path]:
    paths: list[Path] = []
    sources = [Path(a) for a in args.paths] if args.paths else ([] if args.synthetic else [DEFAULT_VIDEOS])
    for src in sources:
        if src.is_dir():
            paths += sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))
        elif src.is_file():
            paths.append(src)
        else:
            sys.exit(f"not found: {src}" + (" (the shared test data is absent; pass videos or --synthetic)"
                                             if src == DEFAULT_VIDEOS else ""))
    if args.synthetic:
        from fm_assets.synthetic import make_demo_videos

        paths += make_demo_videos(tmp / "synthetic")
    if not paths:
        sys.exit("no videos to benchmark")
    return [p.resolve() for p in paths]


def machine_facts() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram,
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", "?"),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def timed(fn, *a) -> tuple[float, float, object]:
    """(wall s, process CPU s, result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*a)
    return time.perf_counter() - w, time.process_time() - c, out


def bench_video(path: Path, repeats: int, params: ClipParams, store: VideoStore, lake_root: Path) -> dict:
    sha = sha256_file(path)
    video_id = make_video_id(path.name, sha)
    info = stream_info(path)
    runs = {"decode_s": [], "decode_cpu_s": [], "raw_clips_s": [], "raw_clips_cpu_s": [], "stages": []}
    n_decoded = None
    for k in range(repeats + 1):  # k == 0 is the warm-up pair
        wall, cpu, n_decoded = timed(decode_only, path)
        if k:
            runs["decode_s"].append(wall)
            runs["decode_cpu_s"].append(cpu)
        lake_dir = Path(tempfile.mkdtemp(dir=lake_root))
        lake = Lake(root=str(lake_dir))
        wall, cpu, stages = timed(raw_clips, video_id, str(path), sha, store, lake, params)
        shutil.rmtree(lake_dir)
        if k:
            runs["raw_clips_s"].append(wall)
            runs["raw_clips_cpu_s"].append(cpu)
            runs["stages"].append(stages)
    dec, rc = statistics.median(runs["decode_s"]), statistics.median(runs["raw_clips_s"])
    last = runs["stages"][-1]
    return {
        "video": path.name, "path": str(path), "video_id": video_id, "frames": n_decoded,
        "width": info.width, "height": info.height, "codec": info.codec, "status": last["status"],
        "n_clips": last["n_clips"], "n_kept": last["n_kept"],
        "decode_median_s": dec, "raw_clips_median_s": rc, "ratio": rc / dec if dec else float("inf"),
        "decode_fps": n_decoded / dec if dec else None, "raw_clips_fps": n_decoded / rc if rc else None,
        "stage_median_s": {k: statistics.median(s[k] for s in runs["stages"])
                           for k in STAGES},
        "decode_cpu_median_s": statistics.median(runs["decode_cpu_s"]),
        "raw_clips_cpu_median_s": statistics.median(runs["raw_clips_cpu_s"]),
        **runs,
    }


def profile_video(r: dict, params: ClipParams, store: VideoStore, lake_root: Path, top: int) -> str:
    lake_dir = Path(tempfile.mkdtemp(dir=lake_root))
    prof = cProfile.Profile()
    prof.enable()
    raw_clips(r["video_id"], r["path"], sha256_file(Path(r["path"])), store, Lake(root=str(lake_dir)), params)
    prof.disable()
    shutil.rmtree(lake_dir)
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- output -------------------------------------------------------------------------------------------


def totals(results: list[dict]) -> dict:
    dec = sum(r["decode_median_s"] for r in results)
    rc = sum(r["raw_clips_median_s"] for r in results)
    frames = sum(r["frames"] for r in results)
    return {"frames": frames, "decode_s": dec, "raw_clips_s": rc, "ratio": rc / dec if dec else float("inf"),
            "decode_fps": frames / dec if dec else None, "raw_clips_fps": frames / rc if rc else None}


def rich_tables(results: list[dict], tot: dict, repeats: int) -> tuple[Table, Table]:
    t = Table(title=f"raw_clips vs PyAV decode-only (median of {repeats}, target ratio <= {TARGET})")
    for col in ("video", "frames", "resolution", "decode s", "raw_clips s", "ratio", "decode fps", "raw_clips fps"):
        t.add_column(col, justify="left" if col == "video" else "right")
    for r in results:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] <= TARGET else f"[red]{r['ratio']:.2f}[/red]"
        t.add_row(r["video"], str(r["frames"]), f"{r['width']}x{r['height']}", f"{r['decode_median_s']:.3f}",
                  f"{r['raw_clips_median_s']:.3f}", ratio, f"{r['decode_fps']:.0f}", f"{r['raw_clips_fps']:.0f}")
    t.add_section()
    t.add_row("total (sum of medians)", str(tot["frames"]), "", f"{tot['decode_s']:.3f}", f"{tot['raw_clips_s']:.3f}",
              f"{tot['ratio']:.2f}", f"{tot['decode_fps']:.0f}", f"{tot['raw_clips_fps']:.0f}")
    st = Table(title="raw_clips stages (median s): analyse_video = probe + decode/scan + plan; metadata = contact sheet")
    for col in ("video", "clips (kept)", *(k[:-2] for k in STAGES), "decode CPU s", "raw_clips CPU s"):
        st.add_column(col, justify="left" if col == "video" else "right")
    for r in results:
        s = r["stage_median_s"]
        st.add_row(r["video"], f"{r['n_clips']} ({r['n_kept']})", *(f"{s[k]:.4f}" for k in STAGES),
                   f"{r['decode_cpu_median_s']:.3f}", f"{r['raw_clips_cpu_median_s']:.3f}")
    return t, st


def markdown(results: list[dict], tot: dict, facts: dict, command: str, repeats: int, when: str) -> str:
    lines = [
        f"### raw_clips vs PyAV decode-only ({when})",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {facts['nproc']} CPUs available (nproc; {facts['cpu_count']} in the machine), {facts['cpu']}, "
        f"{facts['ram_gib']} GiB RAM; Python {facts['python']}, PyAV {facts['pyav']}, FFmpeg {facts['ffmpeg']}; "
        f"{facts['platform']}; load average at start {facts['loadavg_at_start']}.",
        "",
        f"Median wall time of {repeats} interleaved runs per video after one warm-up each; ratio = median raw_clips /"
        f" median decode-only (target <= {TARGET}).",
        "",
        "| video | frames | resolution | decode s | raw_clips s | ratio | decode fps | raw_clips fps |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(f"| {r['video']} | {r['frames']} | {r['width']}x{r['height']} | {r['decode_median_s']:.3f} | "
                     f"{r['raw_clips_median_s']:.3f} | {r['ratio']:.2f} | {r['decode_fps']:.0f} | "
                     f"{r['raw_clips_fps']:.0f} |")
    lines.append(f"| **total** (sum of medians) | {tot['frames']} | | {tot['decode_s']:.3f} | {tot['raw_clips_s']:.3f} |"
                 f" **{tot['ratio']:.2f}** | {tot['decode_fps']:.0f} | {tot['raw_clips_fps']:.0f} |")
    lines += ["", "raw_clips stages (median s; analyse_video = probe + decode/scan + clip plan, thumbs = JPEG writes, "
              "tables = schemas.frame, metadata = contact sheet JPEG + counts, parquet = the two table writes):", "",
              "| video | clips (kept) | " + " | ".join(k[:-2] for k in STAGES) + " |",
              "|---|--:|" + "--:|" * len(STAGES)]
    for r in results:
        lines.append(f"| {r['video']} | {r['n_clips']} ({r['n_kept']}) | "
                     + " | ".join(f"{r['stage_median_s'][k]:.3f}" for k in STAGES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help=f"video files or folders (default: {DEFAULT_VIDEOS})")
    ap.add_argument("-n", "--repeats", type=int, default=5, help="measured runs per video (after one warm-up)")
    ap.add_argument("--synthetic", action="store_true", help="also render and time the synthetic demo scenes")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table for BENCHMARKS.md")
    ap.add_argument("--json", metavar="OUT", help="save machine facts and raw timings to this file")
    ap.add_argument("--profile", type=int, nargs="?", const=25, default=0, metavar="TOP",
                    help="cProfile one raw_clips run of every video over the target; print TOP rows (default 25)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    exe = Path(sys.executable)
    exe_s = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else exe.name  # .venv/bin/python, normally
    command = " ".join([exe_s, "bench/raw_clips.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    params, store = ClipParams(), VideoStore(inputs=[])
    facts = machine_facts()
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        tmp_path = Path(tmp)
        videos = collect(args, tmp_path)
        lake_root = tmp_path / "lakes"
        lake_root.mkdir()
        results = []
        for path in videos:
            with console.status(f"{path.name}: {args.repeats + 1} x (decode, raw_clips)"):
                results.append(bench_video(path, args.repeats, params, store, lake_root))
        tot = totals(results)
        for table in rich_tables(results, tot, args.repeats):
            console.print(table)
        console.print(f"[dim]{facts['nproc']} CPUs, {facts['cpu']}, {facts['ram_gib']} GiB; Python {facts['python']},"
                      f" PyAV {facts['pyav']}, FFmpeg {facts['ffmpeg']}; {when}[/dim]")
        profiles = {}
        if args.profile:
            for r in results:
                if r["ratio"] > TARGET:
                    profiles[r["video"]] = profile_video(r, params, store, lake_root, args.profile)
                    console.rule(f"cProfile raw_clips: {r['video']} (ratio {r['ratio']:.2f})")
                    print(profiles[r["video"]])
    if args.markdown:
        print()
        print(markdown(results, tot, facts, command, args.repeats, when))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "date": when, "machine": facts,
                                               "repeats": args.repeats, "target_ratio": TARGET, "videos": results,
                                               "total": tot, "profiles": profiles}, indent=1, default=str))
        console.print(f"raw timings saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
