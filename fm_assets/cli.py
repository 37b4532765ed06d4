"""`fm`: the project's command line (demo, run, sql, ui). Runs go through Dagster against the instance in
FM_HOME, so everything `fm` does shows up in `fm ui`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _instance():
    from dagster import DagsterInstance

    from fm_resources.settings import dagster_home

    os.environ["DAGSTER_HOME"] = str(dagster_home())
    instance = DagsterInstance.get()
    set_pool_limits(instance)
    return instance


def set_pool_limits(instance) -> dict[str, int]:
    """Concurrency pools: `gpu` (the detector; FM_GPU_SLOTS, default 1) and `llm` (captions and questions;
    FM_LLM_SLOTS, default 4) get their limits the first time an instance is used; later changes made in the UI
    or with `dagster instance concurrency set` are kept."""
    from fm_resources.settings import pool_limits

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    configured = set(storage.get_concurrency_keys())
    for pool, limit in pool_limits().items():
        if pool not in configured:
            storage.set_concurrency_slots(pool, limit)
    return {p: storage.get_concurrency_info(p).slot_count for p in pool_limits()}


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


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

    from fm_assets.automation import PER_VIDEO
    from fm_assets.definitions import defs

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
    from fm_resources.detectors import DetectorConfigError, DetectorResource

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

    from fm_assets.automation import register_new
    from fm_assets.definitions import defs
    from fm_resources.video import VideoStore

    instance = _instance()
    selection = selection_until(until)
    preflight(selection, run_config)
    uris = collect_uris(paths)
    lake = defs.resources["lake"]
    registered, _ = register_new(VideoStore(inputs=uris), lake, {})
    ids = list(dict.fromkeys(r.video_id for r in registered))
    missing = [v for v in ids if not instance.has_dynamic_partition("videos", v)]
    if missing:
        instance.add_dynamic_partitions("videos", missing)
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
                            "seconds": time.perf_counter() - started, "error": _run_error(res),
                            "failed_checks": _failed_checks(res)})
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
                            "error": _run_error(res), "failed_checks": _failed_checks(res)})
    write_duckdb()
    return results


def _run_error(res) -> str | None:
    if res.success:
        return None
    errors = [e.event_specific_data.error.message.strip() for e in res.all_events
              if getattr(e.event_specific_data, "error", None) is not None]
    return errors[0] if errors else "run failed"


def _failed_checks(res) -> list[dict]:
    """The checks of a run that did not pass: name, asset, severity, offending row count."""
    out = []
    for e in res.all_events:
        ev = e.asset_check_evaluation_data if e.event_type_value == "ASSET_CHECK_EVALUATION" else None
        if ev is not None and not ev.passed:
            rows = ev.metadata.get("offending_rows")
            out.append({"check": ev.check_name, "asset": ev.asset_key.to_user_string(),
                        "severity": ev.severity.value, "rows": getattr(rows, "value", rows)})
    return out


def report_runs(results: list[dict], err) -> list[dict]:
    """Print failed runs and failed checks; returns the failed runs."""
    failed = [r for r in results if not r["success"]]
    for r in results:
        for c in r["failed_checks"]:
            where = r["video_id"] or "dataset"
            err(f"check {c['severity']} {c['check']} on {c['asset']} ({where}): {c['rows']} offending row(s)"
                f" -- see `fm sql -f sql/checks/{c['check']}.sql`")
    for r in failed:
        err(f"run {r['run_id']} for {r['video_id'] or 'the dataset'} failed: {r['error']}")
    return failed


def _print_frame(df, fmt: str) -> None:
    if fmt == "csv":
        import polars as pl

        nested = [c for c, t in df.schema.items() if t.is_nested()]
        flat = df.with_columns(pl.col(c).map_elements(lambda v: json.dumps(v.to_list() if hasattr(v, "to_list") else v,
                                                                       default=str), return_dtype=pl.String)
                               for c in nested)
        text = flat.write_csv()
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif fmt == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=str, indent=1) + "\n")
    else:
        from rich.table import Table

        table = Table(show_lines=False)
        for c in df.columns:
            table.add_column(c, overflow="fold")
        for row in df.iter_rows():
            table.add_row(*["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row])
        _console().print(table)
        _console().print(f"{len(df)} row(s)")


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
        _print_frame(df, "table")
    failed = report_runs(results, lambda m: print(f"fm: {m}", file=sys.stderr))
    print(f"{sum(r['success'] for r in videos)} of {len(videos)} video(s) materialized", file=sys.stderr)
    return 1 if failed else 0


def cmd_demo(args) -> int:
    from fm_assets.synthetic import make_demo_videos
    from fm_resources.settings import fm_home, lake_root

    con = _console()
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
        _print_frame(df, "table")
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
        f"  Dagster instance:  {os.environ['DAGSTER_HOME']}  (browse it with `fm ui`)\n"
        f"  query it:          fm sql \"select category, count(*) from qa_pairs group by 1\""
    )
    return 1 if failed else 0


def cmd_sql(args) -> int:
    import duckdb

    from fm_assets.definitions import defs

    if bool(args.file) == bool(args.query):
        print("fm sql: give a query or -f FILE (one of them)", file=sys.stderr)
        return 2
    query = Path(args.file).read_text() if args.file else args.query
    wh = defs.resources["warehouse"]
    try:
        df = wh.query(query)
    except duckdb.Error as exc:
        print(f"fm sql: {exc}", file=sys.stderr)
        if "does not exist" in str(exc):
            print(f"fm sql: tables with data: {', '.join(wh.tables()) or 'none yet (run `fm run` first)'}", file=sys.stderr)
        return 1
    _print_frame(df, args.format)
    return 0


def write_duckdb(out: Path | None = None) -> tuple[Path, list[str]]:
    """A DuckDB database file holding the lake's views (atomically replaced), for DuckDB clients, notebooks and
    BI tools; `fm run` refreshes it so new tables show up. Tables with many files changed since their last
    compaction (FM_COMPACT_MIN_CHANGED) are compacted first, so the views read a few large parts."""
    from fm_assets.definitions import defs
    from fm_assets.maintenance import auto_min_changed
    from fm_resources.settings import fm_home

    defs.resources["warehouse"].compact(min_changed=auto_min_changed())
    out = out or fm_home() / "fm.duckdb"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with defs.resources["warehouse"].connect(database=str(tmp)) as con:
        views = [r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
    os.replace(tmp, out)
    return out, views


def cmd_db(args) -> int:
    out, views = write_duckdb(Path(args.out) if args.out else None)
    print(f"wrote {out} with views: {', '.join(views) or 'none (run `fm run` first)'}")
    print(f"open it with: duckdb {out}  (or duckdb.connect({str(out)!r}, read_only=True) in Python)")
    return 0


def cmd_compact(args) -> int:
    import duckdb

    from fm_assets.definitions import defs
    from fm_assets.maintenance import report_lines

    try:
        report = defs.resources["warehouse"].compact(args.table or None, min_changed=args.min_changed)
    except ValueError as exc:
        print(f"fm compact: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # e.g. a damaged file in the lake: nothing of that table's compaction is kept
        print(f"fm compact: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report_lines(report)) or "fm compact: no per-video tables in the lake yet (run `fm run` first)")
    return 0


def cmd_export(args) -> int:
    import polars as pl

    from fm_assets import exports
    from fm_assets.definitions import defs

    wh = defs.resources["warehouse"]
    lake = defs.resources["lake"]
    tables = wh.tables()
    out = Path(args.out_dir)
    if args.format == "mot":
        if "tracks" not in tables:
            print("fm export: no tracks in the lake yet (run `fm run PATH --until tracks` first)", file=sys.stderr)
            return 1
        ids = wh.query("select video_id from videos where status = 'ok' order by 1")["video_id"].to_list()
        manifest = exports.export_mot(wh.query("select * from tracks"), ids, out, interpolate=not args.no_interpolate)
        print(f"wrote {manifest['n_files']} file(s) to {out} (manifest: {out / 'manifest.json'})")
        return 0
    needs = {"llamafactory": ("raw_clips", "tracks", "qa_pairs"),
             "fm-json": ("raw_clips", "trajectories", "captions", "qa_pairs"),
             "groundmore": ("raw_clips", "tracks", "qa_pairs")}[args.format]
    missing = [t for t in needs if t not in tables]
    if missing:
        print(f"fm export {args.format}: no {', '.join(missing)} in the lake yet (run `fm run PATH` first)",
              file=sys.stderr)
        return 1
    if "splits" not in tables:  # tables() lists a view whose files exist: splits/all.parquet
        print(f"fm export {args.format}: no splits table in the lake yet; train / val / test come from the `splits` "
              "asset, which `fm run PATH` materializes after the videos: run `fm run` first", file=sys.stderr)
        return 1
    splits = wh.query("select * from splits")
    source = exports.lake_sources(lake, defs.resources["video_store"])
    qa = wh.query("select * from qa_pairs")
    clips = wh.query("select * from raw_clips")
    try:
        if args.format == "llamafactory":
            manifest = exports.export_llamafactory(qa, clips, wh.query("select * from tracks"), splits, source, out)
        elif args.format == "fm-json":
            manifest = exports.export_fm_json(qa, clips, wh.query("select * from trajectories"),
                                              wh.query("select * from captions"), splits, source, out)
        else:
            dets = pl.DataFrame()
            if "detections" in tables:
                dets = wh.query("select clip_id, frame_idx, x1, y1, x2, y2, mask_rle from detections "
                                "where mask_rle is not null and clip_id in "
                                "(select clip_id from qa_pairs where kept and grounded)")
            manifest = exports.export_groundmore(qa, clips, wh.query("select * from tracks"), dets, splits, source,
                                                 out, fps=args.fps)
    except exports.ExportError as exc:
        print(f"fm export {args.format}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest['n_files']} file(s) to {out} (manifest: {out / 'manifest.json'})")
    print(f"counts: {json.dumps(manifest['counts'])}")
    for s in manifest["skipped"]:
        print(f"fm export {args.format}: skipped {s['clip_id']}: {s['reason']}", file=sys.stderr)
    if manifest["skipped"]:
        print(f"fm export {args.format}: {len(manifest['skipped'])} clip(s) skipped, the rest written "
              f"(reasons under 'skipped' in {out / 'manifest.json'})", file=sys.stderr)
    return 0


def cmd_ui(args) -> int:
    _instance()
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd, env=os.environ.copy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fm", description="FoundationMotion-style motion labels from raw video, as a Dagster asset graph.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="render sample videos (or take --videos DIR), run the graph, print a summary")
    p.add_argument("--videos", help="a folder of your own videos instead of the synthetic scenes")
    p.add_argument("--until", help="stop after this asset")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="register videos (files, folders, s3:// URIs) and materialize their assets")
    p.add_argument("paths", nargs="+")
    p.add_argument("--until", help="materialize only this asset and what it needs (e.g. raw_clips)")
    p.add_argument("--config", help="YAML run config (e.g. ops: {ingest: {config: {max_clip_s: 8}}})")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sql", help="query the label lake with DuckDB")
    p.add_argument("query", nargs="?")
    p.add_argument("-f", "--file", help="a .sql file, e.g. sql/reports/...")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("db", help="write a DuckDB database file with the lake's views (default $FM_HOME/fm.duckdb)")
    p.add_argument("--out", help="where to write it")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("compact", help="rewrite the lake's per-video tables into a few Parquet parts "
                                       "(fast whole-lake checks, reports and SQL)")
    p.add_argument("--table", action="append", help="a per-video table to compact (repeatable; default: all)")
    p.add_argument("--min-changed", type=int, default=1,
                   help="only tables with at least this many files new, rewritten or deleted since (default 1)")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("export", help="export the lake to another format (llamafactory, fm-json, groundmore, mot)")
    p.add_argument("format", choices=["llamafactory", "fm-json", "groundmore", "mot"])
    p.add_argument("out_dir")
    p.add_argument("--no-interpolate", action="store_true",
                   help="mot: write only the sampled frames (default: interpolate boxes over the skipped frames)")
    p.add_argument("--fps", type=float, default=6.0,
                   help="groundmore: frames (images and masks) per second of each clip (default 6, GroundMoRe's)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("eval", help="score models and trackers: mcq (any litellm model), grounded (J/F/J&F), mot")
    evals = p.add_subparsers(dest="what", required=True)
    from fm_assets import eval_grounded, eval_mcq, eval_mot

    for module in (eval_mcq, eval_grounded, eval_mot):
        module.add_parser(evals)

    p = sub.add_parser("ui", help="dagster dev on this project and the instance in FM_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
