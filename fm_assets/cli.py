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
    return DagsterInstance.get()


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
            error = None
            if not res.success:
                errors = [e.event_specific_data.error.message.strip() for e in res.all_events
                          if getattr(e.event_specific_data, "error", None) is not None]
                error = errors[0] if errors else "run failed"
            results.append({"video_id": vid, "success": res.success, "run_id": res.run_id,
                            "seconds": time.perf_counter() - started, "error": error})
            progress.advance(task)
    return results


def _print_frame(df, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(df.write_csv())
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
    failed = [r for r in results if not r["success"]]
    df = summary([r["video_id"] for r in results])
    if df is not None and not args.quiet:
        _print_frame(df, "table")
    for r in failed:
        print(f"fm: run {r['run_id']} for {r['video_id']} failed: {r['error']}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} video(s) materialized", file=sys.stderr)
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
    df = summary([r["video_id"] for r in results])
    if df is not None:
        _print_frame(df, "table")
    failed = [r for r in results if not r["success"]]
    for r in failed:
        con.print(f"[red]run {r['run_id']} for {r['video_id']} failed:[/] {r['error']}")
    examples = example_questions([r["video_id"] for r in results])
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
        f"\n[bold]Done.[/] {len(results) - len(failed)} of {len(results)} video(s) materialized.\n"
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


def cmd_export(args) -> int:
    from fm_assets.definitions import defs
    from fm_assets.exports import export_mot

    wh = defs.resources["warehouse"]
    tables = wh.tables()
    out = Path(args.out_dir)
    if args.format == "mot":
        if "tracks" not in tables:
            print("fm export: no tracks in the lake yet (run `fm run PATH --until tracks` first)", file=sys.stderr)
            return 1
        ids = wh.query("select video_id from videos where status = 'ok' order by 1")["video_id"].to_list()
        manifest = export_mot(wh.query("select * from tracks"), ids, out, interpolate=not args.no_interpolate)
    print(f"wrote {manifest['n_files']} file(s) to {out} (manifest: {out / 'manifest.json'})")
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

    p = sub.add_parser("export", help="export the lake to another format")
    p.add_argument("format", choices=["mot"])
    p.add_argument("out_dir")
    p.add_argument("--no-interpolate", action="store_true",
                   help="mot: write only the sampled frames (default: interpolate boxes over the skipped frames)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="dagster dev on this project and the instance in FM_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
