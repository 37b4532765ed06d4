"""Benchmark: the loopback Celery cluster against the single-machine default, and a Postgres instance against SQLite.

1. Cluster vs one machine (issue 16's target: the cluster no slower than 1.5x on a 2-core machine). The same N small
   synthetic videos (deploy/celery/loopback.render_videos: 192x144, 10 fps, 3 s) labelled by ONE asset backfill of
   every per-video asset (loopback.launch_backfill, what the nightly automation or the UI emits), batches of
   FM_BACKFILL_BATCH videos per run, through a real `dagster-daemon`:
   - `single`: the default set-up of one machine: a fresh FM_HOME, the SQLite instance fm writes, the in-process
     executor, the lake and the videos on local disk;
   - `cluster`: deploy/celery/loopback.py: Postgres, Redis, a moto S3 server (lake and inputs), the daemon, a `gpu`
     worker (ingest: scan + detections, 1 process) and a `cpu` worker (every other step, 2 processes), each with its own scratch.
   Timed from the backfill's creation to the moment every run has ended and every asset of every video is
   materialized (`wall`), and the run phase alone (first run's start to last run's end). Both include the backfill
   daemon's first pass (its loop is a fixed 30 s in Dagster 1.13), neither its last one (marking it done).
2. Postgres vs SQLite instance: `bench/dagster_overhead.py --inprocess` (the `label_videos` job in-process over P
   tiny videos in batches, exactly as that benchmark's in-process baseline) against a fresh SQLite instance and a
   fresh Postgres one (FM_DAGSTER_PG_URL, loopback Postgres, fsync on); overhead per partition = (Postgres compute
   - SQLite compute) / P.

    .venv/bin/python bench/cluster.py --markdown                    # 12 videos, batch 6; 100 partitions
    .venv/bin/python bench/cluster.py --skip-storage --videos 12 --batch 6
    .venv/bin/python bench/cluster.py --skip-cluster --partitions 100 --json /tmp/cluster.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py (bench/ is the script folder, first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _loopback():
    spec = importlib.util.spec_from_file_location("fm_loopback", ROOT / "deploy" / "celery" / "loopback.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fm_loopback"] = module
    spec.loader.exec_module(module)
    return module


lb = _loopback()


def _timeline(instance, backfill_id: str, started: float, ids: list[str], timeout_s: float, daemon) -> dict:
    lb.wait_backfill(instance, backfill_id, ids, timeout_s=timeout_s, daemon=daemon, poll_s=0.5, until_runs_done=True)
    wall = time.time() - started
    runs = lb.backfill_runs(instance, backfill_id)
    records = [instance.get_run_record_by_id(r.run_id) for r in runs]
    starts = [r.start_time for r in records if r.start_time]
    ends = [r.end_time for r in records if r.end_time]
    return {"wall_s": wall, "run_phase_s": max(ends) - min(starts), "runs": len(runs),
            "run_status": sorted(r.status.value for r in runs),
            "first_run_start_after_s": min(starts) - started, "steps": step_times(instance, runs)}


def step_times(instance, runs) -> dict:
    """Where a run's time goes, summed over the backfill's runs, from the event log: `compute` = each step's
    STEP_START -> its end, `before_step` = its first event (submitted to a worker, or the executor picking it) ->
    STEP_START (queueing, the worker's set-up, input loading), `between_steps` = the run's time with no step busy."""
    compute = before = idle = 0.0
    steps = 0
    per_step: dict[str, dict[str, float]] = {}
    for run in runs:
        first: dict[str, float] = {}
        start: dict[str, float] = {}
        end: dict[str, float] = {}
        loaded: dict[str, float] = {}
        output: dict[str, float] = {}
        handled: dict[str, float] = {}
        run_start = run_end = None
        for e in instance.all_logs(run.run_id):
            ev = e.dagster_event
            if ev is None:
                continue
            t = e.timestamp
            if ev.event_type_value == "RUN_START":
                run_start = t
            elif ev.event_type_value in ("RUN_SUCCESS", "RUN_FAILURE"):
                run_end = t
            if not e.step_key or ev.event_type_value.endswith("_PLANNED"):  # planned: written at the run's creation
                continue
            first.setdefault(e.step_key, t)
            if ev.event_type_value == "STEP_START":
                start[e.step_key] = t
            elif ev.event_type_value == "LOADED_INPUT":
                loaded[e.step_key] = t
            elif ev.event_type_value == "STEP_OUTPUT":
                output.setdefault(e.step_key, t)
            elif ev.event_type_value == "HANDLED_OUTPUT":
                handled[e.step_key] = t
            if ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                end[e.step_key] = t
        busy = sorted((first[k], end[k]) for k in end if k in first)
        merged = 0.0
        cur_s = cur_e = None
        for s, e_ in busy:
            if cur_e is None or s > cur_e:
                merged += (cur_e - cur_s) if cur_e is not None else 0.0
                cur_s, cur_e = s, e_
            else:
                cur_e = max(cur_e, e_)
        merged += (cur_e - cur_s) if cur_e is not None else 0.0
        for k in start:
            steps += 1
            compute += end.get(k, start[k]) - start[k]
            before += start[k] - first[k]
            kind = per_step.setdefault(k, {"compute_s": 0.0, "inputs_s": 0.0, "outputs_s": 0.0})
            kind["compute_s"] += end.get(k, start[k]) - start[k]
            kind["inputs_s"] += loaded.get(k, start[k]) - start[k]
            kind["outputs_s"] += handled.get(k, output.get(k, 0.0)) - output.get(k, 0.0)
        if run_start is not None and run_end is not None:
            idle += (run_end - run_start) - merged
    return {"steps": steps, "compute_s": round(compute, 2), "before_step_s": round(before, 2),
            "between_steps_s": round(idle, 2),
            "per_step": {k: {m: round(v, 2) for m, v in d.items()} for k, d in sorted(per_step.items())}}


def single_machine(base: Path, videos: list[Path], batch: int, timeout_s: float) -> dict:
    """The default set-up: SQLite instance written by fm, in-process executor, local lake, a real daemon."""
    from dagster import DagsterInstance

    home = base / "single"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_", "AWS_"))}
    env.update(FM_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), FM_INPUTS=str(home / "inbox"),
               FM_BACKFILL_BATCH=str(batch), PYTHONUNBUFFERED="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    (home / "inbox").mkdir(parents=True)
    with lb.environ(env):
        from fm_resources.instance import dagster_instance
        from fm_resources.lake import Lake
        from fm_resources.registry import register_video
        from fm_resources.video import VideoStore

        instance = dagster_instance()
        lake = Lake(root=str(home / "lake"))
        ids = [register_video(str(p), VideoStore(), lake).video_id for p in videos]
        instance.add_dynamic_partitions("videos", ids)
        log = base / "single-daemon.log"
        with open(log, "w") as fh:
            daemon = subprocess.Popen([str(lb.BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                      cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(5)  # the daemon's start-up (loading the code location), as the cluster's
            instance = DagsterInstance.get()
            started = time.time()
            backfill_id = lb.launch_backfill(instance, ids)
            return _timeline(instance, backfill_id, started, ids, timeout_s, daemon)
        finally:
            lb.stop(daemon)


def loopback_cluster(base: Path, videos: list[Path], batch: int, timeout_s: float) -> dict:
    from dagster import DagsterInstance

    with lb.cluster(base / "cluster") as c:
        observer = c.base_env(base / "cluster" / "observer")
        with lb.environ(observer):
            from fm_resources.instance import dagster_instance
            from fm_resources.lake import Lake
            from fm_resources.registry import register_video
            from fm_resources.video import VideoStore

            s3 = c.s3_client()
            for p in videos:
                s3.upload_file(str(p), lb.INPUT_BUCKET, f"inbox/{p.name}")
            lake = Lake(root=f"s3://{lb.LAKE_BUCKET}/lake")
            ids = [register_video(f"s3://{lb.INPUT_BUCKET}/inbox/{p.name}", VideoStore(), lake).video_id
                   for p in videos]
            instance = dagster_instance()
            instance.add_dynamic_partitions("videos", ids)
            c.start_daemon(base / "cluster" / "daemon", FM_BACKFILL_BATCH=str(batch))
            c.start_worker("gpu", ["gpu"], base / "cluster" / "worker-gpu")
            c.start_worker("cpu", ["dagster"], base / "cluster" / "worker-cpu", concurrency=2)
            time.sleep(5)
            instance = DagsterInstance.get()
            started = time.time()
            backfill_id = lb.launch_backfill(instance, ids)
            out = _timeline(instance, backfill_id, started, ids, timeout_s, c.daemon)
            hosts: dict[str, set[str]] = {}
            for run in lb.backfill_runs(instance, backfill_id):
                for e in instance.all_logs(run.run_id):
                    ev = e.dagster_event
                    if ev is not None and ev.event_type_value == "ENGINE_EVENT" and ev.engine_event_data and e.step_key:
                        worker = ev.engine_event_data.metadata.get("Celery worker")
                        if worker is not None:
                            hosts.setdefault(worker.value, set()).add(e.step_key)
            out["steps_per_worker"] = {w: sorted(s) for w, s in hosts.items()}
            return out


def storage_overhead(base: Path, partitions: int, batch: int, fsync: bool = True, rounds: int = 2) -> dict:
    """dagster_overhead.py's in-process compute over `partitions` tiny videos, SQLite instance vs Postgres."""
    from dagster_overhead import home_env, render_videos

    videos_dir = base / "tiny"
    render_videos(videos_dir, partitions, 2.4, 160, 120, 10.0)
    out = {}
    with _postgres_only(base / "postgres", fsync) as pg_url:
        for storage in ("sqlite", "postgres") * rounds:  # interleaved
            home = base / f"{storage}-{len(out)}"
            env = home_env(home, batch)
            (home / "inbox").mkdir(parents=True, exist_ok=True)
            if storage == "postgres":
                env["FM_DAGSTER_PG_URL"] = _fresh_db(pg_url, f"bench_{len(out)}")
            p = subprocess.run([sys.executable, str(ROOT / "bench" / "dagster_overhead.py"), "--inprocess", str(home),
                                str(videos_dir), str(batch), str(partitions)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=3600)
            if p.returncode:
                raise RuntimeError(f"in-process run ({storage}) failed:\n{p.stderr[-3000:]}")
            result = json.loads(p.stdout.strip().splitlines()[-1])
            out[f"{storage}-{len(out)}"] = result
            print(f"  {storage}: {result['compute_s']:.1f} s for {partitions} partitions "
                  f"({result['qa_pairs_materialized']} materialized)", flush=True)
    sqlite = [v["compute_s"] for k, v in out.items() if k.startswith("sqlite")]
    pg = [v["compute_s"] for k, v in out.items() if k.startswith("postgres")]
    return {"partitions": partitions, "batch": batch, "fsync": fsync, "sqlite_s": sqlite, "postgres_s": pg,
            "overhead_per_partition_s": (min(pg) - min(sqlite)) / partitions,
            "overhead_per_partition_s_mean": (sum(pg) / len(pg) - sum(sqlite) / len(sqlite)) / partitions}


class _postgres_only:
    """Just the loopback Postgres (fsync on by default: a durable server, as in production)."""

    def __init__(self, base: Path, fsync: bool = True):
        base.mkdir(parents=True, exist_ok=True)
        self.cluster = lb.Cluster(base=base)
        self.fsync = fsync

    def __enter__(self) -> str:
        return self.cluster.start_postgres(fsync=self.fsync)

    def __exit__(self, *exc) -> None:
        self.cluster.close()


def _fresh_db(url: str, name: str) -> str:
    import psycopg2

    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    conn = psycopg2.connect(host=host, port=int(port), user="fm", dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--batch", type=int, default=6, help="FM_BACKFILL_BATCH of both backfills (default 6: two runs)")
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--storage-batch", type=int, default=10)
    ap.add_argument("--storage-rounds", type=int, default=2)
    ap.add_argument("--pg-fsync", choices=["on", "off"], default="on",
                    help="Postgres's fsync (on: every commit waits for the disk, as a durable server does)")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--skip-storage", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    import dagster

    facts = machine.machine_facts(Dagster=dagster.__version__)
    base = Path(tempfile.mkdtemp(prefix="fm-bench-cluster-"))
    result: dict = {"machine": facts, "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join(["bench/cluster.py", *map(shlex.quote, argv)])}
    if not args.skip_cluster:
        videos = lb.render_videos(base / "videos", args.videos)
        print(f"single machine: backfill of {len(videos)} videos, batch {args.batch}", flush=True)
        result["single"] = single_machine(base, videos, args.batch, args.timeout)
        print(f"  {result['single']}", flush=True)
        print(f"loopback cluster: backfill of {len(videos)} videos, batch {args.batch}", flush=True)
        result["cluster"] = loopback_cluster(base, videos, args.batch, args.timeout)
        print(f"  {result['cluster']}", flush=True)
        result["ratio_wall"] = result["cluster"]["wall_s"] / result["single"]["wall_s"]
        result["ratio_run_phase"] = result["cluster"]["run_phase_s"] / result["single"]["run_phase_s"]
    if not args.skip_storage:
        print(f"Postgres vs SQLite instance: {args.partitions} partitions in-process", flush=True)
        result["storage"] = storage_overhead(base, args.partitions, args.storage_batch, args.pg_fsync == "on",
                                             args.storage_rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str))
    if args.markdown:
        print(markdown(result, args))
    return 0


def markdown(r: dict, args) -> str:
    lines = [f"Command: `.venv/bin/python {r['command']}`", "",
             f"Machine: {machine.machine_line(r['machine'])}; started {r['started']}.", ""]
    if "single" in r:
        s, c = r["single"], r["cluster"]
        lines += [f"Backfill of {args.videos} videos (batch {args.batch}): from its creation to every run ended and every "
                  "asset materialized (`wall`), and first run start -> last run end (`run phase`).", "",
                  "| set-up | runs | wall s | run phase s | first run start after s |", "|---|--:|--:|--:|--:|",
                  f"| one machine (SQLite, in-process executor, local lake) | {s['runs']} | {s['wall_s']:.1f} | "
                  f"{s['run_phase_s']:.1f} | {s['first_run_start_after_s']:.1f} |",
                  f"| loopback cluster (Postgres, Redis, moto S3, 2 Celery workers) | {c['runs']} | {c['wall_s']:.1f} | "
                  f"{c['run_phase_s']:.1f} | {c['first_run_start_after_s']:.1f} |",
                  f"| **ratio cluster / one machine** | | **{r['ratio_wall']:.2f}** | **{r['ratio_run_phase']:.2f}** | |",
                  ""]
    if "storage" in r:
        st = r["storage"]
        lines += [f"Instance storage, `label_videos` in-process over {st['partitions']} tiny videos in batches of "
                  f"{st['batch']} (Postgres fsync {'on' if st['fsync'] else 'off'}): SQLite {', '.join(f'{x:.1f}' for x in st['sqlite_s'])} s; Postgres "
                  f"{', '.join(f'{x:.1f}' for x in st['postgres_s'])} s; overhead of Postgres per partition "
                  f"**{st['overhead_per_partition_s']:.3f} s** (best of each; means: "
                  f"{st['overhead_per_partition_s_mean']:.3f} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
