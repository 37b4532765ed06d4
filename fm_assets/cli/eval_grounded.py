"""`fm eval grounded`: GroundMoRe J / F / J&F of grounded predictions, printed and written to the lake."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC
from pathlib import Path

from fm_assets.cli.console import console
from fm_assets.evaluation.grounded import (
    BASELINES,
    BOUND_TH,
    N_FRAMES,
    evaluate,
    load_ground_truth,
    write_baseline,
    write_lake_grounded,
    write_tasks,
)


def write_out(result: dict, out: str | None, con) -> None:
    """The --out JSON of an evaluation (summary and every question / sequence), when asked for."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, default=str))
        con.print(f"wrote {out}")


def eval_run_name(args, what: str) -> str:
    from datetime import datetime

    if args.run_name:
        name = args.run_name
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = args.baseline if getattr(args, "baseline", None) else Path(args.pred or "pred").resolve().stem
        name = f"{what}-{base}-{stamp}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or what


def _fmt(v) -> str:
    return "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def print_grounded(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"GroundMoRe J / F / J&F (%) — {result['run_name']}")
    for c in ("q_type", "questions", "missing", "broken", "partial", "J", "F", "J&F"):
        table.add_column(c, justify="left" if c == "q_type" else "right")
    for r in result["summary"]:
        table.add_row(r["q_type"], str(r["questions"]), str(r["missing"]), str(r["broken"]), str(r["partial"]),
                      _fmt(r["J"]), _fmt(r["F"]), _fmt(r["JF"]))
    console.print(table)
    bad = [r for r in result["questions"] if r["problems"]]
    if bad:
        t = Table(title="problems (scored as stated)")
        for c in ("qa_id", "q_type", "status", "problem"):
            t.add_column(c, overflow="fold")
        shown = 0
        for r in bad:
            for p in r["problems"]:
                if shown < 30:
                    t.add_row(r["qa_id"], r["q_type"], r["status"], p)
                shown += 1
        console.print(t)
        if shown > 30:
            console.print(f"... {shown - 30} more problem line(s): see --out")
    for p in result["gt_problems"]:
        console.print(f"ground truth: {p['qa_id']}: {p['problem']}")
    if result["extra_ids"]:
        ex = result["extra_ids"]
        console.print(f"{len(ex)} prediction id(s) are not questions of the ground truth (ignored): "
                      + ", ".join(ex[:10]) + (" ..." if len(ex) > 10 else ""))


def cmd_grounded(args, lake=None, warehouse=None) -> int:
    """`fm eval grounded`; the lake and warehouse are the project's resources (fm_assets.definitions) unless given."""
    from datetime import datetime

    from fm_resources.settings import fm_home

    con = console()
    if not args.pred and not args.baseline and not args.write_tasks:
        print("fm eval grounded: give --pred DIR, --baseline largest-moving or --write-tasks FILE", file=sys.stderr)
        return 2
    given = {"lake": lake, "warehouse": warehouse}

    def resource(name: str):  # imported only when the lake is needed (the definitions import takes seconds)
        if given[name] is None:
            from fm_assets.definitions import defs

            given[name] = defs.resources[name]
        return given[name]

    try:
        questions, gt_problems, source = load_ground_truth(args, None if args.gt else resource("warehouse"))
    except (FileNotFoundError, ValueError) as exc:
        print(f"fm eval grounded: {exc}", file=sys.stderr)
        return 1
    if args.write_tasks:
        write_tasks(questions, Path(args.write_tasks), source)
        print(f"wrote {len(questions)} question(s) with their frames to {args.write_tasks}")
        if not args.pred and not args.baseline:
            return 0
    if not questions:
        print(f"fm eval grounded: no grounded questions in {source} (split {args.split})", file=sys.stderr)
        for p in gt_problems:
            print(f"fm eval grounded: {p['qa_id']}: {p['problem']}", file=sys.stderr)
        return 1
    run_name = eval_run_name(args, "grounded")
    pred_dir = Path(args.pred) if args.pred else None
    if args.baseline:
        wh = resource("warehouse")
        tables = set(wh.tables())
        if not {"trajectories", "tracks"} <= tables:
            print("fm eval grounded: the baseline needs trajectories and tracks in the lake (run `fm run` first)",
                  file=sys.stderr)
            return 1
        if pred_dir is None:
            pred_dir = fm_home() / "eval" / f"baseline-{args.baseline}"
            if pred_dir.is_dir():
                for old in pred_dir.glob("*.json"):
                    old.unlink()
        clips = sorted({q.clip_id for q in questions})
        quoted = ",".join("'" + c.replace("'", "''") + "'" for c in clips)
        counts = write_baseline(questions, wh.query(f"select * from trajectories where clip_id in ({quoted})"),
                                wh.query(f"select * from tracks where clip_id in ({quoted})"), pred_dir)
        con.print(f"baseline {args.baseline}: wrote {counts['written']} prediction(s) (boxes) to {pred_dir}")
    if not pred_dir.is_dir():
        print(f"fm eval grounded: no such folder: {pred_dir} (every question is scored as missing)", file=sys.stderr)
    result = evaluate(questions, pred_dir)
    result.update(run_name=run_name, created=datetime.now(UTC).isoformat(timespec="seconds"),
                  gt={"source": source, "split": args.split, "questions": len(questions)},
                  pred=str(pred_dir.resolve()), baseline=args.baseline, gt_problems=gt_problems,
                  definition={"frames": f"np.linspace(0, n - 1, {N_FRAMES}, dtype=int) over the clip's frames",
                              "J": "mask IoU, 1 when both empty",
                              "F": f"DAVIS boundary F, tolerance ceil({BOUND_TH} x diagonal) px", "JF": "(J + F) / 2",
                              "units": "summary in percent, questions in [0, 1]"})
    print_grounded(result, con)
    write_out(result, args.out, con)
    if not args.no_lake:
        write_lake_grounded(result, resource("lake"))
        con.print(f"lake: eval_grounded/{run_name}.parquet (query it: fm sql \"select * from eval_grounded\")")
    bad = [r for r in result["questions"] if r["status"] != "ok"]
    return 1 if args.strict and bad else 0


HELP = """Score grounded predictions with GroundMoRe's metrics (J = mask IoU, F = DAVIS boundary F with tolerance
ceil(0.008 x diagonal) px, J&F = (J+F)/2), per question the mean over 20 frames np.linspace(0, n-1, 20, dtype=int)
of the clip, then the mean over questions, per q_type and overall, in percent.

Predictions (--pred DIR), per question id (`fm eval grounded --write-tasks FILE` lists ids and frames):
  DIR/<qa_id>/<frame:05d>.png       palette / grey / binary mask of the frame's size, pixels != 0 = object
  DIR/<qa_id>.json                  {"frames": {"<frame>": {"size": [h, w], "counts": ...} | null}} (COCO RLE)
                                    or {"frames": {"<frame>": [x1, y1, x2, y2] | null}} (pixel boxes)
Frames are source-video frame indices (tracks.frame_idx) with the lake as ground truth, exported frame indices
with --gt. A sampled frame without a prediction is an empty mask; a question without a prediction scores 0."""


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("grounded", help="GroundMoRe J / F / J&F of grounded (mask) predictions",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", help="predictions folder (layouts above); with --baseline, where to write them")
    p.add_argument("--gt", help="a `fm export groundmore` folder (default: the lake's grounded questions)")
    p.add_argument("--split", default="all", choices=["train", "val", "test", "all"],
                   help="score the questions of one split (default all)")
    p.add_argument("--baseline", choices=BASELINES,
                   help="write the baseline's predictions (largest-moving: the boxes of the moving object with the "
                        "largest mean box area over its whole track) and score them")
    p.add_argument("--out", help="write the results (summary and every question) as JSON")
    p.add_argument("--run-name", help="name of this evaluation in the lake (default grounded-<pred>-<UTC time>)")
    p.add_argument("--no-lake", action="store_true", help="do not write eval_grounded/<run>.parquet into the lake")
    p.add_argument("--write-tasks", metavar="FILE",
                   help="write the questions with the frames to predict as JSON (and stop unless --pred/--baseline)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any prediction is missing, broken or partial")
    p.set_defaults(func=cmd_grounded)
