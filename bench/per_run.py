"""Benchmark: what one video's Dagster run costs on short videos, where that cost is most of the work (issue 14:
the fixed cost per run).

Default (`--videos N`): N generated 3 s videos (tests.media.moving_square, seeds 1000+i) are labelled once by
`fm run` (a subprocess, a fresh FM_HOME, template captions); then, in this process, after everything is imported
and one warm-up run, each video is labelled again by `label_videos` (`execute_in_process`, every per-video asset
and check), the event log's class alternating run by run: as `fm` opens it (its SQLAlchemy engines and one SQLite
connection per shard kept, fm_resources/sqlite_events.py) and Dagster's own `SqliteEventLogStorage` (an engine and a
connection per statement). Printed:
each run's seconds and the medians per class.

`--whole N --repeat R`: the whole `fm run DIR -q` over N generated 3 s videos, from a fresh FM_HOME each time,
R times (process start, imports, every run, the dataset). Run it from frozen copies of two versions of the code,
alternated, to compare them (the script only uses `fm`).

    .venv/bin/python bench/per_run.py --videos 16 --markdown
    .venv/bin/python bench/per_run.py --whole 10 --repeat 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FM = ROOT / ".venv" / "bin" / "fm"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16, help="runs measured (half with each class); default 16")
    ap.add_argument("--whole", type=int, metavar="N", help="time the whole `fm run` over N videos instead")
    ap.add_argument("--repeat", type=int, default=2, help="with --whole: how many times (default 2)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    from tests.media import moving_square

    base = Path(tempfile.mkdtemp(prefix="fm-bench-per-run-"))
    folder = base / "videos"
    for i in range(args.whole or args.videos + 1):
        moving_square(folder / f"v{i:03d}.mp4", 1000 + i)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_"))}
    env.update(FM_LLM_MODEL="template")

    def fm_run(home: Path) -> float:
        started = time.perf_counter()
        p = subprocess.run([str(FM), "run", str(folder), "-q"], env={**env, "FM_HOME": str(home)},
                           capture_output=True, text=True, cwd=ROOT)
        if p.returncode:
            raise SystemExit(f"fm run failed:\n{p.stderr[-3000:]}")
        return time.perf_counter() - started

    if args.whole:
        runs = [fm_run(base / f"home-{i}") for i in range(args.repeat)]
        print(f"fm run over {args.whole} generated 3 s videos ({ROOT}): {', '.join(f'{x:.2f}' for x in runs)} s")
        return 0
    home = base / "home"
    fm_run(home)

    os.environ.update(FM_HOME=str(home), FM_LLM_MODEL="template")
    import dagster
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from fm_assets.cli.run import selection_until
    from fm_assets.definitions import defs
    from fm_resources.instance import dagster_instance
    from fm_resources.sqlite_events import EngineKeepingSqliteEventLogStorage

    instance = dagster_instance()
    storage = instance.event_log_storage
    assert type(storage) is EngineKeepingSqliteEventLogStorage
    videos = sorted(instance.get_dynamic_partitions("videos"))
    job, selection = defs.resolve_job_def("label_videos"), selection_until(None)
    config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def run(video: str) -> float:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, partition_key=video, asset_selection=selection,
                                        run_config=config, raise_on_error=False)
        if not result.success:
            raise SystemExit(f"the run of {video} failed")
        return time.perf_counter() - started

    result: dict = {"machine": machine.machine_facts(Dagster=dagster.__version__),
                    "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join(["bench/per_run.py", *argv])}
    run(videos[0])  # warm-up
    classes = {"Dagster's SqliteEventLogStorage": SqliteEventLogStorage,
               "fm's (engines and connections kept)": EngineKeepingSqliteEventLogStorage}
    seconds: dict[str, list[float]] = {name: [] for name in classes}
    for i, video in enumerate(videos[1:]):
        name = list(classes)[i % 2]
        storage.__class__ = classes[name]
        seconds[name].append(run(video))
    storage.__class__ = EngineKeepingSqliteEventLogStorage
    result["seconds"] = seconds
    for name, s in seconds.items():
        print(f"{name}: {', '.join(f'{x:.2f}' for x in s)} s; median {statistics.median(s):.3f} s")
    if args.markdown:
        print(machine.run_header(result, f"{args.videos} generated 3 s videos, one run each, alternating."))
        print("| event log | runs | s (each) | median s |\n|---|--:|---|--:|")
        for name, s in seconds.items():
            print(f"| {name} | {len(s)} | {', '.join(f'{x:.2f}' for x in s)} | {statistics.median(s):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
