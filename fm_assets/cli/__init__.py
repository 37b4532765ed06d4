"""`fm`: the project's command line (demo, run, sql, ui). Runs go through Dagster against the instance in
FM_HOME, so everything `fm` does shows up in `fm ui`.

A command's module is imported when that command runs (`fm sql` does not load the evaluation code, `fm run`
not the exporters): every `fm` pays only for what it uses."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from fm_assets.cli import instance

EVALS = ("eval_mcq", "eval_grounded", "eval_mot", "eval_labels")


def command(name: str):
    """`module:function` of fm_assets.cli, imported when the command is run."""
    module, func = name.split(":")

    def run(args):
        return getattr(importlib.import_module(f"fm_assets.cli.{module}"), func)(args)

    run.__qualname__ = name
    return run


def chosen_command(argv: list[str]) -> str | None:
    """The command word of `fm [--debug] COMMAND ...` (None for `fm`, `fm --help`)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fm", description="FoundationMotion-style motion labels from raw video, as a Dagster asset graph.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks (also FM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="render sample videos (or take --videos DIR), run the graph, print a summary")
    p.add_argument("--videos", help="a folder of your own videos instead of the synthetic scenes")
    p.add_argument("--until", help="stop after this asset")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=command("run:cmd_demo"))

    p = sub.add_parser("run", help="register videos (files, folders, s3:// URIs) and materialize their assets")
    p.add_argument("paths", nargs="+")
    p.add_argument("--until", help="materialize only this asset and what it needs (e.g. raw_clips)")
    p.add_argument("--config", help="YAML run config (e.g. ops: {ingest: {config: {max_clip_s: 8}}})")
    p.add_argument("--force", action="store_true",
                   help="hash every file again and relabel every video (default: skip a video whose labels are fresh "
                        "under this code and config, and rerun only the stages whose code or config changed, and what "
                        "follows them)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=command("run:cmd_run"))

    p = sub.add_parser("sql", help="query the label lake with DuckDB")
    p.add_argument("query", nargs="?")
    p.add_argument("-f", "--file", help="a .sql file, e.g. sql/reports/...")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--allow-write", action="store_true",
                   help="allow statements that write (CREATE, INSERT, COPY ... TO inside FM_HOME or the lake, ...)")
    p.set_defaults(func=command("lake:cmd_sql"))

    p = sub.add_parser("doctor", help="show runs whose process died, pool slots, missing sources; --clean fixes them")
    p.add_argument("--clean", action="store_true", help="mark dead runs failed, free their pool slots, "
                                                        "mark labelled videos whose source is gone source_missing")
    p.set_defaults(func=command("doctor:cmd_doctor"))

    p = sub.add_parser("db", help="write a DuckDB database file with the lake's views (default $FM_HOME/fm.duckdb)")
    p.add_argument("--out", help="where to write it")
    p.set_defaults(func=command("lake:cmd_db"))

    p = sub.add_parser("compact", help="rewrite the lake's per-video tables into a few Parquet parts "
                                       "(fast whole-lake checks, reports and SQL)")
    p.add_argument("--table", action="append", help="a per-video table to compact (repeatable; default: all)")
    p.add_argument("--min-changed", type=int, default=1,
                   help="only tables with at least this many files new, rewritten or deleted since (default 1)")
    p.set_defaults(func=command("lake:cmd_compact"))

    p = sub.add_parser("export", help="export the lake to another format (llamafactory, fm-json, groundmore, mot)")
    p.add_argument("format", choices=["llamafactory", "fm-json", "groundmore", "mot"])
    p.add_argument("out_dir")
    p.add_argument("--no-interpolate", action="store_true",
                   help="mot: write only the sampled frames (default: interpolate boxes over the skipped frames)")
    p.add_argument("--fps", type=float, default=6.0,
                   help="groundmore: frames (images and masks) per second of each clip (default 6, GroundMoRe's)")
    p.set_defaults(func=command("export:cmd_export"))

    p = sub.add_parser("eval", help="score models, trackers and labels: mcq (any litellm model), grounded "
                                    "(J/F/J&F), mot, labels (questions vs ground-truth tracks)")
    evals = p.add_subparsers(dest="what", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    if chosen_command(argv) == "eval":  # the evaluation code (TrackEval, the exporters) only for `fm eval`
        for module in EVALS:
            importlib.import_module(f"fm_assets.cli.{module}").add_parser(evals)

    instance.add_parser(sub)

    p = sub.add_parser("ui", help="dagster dev on this project and the instance in FM_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=command("ui:cmd_ui"))

    debug_anywhere = "--debug" in argv[1:]  # `fm run ... --debug` as well as `fm --debug run ...`
    args = parser.parse_args([a for a in argv if a != "--debug"] if debug_anywhere else argv)
    args.debug = args.debug or debug_anywhere
    return guarded(args.func, args)


def guarded(func, args) -> int:
    """Run a command; an unexpected error ends in one line with its cause (the traceback only with --debug)."""
    from fm_assets.cli.console import one_line
    from fm_resources.settings import debug, environment

    if args.debug or debug():
        with environment("FM_DEBUG", "1"):  # read back through settings.debug() by the commands
            return func(args)
    try:
        return func(args)
    except KeyboardInterrupt:
        print("fm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"fm {args.command}: error: {one_line(exc)}  (run with --debug for the traceback)", file=sys.stderr)
        return 1


# Before its first frame `fm run` creates about 400,000 objects that live as long as the process (Dagster, its
# storages, the asset graph) and little garbage (2 MB). With CPython's default first threshold (700 allocations)
# the collector walks that growing heap over and over while it loads (0.3-0.4 s of a 2.4 s up-to-date run), and
# every full collection of the run walks it again. So `fm` loads with young collections kept rare
# (LOADING_GC_THRESHOLD), then freezes what it loaded (`loaded()`: no collection walks it again) and collects at
# the default pace while it works; at exit it freezes everything, which spares the final walk (0.6 s).
# (BENCHMARKS.md, "Session 9".)
LOADING_GC_THRESHOLD = 50_000
_WORKING_GC_THRESHOLDS = gc.get_threshold()


def entry_point() -> int:
    """The `fm` executable (pyproject's [project.scripts]): main() with the garbage collector set for a command
    line process. Only here: code that calls main() inside its own process (the tests) keeps its own settings."""
    gc.set_threshold(LOADING_GC_THRESHOLD, *_WORKING_GC_THRESHOLDS[1:])
    try:
        return main()
    finally:
        gc.freeze()  # the process ends here: no final walk of every object it made (atexit handlers still run)


def loaded() -> None:
    """The command has loaded what it works with (Dagster, the instance, the asset graph) and its work starts:
    what exists now is frozen (garbage collections skip it) and collections go back to the default pace. Does
    nothing unless entry_point() set the loading threshold (main() called in-process, e.g. by the tests)."""
    if gc.get_threshold()[0] == LOADING_GC_THRESHOLD:
        gc.freeze()
        gc.set_threshold(*_WORKING_GC_THRESHOLDS)


if __name__ == "__main__":
    sys.exit(entry_point())
