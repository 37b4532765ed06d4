"""`fm eval mot --gt DIR --pred DIR`: MOTA, IDF1, HOTA, MOTP, ID switches, FP and FN of tracker output against
MOTChallenge ground truth, per sequence and combined, with the project's TrackEval wrapper (`mot_metrics`:
CLEAR / Identity / HOTA at IoU 0.5; ground-truth rows with conf 0 are ignored).

Layouts (a sequence's name is SEQ):

ground truth (--gt DIR)      DIR/SEQ/gt/gt.txt (MOTChallenge), DIR/SEQ/gt.txt (../shared/data/mot), DIR/SEQ.gt.txt
                             (the synthetic scenes of `fm demo`); DIR itself when it is one sequence (DIR/gt/gt.txt
                             or DIR/gt.txt). The sequence length is seqLength of DIR/SEQ/seqinfo.ini, or n_frames
                             of DIR/SEQ.facts.json, else the last frame of the truth or the predictions.
predictions (--pred DIR)     DIR/SEQ.txt, names matched whatever their case (`fm export mot` writes
                             DIR/<video_id>.txt, and a video id `<seq>-<8 hex>` is matched to SEQ: TUD-Campus ->
                             tud-campus-1a2b3c4d.txt), DIR/data/SEQ.txt (TrackEval), or the one .txt other
                             than gt.txt in DIR/SEQ/ (../shared/data/mot/SEQ/sample_tracker_output.txt); --pred FILE
                             when the truth has one sequence.

Lines are `frame,id,x,y,w,h[,conf,...]` (1-based frames, pixels, top-left corner). Bad input is reported per
sequence and never silently dropped from the score: malformed lines (fewer than 6 fields, not numbers, frame < 1,
w or h <= 0) are skipped and listed; a prediction repeating an id on one frame keeps the first box; prediction
rows after the sequence's last frame are ignored and counted; a sequence without predictions scores as all
missed (status `missing`); prediction files that match no sequence are listed as extra and ignored. Either makes
`fm eval mot` exit 1 (after printing and writing the scores) unless --allow-missing.

Results are printed, written with --out (JSON) and to the lake as eval_mot/<run>.parquet (view `eval_mot`): one
row per sequence and a COMBINED row (TrackEval's combination: counts summed over sequences).
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fm_assets.labels.ids import slugify

if TYPE_CHECKING:
    import numpy as np


COLUMNS = ("MOTA", "IDF1", "HOTA", "MOTP", "DetA", "AssA", "IDSW", "FP", "FN", "MT", "ML", "gt_ids", "pred_ids")
_VIDEO_ID = re.compile(r"^(?P<stem>.+)-[0-9a-f]{8}$")


# --------------------------------------------------------------------------------------------------
# Files


def find_gt(gt_dir: Path) -> dict[str, Path]:
    """SEQ -> its ground-truth file (see the module doc for the layouts)."""
    gt_dir = Path(gt_dir)
    if gt_dir.is_file():
        return {gt_dir.parent.name if gt_dir.name == "gt.txt" else gt_dir.name.split(".")[0]: gt_dir}
    for own in (gt_dir / "gt" / "gt.txt", gt_dir / "gt.txt"):
        if own.is_file():
            return {gt_dir.name: own}
    found: dict[str, Path] = {}
    if not gt_dir.is_dir():
        return found
    for sub in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
        for cand in (sub / "gt" / "gt.txt", sub / "gt.txt"):
            if cand.is_file():
                found[sub.name] = cand
                break
    for f in sorted(gt_dir.glob("*.gt.txt")):
        found.setdefault(f.name[: -len(".gt.txt")], f)
    return found


def seq_length(gt_file: Path, seq: str) -> int | None:
    """seqLength from seqinfo.ini beside the truth (or one folder up), or n_frames of SEQ.facts.json."""
    for ini in (gt_file.parent / "seqinfo.ini", gt_file.parent.parent / "seqinfo.ini"):
        if ini.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(ini)
                return int(cp["Sequence"]["seqLength"])
            except (KeyError, ValueError, configparser.Error):
                return None
    facts = gt_file.parent / f"{seq}.facts.json"
    if gt_file.name.endswith(".gt.txt") and facts.is_file():
        try:
            return int(json.loads(facts.read_text())["n_frames"])
        except (KeyError, ValueError, TypeError):
            return None
    return None


def _named(names: list[str], seq: str) -> list[str]:
    """The prediction names that stand for a sequence: the name itself in any case, else `fm export mot`'s video
    ids `<slug of the file stem>-<8 hex>` (TUD-Campus.mp4 -> tud-campus-1a2b3c4d is sequence TUD-Campus)."""
    same = [k for k in names if k.lower() == seq.lower()]
    return same or [k for k in names if (m := _VIDEO_ID.match(k)) and m.group("stem").lower() in (seq.lower(), slugify(seq))]


def find_pred(pred: Path, seqs: list[str]) -> tuple[dict[str, Path], list[str], dict[str, str]]:
    """(SEQ -> prediction file, extra prediction names, SEQ -> why it has no usable file)."""
    pred = Path(pred)
    found: dict[str, Path] = {}
    why: dict[str, str] = {}
    if pred.is_file():
        if len(seqs) == 1:
            return {seqs[0]: pred}, [], {}
        return {}, [pred.name], {s: f"--pred is one file but the truth has {len(seqs)} sequences" for s in seqs}
    if not pred.is_dir():
        return {}, [], dict.fromkeys(seqs, f"no such prediction folder: {pred}")
    flat = {f.stem: f for d in (pred, pred / "data") if d.is_dir() for f in sorted(d.glob("*.txt"))
            if not f.name.endswith(".gt.txt") and f.name != "gt.txt"}
    used: set[str] = set()
    for s in seqs:
        named = _named(list(flat), s)
        if len(named) == 1:
            found[s] = flat[named[0]]
            used.add(named[0])
            continue
        if len(named) > 1:
            why[s] = f"several prediction files match {s}: {', '.join(sorted(named))}"
            used.update(named)
            continue
        sub = pred / s
        if sub.is_dir():
            cands = [f for f in sorted(sub.glob("*.txt")) if f.name != "gt.txt"]
            if len(cands) == 1:
                found[s] = cands[0]
                continue
            if len(cands) > 1:
                why[s] = f"several .txt files in {sub}: {', '.join(f.name for f in cands)}"
                continue
        if len(seqs) == 1 and len(flat) == 1:  # one sequence, one file (e.g. --gt SEQ_DIR --pred SEQ_DIR)
            (only,) = flat
            found[s] = flat[only]
            used.add(only)
            continue
        why[s] = "no prediction file (scored as all missed)"
    extra = sorted(k for k in flat if k not in used)
    return found, extra, why


def read_checked(path: Path, is_gt: bool) -> tuple[np.ndarray, list[str]]:
    """Rows (frame, id, x, y, w, h, conf) of a MOTChallenge file, through mot_metrics.parse_mot, after dropping
    malformed lines (listed in the returned problems)."""
    import numpy as np

    from fm_assets.evaluation.mot_metrics import parse_mot

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return np.zeros((0, 7)), [f"{path.name}: unreadable ({exc})"]
    good: list[str] = []
    bad: list[str] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        reason = None
        if len(parts) < 6:
            reason = "fewer than 6 fields"
        else:
            try:
                vals = [float(p) for p in parts[:7]]
            except ValueError:
                reason = "not a number"
            else:
                if not all(np.isfinite(vals)):
                    reason = "not finite"
                elif vals[0] < 1 or vals[0] != int(vals[0]):
                    reason = "frame is not an integer >= 1"
                elif vals[1] != int(vals[1]):
                    reason = "id is not an integer"
                elif vals[4] <= 0 or vals[5] <= 0:
                    reason = "width or height <= 0"
                else:
                    good.append(",".join(parts[:6] + [parts[6] if len(parts) > 6 else "1"]))
        if reason:
            bad.append(f"line {no}: {line.strip()[:60]!r} ({reason})")
    problems = []
    if bad:
        problems.append(f"{path.name}: {len(bad)} malformed line(s) skipped: " + "; ".join(bad[:3])
                        + (" ..." if len(bad) > 3 else ""))
    return parse_mot("\n".join(good), is_gt), problems


def _dedupe(arr: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Keep the first row of each (frame, id): TrackEval requires ids to be unique per frame."""
    import numpy as np

    if not len(arr):
        return arr, []
    _, first = np.unique(arr[:, :2], axis=0, return_index=True)
    if len(first) == len(arr):
        return arr, []
    keep = np.sort(first)
    return arr[keep], [f"{name}: {len(arr) - len(keep)} row(s) repeat an id on a frame (the first is kept)"]


# --------------------------------------------------------------------------------------------------
# Scoring


def _summary(clear: dict, ident: dict, hota: dict, data_ids: tuple[int, int]) -> dict:
    """The same keys as mot_metrics.evaluate, from TrackEval's (combined) results."""
    import numpy as np

    return {
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDF1": float(ident["IDF1"]),
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])), "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]), "MT": int(clear["MT"]), "ML": int(clear["ML"]), "gt_ids": data_ids[0],
        "pred_ids": data_ids[1],
    }


def combine(pairs: dict[str, tuple[np.ndarray, np.ndarray, int | None]]) -> dict:
    """TrackEval's combination over sequences (counts summed, then the metrics) of SEQ -> (gt, pred, n_frames)."""
    import contextlib
    import io

    from trackeval.metrics import CLEAR, HOTA, Identity

    from fm_assets.evaluation.mot_metrics import sequence_data

    with contextlib.redirect_stdout(io.StringIO()):
        metrics = (CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
                   Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False}), HOTA())
        raw: list[dict] = [{}, {}, {}]
        ids = [0, 0]
        for seq, (gt, pred, n) in pairs.items():
            data = sequence_data(gt, pred, n)
            ids[0] += data["num_gt_ids"]
            ids[1] += data["num_tracker_ids"]
            for k, m in enumerate(metrics):
                raw[k][seq] = m.eval_sequence(data)
        combined = [m.combine_sequences(r) for m, r in zip(metrics, raw)]
    return _summary(*combined, (ids[0], ids[1]))


def evaluate_dirs(gt: Path, pred: Path) -> dict:
    """Every ground-truth sequence scored against its predictions (missing ones as all missed), the combined
    scores, extra prediction files and the problems found."""
    import numpy as np

    from fm_assets.evaluation.mot_metrics import evaluate

    gts = find_gt(gt)
    if not gts:
        raise FileNotFoundError(f"no ground truth under {gt} (DIR/SEQ/gt/gt.txt, DIR/SEQ/gt.txt or DIR/SEQ.gt.txt)")
    preds, extra, why = find_pred(pred, list(gts))
    rows, pairs = [], {}
    for seq, gt_file in gts.items():
        problems: list[str] = []
        g, p_gt = read_checked(gt_file, is_gt=True)
        g, p_dup = _dedupe(g, gt_file.name)
        problems += p_gt + p_dup
        status = "ok"
        if seq in preds:
            p, p_pred = read_checked(preds[seq], is_gt=False)
            p, p_dup = _dedupe(p, preds[seq].name)
            problems += p_pred + p_dup
        else:
            p = np.zeros((0, 7))
            status = "missing"
            problems.append(why.get(seq, "no prediction file (scored as all missed)"))
        n = seq_length(gt_file, seq)
        if n is not None:
            late = int((p[:, 0] > n).sum()) if len(p) else 0
            if late:
                problems.append(f"{late} prediction row(s) after the last frame ({n}) are ignored")
                p = p[p[:, 0] <= n]
            late_gt = int((g[:, 0] > n).sum()) if len(g) else 0
            if late_gt:
                problems.append(f"{late_gt} ground-truth row(s) after seqLength {n} are ignored")
                g = g[g[:, 0] <= n]
        if not len(g):
            problems.append("the ground truth has no rows (every prediction is a false positive)")
        if status == "ok" and problems:
            status = "problems"
        m = evaluate(g, p, n)
        rows.append({"sequence": seq, "status": status, **m, "frames": int(n or max(
            g[:, 0].max(initial=0), p[:, 0].max(initial=0))), "gt_file": str(gt_file),
            "pred_file": str(preds[seq]) if seq in preds else None, "problems": problems})
        pairs[seq] = (g, p, n)
    combined = combine(pairs)
    rows.append({"sequence": "COMBINED", "status": "ok" if all(r["status"] == "ok" for r in rows) else "problems",
                 **combined, "frames": sum(r["frames"] for r in rows), "gt_file": None, "pred_file": None,
                 "problems": []})
    return {"sequences": rows, "extra": extra}


# --------------------------------------------------------------------------------------------------
# Results in the lake, and the inputs of the command (fm_assets.cli.eval_grounded / eval_mot)


def write_lake_mot(result: dict, lake) -> str:
    from datetime import datetime

    import polars as pl

    created = datetime.fromisoformat(result["created"])
    schema = {"run_name": pl.String, "created_at": pl.Datetime("us", "UTC"), "gt": pl.String, "pred": pl.String,
              "sequence": pl.String, "status": pl.String, "MOTA": pl.Float64, "IDF1": pl.Float64,
              "HOTA": pl.Float64, "MOTP": pl.Float64, "DetA": pl.Float64, "AssA": pl.Float64, "IDSW": pl.Int64,
              "FP": pl.Int64, "FN": pl.Int64, "MT": pl.Int64, "ML": pl.Int64, "gt_ids": pl.Int64,
              "pred_ids": pl.Int64, "frames": pl.Int64, "problems": pl.String}
    rows = [{"run_name": result["run_name"], "created_at": created, "gt": result["gt"], "pred": result["pred"],
             **{k: r[k] for k in ("sequence", "status", *COLUMNS, "frames")},
             "problems": "; ".join(r["problems"]) or None} for r in result["sequences"]]
    return lake.write_parquet(f"eval_mot/{result['run_name']}.parquet", pl.DataFrame(rows, schema=schema))
