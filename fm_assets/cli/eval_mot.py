"""`fm eval mot`: MOTA / IDF1 / HOTA of tracker output against MOTChallenge ground truth."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path

from fm_assets.cli.console import console
from fm_assets.cli.eval_grounded import eval_run_name, write_out
from fm_assets.evaluation import mot
from fm_assets.evaluation.mot import evaluate_dirs, write_lake_mot


def print_mot(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"MOT metrics (TrackEval, IoU 0.5) — {result['run_name']}")
    cols = ("sequence", "status", "MOTA", "IDF1", "HOTA", "MOTP", "IDSW", "FP", "FN", "gt_ids", "pred_ids")
    for c in cols:
        table.add_column(c, justify="left" if c in ("sequence", "status") else "right")
    for r in result["sequences"]:
        table.add_row(*[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    console.print(table)
    for r in result["sequences"]:
        for p in r["problems"]:
            console.print(f"{r['sequence']}: {p}")
    if result["extra"]:
        console.print(f"{len(result['extra'])} prediction file(s) match no ground-truth sequence (ignored): "
                      + ", ".join(result["extra"][:10]) + (" ..." if len(result["extra"]) > 10 else ""))


def cmd_mot(args, lake=None) -> int:
    """`fm eval mot`; results go to the project's lake resource (fm_assets.definitions) unless `lake` is given."""
    from datetime import datetime

    con = console()
    try:
        result = evaluate_dirs(Path(args.gt), Path(args.pred))
    except FileNotFoundError as exc:
        print(f"fm eval mot: {exc}", file=sys.stderr)
        return 1
    result.update(run_name=eval_run_name(args, "mot"), created=datetime.now(UTC).isoformat(timespec="seconds"),
                  gt=str(Path(args.gt).resolve()), pred=str(Path(args.pred).resolve()))
    print_mot(result, con)
    write_out(result, args.out, con)
    if not args.no_lake:
        if lake is None:
            from fm_assets.definitions import defs

            lake = defs.resources["lake"]
        write_lake_mot(result, lake)
        con.print(f"lake: eval_mot/{result['run_name']}.parquet (query it: fm sql \"select * from eval_mot\")")
    missing = [r["sequence"] for r in result["sequences"] if r["status"] == "missing"]
    if (missing or result["extra"]) and not args.allow_missing:
        print("fm eval mot: " + "; ".join(
            ([f"no prediction for {', '.join(missing)} (scored as all missed)"] if missing else [])
            + ([f"prediction file(s) matching no sequence: {', '.join(result['extra'])}"] if result["extra"] else []))
            + " -- check the names, or pass --allow-missing", file=sys.stderr)
        return 1
    bad = [r for r in result["sequences"] if r["status"] != "ok"] or result["extra"]
    return 1 if args.strict and bad else 0


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "mot", help="MOTA / IDF1 / HOTA of tracker output against MOTChallenge ground truth (TrackEval)",
        description=mot.__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, help="ground truth: DIR/SEQ/gt/gt.txt, DIR/SEQ/gt.txt or DIR/SEQ.gt.txt")
    p.add_argument("--pred", required=True, help="predictions: DIR/SEQ.txt (or DIR/data/SEQ.txt, DIR/SEQ/<one>.txt)")
    p.add_argument("--out", help="write the results as JSON")
    p.add_argument("--run-name", help="name of this evaluation in the lake (default mot-<pred>-<UTC time>)")
    p.add_argument("--no-lake", action="store_true", help="do not write eval_mot/<run>.parquet into the lake")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 even when a sequence has no prediction or a prediction file matches no sequence "
                        "(default: exit 1, after printing and writing the scores)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 also when a sequence has problems (malformed or duplicate rows, rows after its end)")
    p.set_defaults(func=cmd_mot, baseline=None)
