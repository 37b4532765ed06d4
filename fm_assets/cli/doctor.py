"""`fm doctor`: what is wrong with this FM_HOME and how to fix it: runs left in progress by a process that is gone
(they hold pool slots, so every later run would wait), the pools and who holds them, labelled videos whose
source file is gone; `--clean` fixes them (dead runs marked failed, slots freed, videos marked source_missing)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from fm_assets.cli.console import one_line


def cmd_doctor(args) -> int:
    from fm_assets.definitions import defs
    from fm_resources.instance import dagster_instance
    from fm_resources.registry import missing_sources, retire_video
    from fm_resources.runs import active_runs, dead_runs, free_finished_slots, pool_holders, reap_dead_runs, run_worker
    from fm_resources.settings import dagster_home, pool_limits

    out = lambda m="": print(m)
    instance = dagster_instance()
    out(f"instance: {dagster_home()}")
    runs = active_runs(instance)
    dead = {run.run_id for run, _ in dead_runs(instance)}
    out(f"runs in progress: {len(runs)}" + (f", {len(dead)} of them DEAD (their process is gone)" if dead else ""))
    for run in runs:
        worker = run_worker(instance, run)
        state = "DEAD" if run.run_id in dead else "alive" if worker is not None and worker.alive() else "unknown"
        since = run.tags.get("fm/started")
        when = datetime.fromtimestamp(float(since), UTC).strftime("%Y-%m-%d %H:%M:%SZ") if since else ""
        out(f"  {run.run_id}  {run.status.value:<9} {run.tags.get('dagster/partition') or run.job_name:<32} "
            f"pid {worker.pid if worker else '?':<8} {state:<7} {when}")
    for pool, info in pool_holders(instance, list(pool_limits())).items():
        held = ", ".join(f"{rid[:8]}:{step}" + (" (DEAD)" if rid in dead else "") for rid, step in info["held"])
        out(f"pool {pool}: {len(info['held'])} of {info['limit']} slot(s) held{': ' + held if held else ''}; "
            f"{len(info['waiting'])} step(s) waiting")
    lake, store = defs.resources["lake"], defs.resources["video_store"]
    try:
        gone = missing_sources(lake, store)
    except Exception as exc:
        gone = []
        out(f"sources: not checked ({one_line(exc)})")
    else:
        out(f"labelled videos whose source is gone: {len(gone)}")
        for vid, uri in gone:
            out(f"  {vid}  {uri}")
    if not args.clean:
        if dead or gone:
            out("fix with: fm doctor --clean")
        return 1 if dead or gone else 0
    cleaned = reap_dead_runs(instance)
    freed = free_finished_slots(instance)
    marked = [vid for vid, uri in gone if retire_video(lake, vid, "source_missing", f"the source {uri} is gone "
                                                       "(deleted or moved); its labels are kept, left out of splits "
                                                       "and exports")]
    out(f"cleaned: {len(cleaned)} dead run(s) marked failed and their slots freed; {freed} finished run(s) "
        f"still holding slots freed; {len(marked)} video(s) marked source_missing")
    print("fm doctor: done", file=sys.stderr)
    return 0
