"""Yield and precision of the labels on footage the rules were not written for (issue 13), through the real
`fm` commands: `fm run` on a folder of videos (fresh FM_HOME, embedded defaults), then `fm eval labels --gt`
(every kept question's fact recomputed from ground-truth boxes) and, for TUD-Campus, `fm export mot` +
`fm eval mot` (whole-video MOTA / IDF1).

Sets:
    tud      ../shared/data/videos/TUD-Campus.mp4 with ../shared/data/mot (human MOT truth)
    dev      the "wild" synthetic family, fm_assets.synthetic.WILD_DEV_SEEDS (the seeds used while developing)
    heldout  the "wild" family, WILD_HELDOUT_SEEDS (never looked at while tuning; report apart)
    fresh    the "wild" family, WILD_FRESH_SEEDS (added when the held-out figures had been published once;
             only ever reported)
    late     the "wild" family, WILD_LATE_SEEDS (added with the entering / leaving questions, after the fresh set
             had shown them; only ever reported)
    standard the first synthetic family's standard scenes (seed 0)

    .venv/bin/python bench/label_yield.py [--sets tud dev heldout fresh standard] [--markdown] [--keep DIR]

Targets (issue 13): >= 8 verified multiple-choice questions and >= 1 grounded question per kept clip, precision of
the rule answers >= 95 % with doubtful excluded, doubtful < 20 % of the questions; TUD-Campus MOTA >= 0.55 and
IDF1 >= 0.60 from `fm export mot`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fm_assets import synthetic as S  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FM = [sys.executable, "-m", "fm_assets.cli"] if not (ROOT / ".venv" / "bin" / "fm").exists() else [str(ROOT / ".venv" / "bin" / "fm")]


def fm(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "FM_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    p = subprocess.run([*FM, *args], env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"fm {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def videos_of(name: str, work: Path) -> tuple[Path, Path] | None:
    """(folder of videos, truth folder) of a set."""
    vids = work / name / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    if name == "tud":
        src = DATA / "videos" / "TUD-Campus.mp4"
        if not src.exists():
            print(f"skip tud: {src} not found (needs ../shared/data)", file=sys.stderr)
            return None
        (vids / src.name).unlink(missing_ok=True)
        (vids / src.name).symlink_to(src)
        return vids, DATA / "mot"
    truth = work / "truth"
    truth.mkdir(exist_ok=True)
    if name == "standard":
        for spec in S.standard_scenes():
            t = S.render_scene(spec, truth)
            (vids / t.mp4.name).unlink(missing_ok=True)
            (vids / t.mp4.name).symlink_to(t.mp4)
        return vids, truth
    seeds = {"dev": S.WILD_DEV_SEEDS, "heldout": S.WILD_HELDOUT_SEEDS, "fresh": S.WILD_FRESH_SEEDS,
             "late": S.WILD_LATE_SEEDS}[name]
    for mp4 in S.make_wild_videos(truth, seeds):
        (vids / mp4.name).unlink(missing_ok=True)
        (vids / mp4.name).symlink_to(mp4)
    return vids, truth


def run_set(name: str, work: Path) -> dict | None:
    got = videos_of(name, work)
    if got is None:
        return None
    vids, truth = got
    home = work / name / "home"
    started = time.perf_counter()
    fm(["run", str(vids), "-q"], home)
    run_s = time.perf_counter() - started
    out = work / name / "eval.json"
    fm(["eval", "labels", "--gt", str(truth), "--json", str(out), "--no-lake"], home)
    result = json.loads(out.read_text())
    res = {"set": name, "run_s": run_s, "summary": result["summary"],
           "wrong": [q for q in result["questions"] if q.get("status") == "wrong"]}
    if name == "tud":
        mot = work / name / "mot"
        fm(["export", "mot", str(mot)], home)
        scores = work / name / "mot.json"
        fm(["eval", "mot", "--gt", str(truth), "--pred", str(mot), "--out", str(scores), "--no-lake"], home)
        res["mot"] = json.loads(scores.read_text())
    return res


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def _f(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def report(results: list[dict], markdown: bool) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [f"### Label yield and precision against truth ({now})", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/label_yield.py', *sys.argv[1:]])}`", "",
             f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; embedded defaults "
             "(`motion` detector, ByteTrack over each shot, no LLM).", "",
             "| set | videos | kept clips | MCQ / clip | grounded / clip | doubtful % | correct | wrong | precision % | fm run s |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        rows = r["summary"]
        videos = len({x["video_id"] for x in rows if x["video_id"] != "ALL"})
        top = next((x for x in rows if x["video_id"] == "ALL" and x["scope"] == "overall"), None) or \
            next(x for x in rows if x["scope"] == "overall")
        lines.append(f"| {r['set']} | {videos} | {top['kept_clips']} | {_f(top['mcq_per_clip'])} | "
                     f"{_f(top['grounded_per_clip'])} | {_f(top['doubtful_pct'], 1)} | {top['correct']} | {top['wrong']} | "
                     f"{_pct(top['precision'])} | {r['run_s']:.0f} |")
    lines += ["", "Precision per category and grounded q_type (doubtful excluded):", "",
              "| set | scope | group | n | correct | wrong | doubtful | precision % |", "|---|---|---|--:|--:|--:|--:|--:|"]
    for r in results:
        rows = r["summary"]
        name = "ALL" if any(x["video_id"] == "ALL" for x in rows) else rows[0]["video_id"]
        for x in rows:
            if x["video_id"] == name and x["scope"] in ("category", "q_type"):
                lines.append(f"| {r['set']} | {x['scope']} | {x['group']} | {x['n']} | {x['correct']} | {x['wrong']} | "
                             f"{x['doubtful']} | {_pct(x['precision'])} |")
    for r in results:
        if "mot" in r:
            m = next(x for x in r["mot"]["sequences"] if x["sequence"] == "COMBINED")
            lines += ["", f"TUD-Campus from `fm export mot` (whole video, interpolated): MOTA {_f(m.get('MOTA'), 3)}, "
                      f"IDF1 {_f(m.get('IDF1'), 3)}, HOTA {_f(m.get('HOTA'), 3)}, IDSW {m.get('IDSW')}, "
                      f"FP {m.get('FP')}, FN {m.get('FN')}"]
    text = "\n".join(lines)
    return text if markdown else text.replace("|", " ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["tud", "dev", "heldout", "fresh"],
                    choices=["tud", "dev", "heldout", "fresh", "late", "standard"])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-label-yield-") as tmp:
        work = args.keep or Path(tmp)
        results = [r for r in (run_set(s, work) for s in args.sets) if r is not None]
        print(report(results, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
