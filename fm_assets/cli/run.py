"""`fm run` and `fm demo`: register videos as partitions and materialize the per-video graph in this process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fm_assets.cli.console import console, print_frame, report_runs
from fm_assets.cli.lake import write_duckdb
from fm_resources.instance import add_video_partitions, dagster_instance


def collect_uris(paths: list[str]) -> list[str]:
    """Video files named directly, inside folders (recursively) or below s3:// prefixes."""
    from fm_resources.video import VideoStore

    store = VideoStore()
    uris: list[str] = []
    for p in paths:
        if not p.startswith("s3://") and not Path(p).exists():
            raise SystemExit(f"fm: no such file or folder: {p}")
        found = store.scan(p)
        if not found and not p.startswith("s3://") and Path(p).is_file():
            raise SystemExit(f"fm: not a video file (by extension): {p}")
        uris += [f.uri for f in found]
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


def run_videos(paths: list[str], until: str | None = None, run_config: dict | None = None, quiet: bool = False,
               log_level: str = "WARNING") -> list[dict]:
    """Register the videos as partitions and materialize the per-video assets for each, in this process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fm_assets.definitions import defs
    from fm_assets.defs.automation import register_new
    from fm_resources.video import VideoStore

    instance = dagster_instance()
    selection = selection_until(until)
    preflight(selection, run_config)
    uris = collect_uris(paths)
    lake = defs.resources["lake"]
    registered, _ = register_new(VideoStore(inputs=uris), lake, {})
    ids = list(dict.fromkeys(r.video_id for r in registered))
    add_video_partitions(instance, ids)
    job = defs.resolve_job_def("label_videos")
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet, transient=False) as progress:
        task = progress.add_task("materializing", total=len(ids))
        for vid in ids:
            progress.update(task, description=f"materializing {vid}")
            started = time.perf_counter()
            res = job.execute_in_process(partition_key=vid, instance=instance, asset_selection=selection,
                                         raise_on_error=False, run_config=config,
                                         tags={"fm/launched_by": "fm run"})
            results.append({"video_id": vid, "success": res.success, "run_id": res.run_id,
                            "seconds": time.perf_counter() - started, "error": run_error(res),
                            "failed_checks": failed_checks(res)})
            progress.advance(task)
        if until is None and any(r["success"] for r in results):
            progress.update(task, description="building the dataset (splits)")
            dataset_config = {"loggers": config["loggers"]}
            if "splits" in (config.get("ops") or {}):
                dataset_config["ops"] = {"splits": config["ops"]["splits"]}
            res = defs.resolve_job_def("build_dataset").execute_in_process(
                instance=instance, raise_on_error=False, run_config=dataset_config,
                tags={"fm/launched_by": "fm run"})
            results.append({"video_id": None, "success": res.success, "run_id": res.run_id, "seconds": None,
                            "error": run_error(res), "failed_checks": failed_checks(res)})
    write_duckdb()
    return results


def run_error(res) -> str | None:
    if res.success:
        return None
    errors = [e.event_specific_data.error.message.strip() for e in res.all_events
              if getattr(e.event_specific_data, "error", None) is not None]
    return errors[0] if errors else "run failed"


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


def summary(video_ids: list[str] | None = None):
    """One row per video: status, clips, and the counts of every later stage that has data."""
    from fm_assets.definitions import defs

    wh = defs.resources["warehouse"]
    tables = wh.tables()
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
        f"FROM videos v {joins} {where} ORDER BY 1"
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


def cmd_run(args) -> int:
    run_config = None
    if args.config:
        import yaml

        run_config = yaml.safe_load(Path(args.config).read_text())
    results = run_videos(args.paths, until=args.until, run_config=run_config, quiet=args.quiet)
    videos = [r for r in results if r["video_id"]]
    df = summary([r["video_id"] for r in videos])
    if df is not None and not args.quiet:
        print_frame(df, "table")
    failed = report_runs(results, lambda m: print(f"fm: {m}", file=sys.stderr))
    print(f"{sum(r['success'] for r in videos)} of {len(videos)} video(s) materialized", file=sys.stderr)
    return 1 if failed else 0


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
    results = run_videos(paths, until=args.until)
    videos = [r for r in results if r["video_id"]]
    df = summary([r["video_id"] for r in videos])
    if df is not None:
        print_frame(df, "table")
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
