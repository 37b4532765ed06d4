"""`fm run` and `fm demo`: register videos as partitions and materialize the per-video graph in this process."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from fm_assets.cli import loaded
from fm_assets.cli.console import console, one_line, print_frame, report_runs
from fm_assets.cli.lake import write_duckdb
from fm_resources.instance import add_video_partitions, dagster_instance, release_connections


def collect_uris(paths: list[str], problems: list[str] | None = None) -> list[str]:
    """Video files named directly, inside folders (recursively) or below s3:// prefixes. A path that does not
    exist or is not a video stops here with a message; what cannot be listed inside a folder (or an S3 prefix
    during an outage) is added to `problems` and the rest goes on."""
    from fm_resources.video import VideoStore

    store = VideoStore()
    uris: list[str] = []
    for p in paths:
        if not p.startswith("s3://") and not os.path.lexists(p):
            raise SystemExit(f"fm: no such file or folder: {p}")
        try:
            listing = store.listing(p)
        except Exception as exc:
            if problems is None:
                raise
            problems.append(f"cannot list {p}: {one_line(exc)}")
            continue
        if not listing.files and not p.startswith("s3://") and Path(p).is_file() and listing.skipped:
            raise SystemExit(f"fm: {p}: {listing.skipped[0][1]}")
        for path, why in listing.errors:
            if problems is None:
                raise SystemExit(f"fm: {path}: {why}")
            problems.append(f"{path}: {why}")
        hidden = [path for path, why in listing.skipped if why.startswith("hidden")]
        if hidden and problems is not None:
            problems.append(f"{p}: {len(hidden)} hidden file(s) passed over (names starting with '.'; "
                            f"name one directly to take it): {', '.join(Path(h).name for h in hidden[:3])}")
        uris += [f.uri for f in listing.files]
    return list(dict.fromkeys(uris))


def selection_until(until: str | None):
    from dagster import AssetKey, AssetSelection

    from fm_assets.definitions import defs
    from fm_assets.defs.automation import PER_VIDEO

    graph = defs.resolve_asset_graph()
    per_video = PER_VIDEO.resolve(graph)
    if until is None:
        return sorted(per_video)
    key = AssetKey(until)
    if key not in per_video:
        names = ", ".join(sorted(k.to_user_string() for k in per_video))
        raise SystemExit(f"fm: --until {until!r} is not a per-video asset (one of: {names})")
    return sorted(AssetSelection.assets(key).upstream().required_multi_asset_neighbors().resolve(graph) & per_video)


def plan_videos(instance, ids: list[str], selection, run_config: dict | None, force: bool = False) -> dict[str, list]:
    """{video: the assets of `selection` to materialize}; an empty list = up to date, skipped.

    A video is up to date when every selected asset is materialized and fresh in Dagster's sense: its last
    materialization's data provenance (the `dagster/code_version` and `dagster/input_data_version/*` tags Dagster
    writes) names the asset's current code version and its inputs' current data versions; each was made with the
    config this run would use (`config_version` in its materialization metadata), no caption failed (an LLM
    outage is retried), and its last run succeeded (a failed blocking check, a crash: all again). Otherwise the
    assets that are not fresh and everything downstream of them in the selection run; what precedes them is read
    from the lake. The source's content is the partition itself (its video id is a digest of the content: a
    changed file is a new video, fm_resources/registry.py). Batched: a few queries per asset and 500 videos,
    whatever the number of videos."""
    from dagster import AssetSelection
    from dagster._core.system_config.objects import ResolvedRunConfig

    from fm_assets.definitions import defs
    from fm_resources.lake import asset_config, config_version

    selection = sorted(selection)
    if force or not ids:
        return {vid: list(selection) for vid in ids}
    graph = defs.resolve_asset_graph()
    resolved = ResolvedRunConfig.build(defs.resolve_job_def("label_videos"),
                                       {k: v for k, v in (run_config or {}).items() if k == "ops"})
    wanted = {}
    for key in selection:
        op = graph.get(key).assets_def.op
        wanted[key] = config_version(asset_config(resolved.ops[op.name].config, key.path[-1],
                                                  [o.name for o in op.output_defs]))
    chosen = set(selection)  # upstream-closed (selection_until): every selected asset's inputs are in it
    latest = {key: latest_materializations(instance, key, ids) for key in chosen}
    failed = failed_last_runs(instance, ids)
    plan: dict[str, list] = {}
    for vid in ids:
        if vid in failed:
            plan[vid] = list(selection)
            continue
        dirty = {key for key in selection if not _fresh(graph, key, vid, latest, wanted[key])}
        if dirty:  # and everything after them (and the other outputs of a multi-asset step)
            dirty = set(AssetSelection.assets(*dirty).downstream().required_multi_asset_neighbors()
                        .resolve(graph)) & chosen
        plan[vid] = sorted(dirty)
    return plan


def _chunks(items: list, n: int = 500):
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Latest(NamedTuple):
    """What the plan needs of an asset partition's latest materialization: its event's storage id, its data
    provenance (code version, input cursors), the `config_version` it was made with and whether a caption failed.
    Its metadata is not kept: with the pictures it is about 66 KB a video, 0.6 GB at 10,000 videos."""
    storage_id: int
    provenance: object  # DataProvenance | None
    config_version: str | None
    failed: bool


def latest_materializations(instance, key, partitions: list[str]) -> dict[str, Latest]:
    """{partition: Latest} of an asset's latest materialization, for these partitions (500 records at a time)."""
    from dagster import AssetRecordsFilter, DagsterEventType
    from dagster._core.definitions.data_version import DataProvenance

    wanted = set(partitions)
    ids = instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)
    storage_ids = [sid for part, sid in ids.items() if part in wanted]
    out: dict[str, Latest] = {}
    for chunk in _chunks(storage_ids):
        for record in instance.fetch_materializations(AssetRecordsFilter(asset_key=key, storage_ids=chunk),
                                                      limit=len(chunk)).records:
            mat = record.asset_materialization
            if mat is None or record.partition_key is None:
                continue
            version, fails = mat.metadata.get("config_version"), mat.metadata.get("failed")
            out[record.partition_key] = Latest(
                record.storage_id, DataProvenance.from_tags(mat.tags or {}),
                None if version is None else version.value,
                fails is not None and isinstance(fails.value, int | float) and fails.value > 0)
    return out


def failed_last_runs(instance, partitions: list[str]) -> set[str]:
    """The partitions whose latest single-partition run did not succeed (backfill batches carry a range tag)."""
    from dagster import DagsterRunStatus, RunsFilter

    seen: set[str] = set()
    failed: set[str] = set()
    for chunk in _chunks(partitions):
        for run in instance.get_runs(filters=RunsFilter(tags={"dagster/partition": chunk})):  # newest first
            part = run.tags.get("dagster/partition")
            if part in seen:
                continue
            seen.add(part)
            if run.status != DagsterRunStatus.SUCCESS:
                failed.add(part)
    return failed


def _fresh(graph, key, vid: str, latest: dict, wanted_config: str) -> bool:
    """The asset's latest materialization for the video has the current code version, no input partition was
    materialized again since (after the event-log cursor its data provenance recorded for that input: the rule of
    Dagster's CachingStaleStatusResolver for partitioned inputs, without its second look at whether the new data
    version differs), it has the wanted config, and no caption failed (metadata `failed`)."""
    got = latest[key].get(vid)
    if got is None:
        return False
    provenance = got.provenance
    if provenance is None or provenance.code_version != graph.get(key).code_version:
        return False
    for parent in graph.get(key).parent_keys:
        if parent not in latest:
            continue
        current, cursor = latest[parent].get(vid), provenance.input_storage_ids.get(parent)
        if current is None or cursor is None or current.storage_id > cursor:
            return False
    return got.config_version == wanted_config and not got.failed


def _dataset_missing(instance) -> bool:
    from dagster import AssetKey

    return instance.get_latest_materialization_event(AssetKey("splits")) is None


def preflight(selection, run_config: dict | None) -> None:
    """Build the detector the run will use before any video is read: a bad config or checkpoint stops here."""
    from dagster import AssetKey

    from fm_assets.definitions import defs
    from fm_resources.detection.resource import DetectorResource
    from fm_resources.detection.types import DetectorConfigError

    if AssetKey("detections") not in selection:
        return
    base = defs.resources["detector"]
    override = ((run_config or {}).get("resources", {}).get("detector", {}) or {}).get("config", {}) or {}
    try:
        DetectorResource(**{**base.model_dump(), **override}).build()
    except DetectorConfigError as exc:
        raise SystemExit(f"fm: detector configuration error: {exc}") from None
    except TypeError as exc:
        raise SystemExit(f"fm: bad detector config {override}: {exc}") from None


def one_pass_config(run_config: dict | None, notes: list[str]) -> dict | None:
    """A run config written for the layout before `detections` joined the `ingest` step (`ops: {detections:
    {config: ...}}`) in today's (`ops: {ingest: {config: {detections: ...}}}`), with a note."""
    ops = (run_config or {}).get("ops") or {}
    if "detections" not in ops:
        return run_config
    old = (ops["detections"] or {}).get("config") or {}
    ingest = dict(ops.get("ingest") or {})
    ingest["config"] = {**(ingest.get("config") or {}), "detections": {**old, **((ingest.get("config") or {})
                                                                              .get("detections") or {})}}
    notes.append("ops.detections.config is read as ops.ingest.config.detections (detections are made in the "
                 "ingest step's decode pass): write it there")
    rest = {k: v for k, v in ops.items() if k != "detections"}
    return {**(run_config or {}), "ops": {**rest, "ingest": ingest}}


def run_videos(paths: list[str], until: str | None = None, run_config: dict | None = None, quiet: bool = False,
               log_level: str | None = None, notes: list[str] | None = None, force: bool = False,
               quick=None) -> list[dict]:
    """Register the videos as partitions and materialize the per-video assets each needs (`plan_videos`: a video
    whose labels are up to date is skipped; `force` relabels every one), in this process; then the dataset
    (splits) when labels changed. Dead runs of killed processes are cleaned up first; what goes wrong outside a
    video's run (an input that cannot be listed, the fm.duckdb refresh) is added to `notes` and the rest goes on.
    With a `quick` check (fm_resources.quickcheck), a run that ends clean asks Dagster's plan again and settles
    it when nothing is left to do."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fm_assets.definitions import defs
    from fm_assets.defs.automation import register_new
    from fm_resources.runs import reap_dead_runs
    from fm_resources.settings import debug
    from fm_resources.video import VideoStore

    notes = [] if notes is None else notes
    run_config = one_pass_config(run_config, notes)
    # Dagster's console log shows every step failure with its traceback: only with --debug; the reasons come in
    # the one-line run reports at the end
    log_level = log_level or ("WARNING" if debug() else "CRITICAL")
    instance = dagster_instance()
    for dead in reap_dead_runs(instance):
        notes.append(f"run {dead['run_id']} ({dead['partition'] or 'no partition'}) was left {dead['status']} by a "
                     f"process that is gone (pid {dead['pid']}): marked failed, its pool slots freed")
    selection = selection_until(until)
    preflight(selection, run_config)
    uris = collect_uris(paths, notes)
    lake = defs.resources["lake"]
    failures: list[tuple[str, str]] = []
    registered, _ = register_new(VideoStore(inputs=uris), lake, {}, failures=failures, rehash=force)
    for r in registered:
        if r.replaced:
            notes.append(f"{r.uri} holds new content ({r.video_id}); the labels of its old content ({r.replaced}) "
                         "are marked stale and left out of the views, splits and exports")
    ids = list(dict.fromkeys(r.video_id for r in registered))
    add_video_partitions(instance, ids)
    plan = plan_videos(instance, ids, selection, run_config, force=force)
    loaded()  # what this process works with is loaded: later garbage collections skip it
    job, subsets = defs.resolve_job_def("label_videos"), {}
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    results = [{"video_id": Path(uri).name, "success": False, "run_id": None, "seconds": None,
                "error": f"not registered: {why}", "failed_checks": []} for uri, why in failures]
    say = lambda m: print(f"fm: {m}", file=sys.stderr, flush=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet, transient=False) as progress:
        task = progress.add_task("materializing", total=len(ids))
        for vid in ids:
            if not plan[vid]:
                results.append({"video_id": vid, "success": True, "run_id": None, "seconds": 0.0, "error": None,
                                "failed_checks": [], "up_to_date": True})
                progress.advance(task)
                continue
            progress.update(task, description=f"materializing {vid}")
            started = time.perf_counter()
            res = execute_watched(job_subset(job, plan[vid], subsets), instance,
                                  {"partition_key": vid, "raise_on_error": False, "run_config": config}, say)
            results.append({"video_id": vid, "success": res.success, "run_id": res.run_id,
                            "seconds": time.perf_counter() - started, "error": run_error(res),
                            "failed_checks": failed_checks(res)})
            progress.advance(task)
        relabelled = any(r["success"] and not r.get("up_to_date") for r in results)
        if until is None and (relabelled or force or _dataset_missing(instance)):
            progress.update(task, description="building the dataset (splits)")
            dataset_config = {"loggers": config["loggers"]}
            if "splits" in (config.get("ops") or {}):
                dataset_config["ops"] = {"splits": config["ops"]["splits"]}
            res = execute_watched(defs.resolve_job_def("build_dataset"), instance,
                                  {"raise_on_error": False, "run_config": dataset_config},
                                  say)
            results.append({"video_id": None, "success": res.success, "run_id": res.run_id, "seconds": None,
                            "error": run_error(res), "failed_checks": failed_checks(res)})
    try:
        write_duckdb()
    except Exception as exc:
        notes.append(f"fm.duckdb not refreshed: {one_line(exc)}")
    if quick is not None and results and not notes and all(r["success"] for r in results):
        quick.settle(lambda: nothing_to_do(instance, ids, selection, run_config, until),
                     lambda: release_connections(instance))
    return results


def job_subset(job, assets: list, made: dict):
    """The job cut down to these assets and the job's own checks of them, made once per selection (`made`).
    (`execute_in_process(asset_selection=...)` would select every check of the assets again, the whole-lake ones
    that `label_videos` leaves to `build_dataset` too, and build the subset anew for every video.)"""
    key = tuple(sorted(assets))
    if key not in made:
        chosen = set(assets)
        checks = {k for k in job.asset_layer.asset_graph.asset_check_keys if k.asset_key in chosen}
        made[key] = job.get_subset(asset_selection=chosen, asset_check_selection=checks)
    return made[key]


def nothing_to_do(instance, ids: list[str], selection, run_config: dict | None, until: str | None) -> bool:
    """Dagster's plan has nothing left to materialize for these videos, and the dataset (splits) is there unless
    the run stops before it: what a run over the same folder would do now is nothing."""
    plan = plan_videos(instance, ids, selection, run_config)
    return not any(plan.values()) and (until is not None or not _dataset_missing(instance))


WATCH_EVERY_S = 5.0  # how often a run in progress is checked for a step waiting on a pool slot


def execute_watched(job, instance, kwargs: dict, say, every_s: float = WATCH_EVERY_S):
    """job.execute_in_process(**kwargs) in a worker thread, so this (main) thread stays responsive: every
    `every_s` it says which pool a step waits for and which runs hold it (never a silent wait; a holder whose
    process is gone is cleaned up at once), and Ctrl-C or SIGTERM stop at once: the run is marked canceled, its
    pool slots are freed and the process exits 130 (lake writes are atomic: nothing is half-written)."""
    import signal
    import threading
    import uuid

    from fm_resources.runs import blocked_message, process_tags, reap_dead_runs
    from fm_resources.settings import pool_limits

    run_id = str(uuid.uuid4())
    tags = {"fm/launched_by": "fm run", **process_tags(), **kwargs.pop("tags", {})}
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = job.execute_in_process(instance=instance, run_id=run_id, tags=tags, **kwargs)
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"fm-run-{run_id[:8]}", daemon=True)
    # Ctrl-C / SIGTERM only set a flag: raising KeyboardInterrupt in the middle of this thread's own instance
    # queries (the pool look below) could leave a SQLite transaction open that the cancel then waits on.
    stop = threading.Event()
    handler = lambda signum, frame: stop.set()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    said = None
    try:
        worker.start()
        next_look = time.monotonic() + every_s
        while worker.is_alive() and not stop.is_set():
            worker.join(0.1)
            if stop.is_set() or not worker.is_alive() or time.monotonic() < next_look:
                continue
            next_look = time.monotonic() + every_s
            message = blocked_message(instance, run_id, list(pool_limits()))
            if message and message != said:
                say(message)
                if "GONE" in message:
                    reap_dead_runs(instance)
            said = message
        if stop.is_set():
            stop_run(instance, run_id)
            say(f"interrupted: run {run_id} marked canceled and its pool slots freed")
            sys.stderr.flush()
            os._exit(130)
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)
    if "error" in box:
        raise box["error"]
    return box["result"]


def stop_run(instance, run_id: str) -> None:
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, "stopped by Ctrl-C / SIGTERM of `fm run`")
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def run_error(res) -> str | None:
    """Why a run failed, in one line that ends with the cause (the step, the error, what it was caused by)."""
    if res.success:
        return None
    for e in res.all_events:
        error = getattr(e.event_specific_data, "error", None)
        if error is None:
            continue
        parts = []
        while error is not None and len(parts) < 4:
            text = " ".join((error.message or "").split())
            if text and not text.startswith("dagster._core.errors.DagsterExecutionStepExecutionError"):
                parts.append(text)
            error = error.cause or error.context
        step = f"{e.step_key}: " if e.step_key else ""
        return step + (" <- ".join(parts) or "failed")[:500]
    return "run failed"


def failed_checks(res) -> list[dict]:
    """The checks of a run that did not pass: name, asset, severity, offending row count."""
    out = []
    for e in res.all_events:
        ev = e.asset_check_evaluation_data if e.event_type_value == "ASSET_CHECK_EVALUATION" else None
        if ev is not None and not ev.passed:
            rows = ev.metadata.get("offending_rows")
            out.append({"check": ev.check_name, "asset": ev.asset_key.to_user_string(),
                        "severity": ev.severity.value, "rows": getattr(rows, "value", rows)})
    return out


def summary(video_ids: list[str] | None = None, counts: bool = True):
    """One row per video: status, clips, and the counts of every later stage that has data (without `counts`:
    status, duration and error only, from the `videos` table alone)."""
    from fm_assets.definitions import defs

    wh = defs.resources["warehouse"]
    only = None if counts else {"videos"}
    tables = wh.tables(only)
    if "videos" not in tables:
        return None
    parts = {
        "raw_clips": "SELECT video_id, count(*) FILTER (kept) || '/' || count(*) AS clips_kept, "
                     "round(max(camera_motion), 3) AS max_camera_motion FROM raw_clips GROUP BY 1",
        "detections": "SELECT video_id, count(*) AS detections FROM detections GROUP BY 1",
        "tracks": "SELECT video_id, count(DISTINCT (clip_id, track_id)) AS tracks, "
                  "string_agg(DISTINCT label, ',' ORDER BY label) AS labels FROM tracks GROUP BY 1",
        "trajectories": "SELECT video_id, count(*) FILTER (kept) AS moving FROM trajectories GROUP BY 1",
        "captions": "SELECT video_id, count(*) FILTER (status = 'ok') || '/' || count(*) AS captions FROM captions GROUP BY 1",
        "qa_pairs": "SELECT video_id, count(*) FILTER (kept AND NOT grounded) AS mcq, "
                    "count(*) FILTER (kept AND grounded) AS grounded, count(*) FILTER (NOT kept) AS rejected "
                    "FROM qa_pairs GROUP BY 1",
    }
    joins = " ".join(f"LEFT JOIN ({q}) {name} USING (video_id)" for name, q in parts.items() if name in tables)
    cols = "".join(f", {name}.* EXCLUDE (video_id)" for name in parts if name in tables)
    where = ""
    if video_ids:
        where = "WHERE v.video_id IN (" + ",".join("'" + v.replace("'", "''") + "'" for v in video_ids) + ")"
    return wh.query(
        f"SELECT v.video_id, v.status, round(v.duration_s, 2) AS duration_s{cols}, v.error "
        f"FROM videos v {joins} {where} ORDER BY 1", only=only
    )


def example_questions(video_ids: list[str], per_kind: int = 1):
    """A few kept questions per category and per grounded q_type (the first by qa_id), for `fm demo`."""
    from fm_assets.definitions import defs

    wh = defs.resources["warehouse"]
    if "qa_pairs" not in wh.tables() or not video_ids:
        return None
    ids = ",".join("'" + v.replace("'", "''") + "'" for v in video_ids)
    return wh.query(
        "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY grounded, coalesce(q_type, category) ORDER BY qa_id) AS k "
        f"FROM qa_pairs WHERE kept AND video_id IN ({ids})) WHERE k <= {int(per_kind)} ORDER BY grounded, category, q_type"
    )


BEFORE_TRACKS = ("videos", "raw_clips", "detections")  # `fm run --until` these: nothing is tracked


@contextmanager
def tracking_started(until: str | None):
    """This process's first tracking worker started now, unless the run stops before `tracks`: it imports torch and
    mmdet (seconds) while Dagster loads and the first video is decoded and detected (the runs' TrackerResource
    would start it only when the first run starts). Stopped at the end, at once where it never got to track."""
    if until in BEFORE_TRACKS:
        yield
        return
    from fm_resources.mmdet_trackers import WORKERS

    WORKERS.warm()
    try:
        yield
    finally:
        WORKERS.close()


def cmd_run(args) -> int:
    run_config = None
    if args.config:
        import yaml

        run_config = yaml.safe_load(Path(args.config).read_text())
    quick = None if args.force else quick_check(args, run_config)
    memo = None if quick is None else quick.recall()
    if memo is not None:  # nothing changed since a run that Dagster found up to date: what it printed
        videos = [{"video_id": v, "success": True, "up_to_date": True} for v in memo.videos]
        df = memo.frame()
        if df is not None and not args.quiet:
            print_frame(df, "table")
        print(closing_line(videos, df), file=sys.stderr)
        return 0
    notes: list[str] = []
    with tracking_started(args.until):
        results = run_videos(args.paths, until=args.until, run_config=run_config, quiet=args.quiet, notes=notes,
                             force=args.force, quick=quick)
    videos = [r for r in results if r["video_id"]]
    df = None
    try:
        # -q prints no table: only the statuses of the closing line, from the videos table
        df = summary([r["video_id"] for r in videos], counts=not args.quiet)
    except Exception as exc:  # e.g. the lake unreachable: the counts below still come
        notes.append(f"no summary table: {one_line(exc)}")
    if df is not None and not args.quiet:
        print_frame(df, "table")
    err = lambda m: print(f"fm: {m}", file=sys.stderr)
    for note in notes:
        err(note)
    failed = report_runs(results, err)
    print(closing_line(videos, df), file=sys.stderr)
    if quick is not None and not notes:
        quick.remember([r["video_id"] for r in videos], df)
    return 1 if failed or any("cannot list" in n for n in notes) else 0


def quick_check(args, run_config: dict | None):
    """`fm run`'s quick check (fm_resources.quickcheck) for this command, or None where it does not apply."""
    from fm_assets.defs.versions import source_digest
    from fm_resources.quickcheck import QuickCheck

    return QuickCheck.begin(args.paths, source_digest(), args.until, run_config, args.quiet)


def closing_line(videos: list[dict], df) -> str:
    """`N of M video(s) materialized, K failed` and the videos' statuses (ok, error, skipped, stale, ...)."""
    done = sum(r["success"] for r in videos)
    fresh = sum(bool(r.get("up_to_date")) for r in videos)
    line = f"{done} of {len(videos)} video(s) materialized, {len(videos) - done} failed"
    if fresh:
        line += f" ({fresh} up to date, skipped; --force relabels)"
    if df is not None and "status" in df.columns and len(df):
        counts = df.group_by("status").len().sort("status").iter_rows()
        line += "; status: " + ", ".join(f"{s} {n}" for s, n in counts)
    return line


def cmd_demo(args) -> int:
    from fm_assets.synthetic import make_demo_videos
    from fm_resources.settings import dagster_home, fm_home, lake_root

    con = console()
    if args.videos:
        paths = [args.videos]
    else:
        out = fm_home() / "demo-videos"
        con.print(f"[bold]Rendering synthetic scenes[/] into {out}")
        paths = [str(p) for p in make_demo_videos(out, seed=args.seed)]
    notes: list[str] = []
    with tracking_started(args.until):
        results = run_videos(paths, until=args.until, notes=notes)
    videos = [r for r in results if r["video_id"]]
    df = summary([r["video_id"] for r in videos])
    if df is not None:
        print_frame(df, "table")
    for note in notes:
        con.print(f"[yellow]{note}[/]")
    failed = report_runs(results, lambda m: con.print(f"[red]{m}[/]"))
    examples = example_questions([r["video_id"] for r in videos])
    if examples is not None and len(examples):
        con.print("\n[bold]Example questions[/] (answer marked *)")
        for q in examples.iter_rows(named=True):
            kind = q["q_type"] or q["category"]
            if q["grounded"]:
                con.print(f"  [cyan]{kind}[/] {q['question']}  -> {q['answer_text']} (track {q['target_track_id']}, "
                          f"{q['action_start_s']:.1f}-{q['action_end_s']:.1f} s)")
            else:
                opts = "  ".join(("*" if L == q["answer"] else "") + f"{L}) {q['option_' + L.lower()]}" for L in "ABCD")
                con.print(f"  [cyan]{kind}[/] {q['question']}\n      {opts}")
    con.print(
        f"\n[bold]Done.[/] {sum(r['success'] for r in videos)} of {len(videos)} video(s) materialized.\n"
        f"  label lake:        {lake_root()}\n"
        f"  Dagster instance:  {dagster_home()}  (browse it with `fm ui`)\n"
        f"  query it:          fm sql \"select category, count(*) from qa_pairs group by 1\""
    )
    return 1 if failed else 0
