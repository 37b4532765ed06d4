"""`fm eval labels --gt DIR`: the precision of the lake's rule-based questions against ground-truth tracks
(definitions: fm_assets.evaluation.labels), printed and written to the lake as label_eval/<run>.parquet."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from fm_assets.cli.console import console
from fm_assets.evaluation import labels as L

MAX_WRONG_SHOWN = 40


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _scope_label(r: dict) -> str:
    return {"overall": "overall", "category": "category", "q_type": "grounded", "kind": "kind"}[r["scope"]]


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The printed tables: (title, header, rows) for yield, precision and the wrong questions."""
    summary = result["summary"]
    overall = [r for r in summary if r["scope"] == "overall"]
    yield_rows = [[r["video_id"], str(r["kept_clips"]), str(r["questions"]), _num(r["mcq_per_clip"]),
                   _num(r["grounded_per_clip"]), str(r["doubtful"]),
                   "-" if r["doubtful_pct"] is None else f"{r['doubtful_pct']:.1f}", str(r["unscored"]),
                   str(r["correct"]), str(r["wrong"]), _pct(r["precision"])] for r in overall]
    prec_rows = [[r["video_id"], _scope_label(r), r["group"], str(r["n"]), str(r["correct"]), str(r["wrong"]),
                  str(r["doubtful"]), str(r["unscored"]), _pct(r["precision"])] for r in summary]
    wrong = [q for q in result["questions"] if q["status"] == "wrong"]
    wrong_rows = [[q["video_id"], q["clip_id"].rsplit("-", 1)[-1], q["kind"] or "", q["question"] or "",
                   q["answer_text"] or "", q["reason"]] for q in wrong[:MAX_WRONG_SHOWN]]
    out = [(f"Label precision against truth -- {result['run_name']} (doubtful and unscored excluded from precision)",
            ["video", "kept clips", "questions", "MCQ/clip", "grounded/clip", "doubtful", "doubtful %", "unscored",
             "correct", "wrong", "precision %"], yield_rows),
           ("Precision per category, grounded q_type and kind",
            ["video", "scope", "group", "n", "correct", "wrong", "doubtful", "unscored", "precision %"], prec_rows)]
    if wrong:
        more = f" (first {MAX_WRONG_SHOWN} of {len(wrong)}; all in --json and the lake)" if len(wrong) > MAX_WRONG_SHOWN else ""
        out.append((f"Wrong questions{more}", ["video", "clip", "kind", "question", "answer", "reason"], wrong_rows))
    return out


def markdown(result: dict) -> str:
    lines = []
    for title, header, rows in tables(result):
        lines += [f"**{title}**", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" if i < 3 else "--:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def print_tables(result: dict, con) -> None:
    from rich.table import Table

    for title, header, rows in tables(result):
        t = Table(title=title)
        for i, h in enumerate(header):
            t.add_column(h, justify="right" if i >= 3 and h not in ("question", "answer", "reason") else "left",
                         overflow="fold")
        for row in rows:
            t.add_row(*row)
        con.print(t)


def write_lake(result: dict, lake) -> list[str]:
    """label_eval/<run>.parquet (summary rows, view `label_eval`) and label_eval/questions/<run>.parquet (one
    row per question with its verdict), each written atomically (questions first)."""
    import polars as pl

    created = datetime.fromisoformat(result["created"])
    head = {"run_name": result["run_name"], "created_at": created, "gt": result["gt"]}
    summary = pl.DataFrame([{**head, **r} for r in result["summary"]], schema={
        "run_name": pl.String, "created_at": pl.Datetime("us", "UTC"), "gt": pl.String, "video_id": pl.String,
        "kept_clips": pl.Int64, "questions": pl.Int64, "mcq_per_clip": pl.Float64, "grounded_per_clip": pl.Float64,
        "doubtful_pct": pl.Float64, "scope": pl.String, "group": pl.String, "n": pl.Int64, "correct": pl.Int64,
        "wrong": pl.Int64, "doubtful": pl.Int64, "unscored": pl.Int64, "precision": pl.Float64})
    questions = pl.DataFrame([{**head, **q} for q in result["questions"]], schema={
        "run_name": pl.String, "created_at": pl.Datetime("us", "UTC"), "gt": pl.String, "video_id": pl.String,
        "clip_id": pl.String, "qa_id": pl.String, "category": pl.String, "q_type": pl.String, "grounded": pl.Boolean,
        "kind": pl.String, "question": pl.String, "answer_text": pl.String, "status": pl.String, "reason": pl.String,
        "truth": pl.String})
    return [lake.write_parquet(f"label_eval/questions/{result['run_name']}.parquet", questions),
            lake.write_parquet(f"label_eval/{result['run_name']}.parquet", summary)]


def evaluate_lake(warehouse, gt: Path, progress=None) -> dict:
    """Every video of the lake with a truth file, scored ({summary, questions, matches, missing, videos})."""
    have = set(warehouse.tables({"raw_clips", "tracks", "qa_pairs"}))
    if "raw_clips" not in have:
        raise FileNotFoundError("the lake has no raw_clips (run `fm run` first)")
    clips = warehouse.query("select * from raw_clips")
    video_ids = sorted(set(clips["video_id"].to_list()))
    files, missing = L.truth_for_videos(gt, video_ids)
    if not files and not _any_truth(gt):
        raise FileNotFoundError(f"no ground truth under {gt} (DIR/SEQ/gt/gt.txt, DIR/SEQ/gt.txt or DIR/SEQ.gt.txt)")
    videos = []
    for vid in sorted(files):
        tracks = (warehouse.query("select * from tracks where video_id = ?", [vid]).to_dicts()
                  if "tracks" in have else [])
        qa = (warehouse.query("select * from qa_pairs where video_id = ? and kept", [vid]).to_dicts()
              if "qa_pairs" in have else [])
        vclips = clips.filter(clips["video_id"] == vid).to_dicts()
        videos.append(L.evaluate_video(vid, vclips, tracks, qa, L.read_truth(files[vid])))
        if progress:
            progress(vid)
    return {"summary": L.summarize(videos), "questions": [q for v in videos for q in v["questions"]],
            "matches": {v["video_id"]: v["matches"] for v in videos}, "missing": missing,
            "truth_files": {k: str(v) for k, v in files.items()}}


def _any_truth(gt: Path) -> bool:
    from fm_assets.evaluation.mot import find_gt

    return bool(find_gt(Path(gt)))


def run_name(args) -> str:
    if args.run_name:
        name = args.run_name
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"labels-{Path(args.gt).resolve().name}-{stamp}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "labels"


def cmd_labels(args, lake=None, warehouse=None) -> int:
    """`fm eval labels`; the lake and warehouse are the project's resources (fm_assets.definitions) unless given."""
    con = console()
    if lake is None or warehouse is None:
        from fm_assets.definitions import defs

        lake = lake or defs.resources["lake"]
        warehouse = warehouse or defs.resources["warehouse"]
    try:
        result = evaluate_lake(warehouse, Path(args.gt))
    except FileNotFoundError as exc:
        print(f"fm eval labels: {exc}", file=sys.stderr)
        return 1
    result.update(run_name=run_name(args), created=datetime.now(UTC).isoformat(timespec="seconds"),
                  gt=str(Path(args.gt).resolve()),
                  definitions={k: getattr(L, k) for k in ("MIN_IOU", "WINDOW_IOU", "SMOOTH_S", "MIN_STOP_S",
                                                           "STILL_RADIUS", "ANGLE_MARGIN", "DISP_MARGIN",
                                                           "REGION_MARGIN", "ORDER_GAP_S", "COMPARE_MARGIN",
                                                           "BOTTOM_MARGIN")})
    if args.markdown:
        sys.stdout.write(markdown(result) + "\n")
    else:
        print_tables(result, con)
    if result["missing"]:
        print(f"fm eval labels: no truth file for {len(result['missing'])} video(s): "
              + ", ".join(result["missing"][:10]) + (" ..." if len(result["missing"]) > 10 else ""), file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        con.print(f"wrote {args.json}")
    if not args.no_lake:
        write_lake(result, lake)
        con.print(f"lake: label_eval/{result['run_name']}.parquet (query it: fm sql \"select * from label_eval\")")
    if not result["summary"]:
        print("fm eval labels: no video of the lake has a truth file", file=sys.stderr)
        return 1
    if result["missing"] and not args.allow_missing:
        print("fm eval labels: videos without truth (see above) -- check the names, or pass --allow-missing",
              file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "labels", help="precision of the lake's rule-based questions against ground-truth tracks (MOT files)",
        description=L.__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, help="ground truth: DIR/SEQ/gt/gt.txt, DIR/SEQ/gt.txt or DIR/SEQ.gt.txt "
                                               "(SEQ matches the videos whose id is <slug of SEQ>-<8 hex>)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--json", metavar="PATH", help="write the results (summary, every question's verdict, matches)")
    p.add_argument("--run-name", help="name of this evaluation in the lake (default labels-<gt dir>-<UTC time>)")
    p.add_argument("--no-lake", action="store_true", help="do not write label_eval/<run>.parquet into the lake")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 even when a video of the lake has no truth file (default: exit 1 after scoring the "
                        "others)")
    p.set_defaults(func=cmd_labels)
