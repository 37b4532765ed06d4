"""Baseline scores on the demo data, so a user sees evaluation numbers at once (issue 6, part 4).

Runs, against a fresh FM_HOME: `fm demo` (7 synthetic scenes, embedded defaults, template writer), then
- `fm eval mcq --baseline blind --split all` (always the train split's most frequent answer letter);
- `fm eval mcq --baseline caption-only` and `--text-only` (question alone) against a LOCAL stand-in for a text model:
  tests/llm_server.py on 127.0.0.1 answering with a deterministic word-overlap rule (the option sharing the most
  words with the caption; ties: the earliest letter). It is not a model; it shows what the caption alone gives
  away, and the plumbing a real model goes through (`--model openai/gpt-4o-mini` etc. with a key);
- `fm eval grounded --baseline largest-moving` (GroundMoRe J / F / J&F of the largest moving object's boxes);
- `fm eval mot` on ../shared/data/mot/TUD-Campus (the sample tracker output; MOTA 0.526 / IDF1 0.558 expected).

    python bench/eval_baselines.py [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.llm_server import start_server  # noqa: E402

FM = str(Path(sys.executable).with_name("fm"))
STOP = {"the", "a", "an", "of", "to", "and", "it", "is", "in", "at", "them", "objects", "object", "its"}


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP]


def word_overlap(body: dict) -> str:
    text = body["messages"][-1]["content"]
    caption = text.split("Description of the clip:", 1)[1].split("Question:", 1)[0] if "Description of the clip:" in text else ""
    seen = set(words(caption))
    options = dict(re.findall(r"^([A-D])\. (.*)$", text, re.M))
    score = {L: sum(w in seen for w in words(o)) / max(1, len(words(o))) for L, o in options.items()}
    return max("ABCD", key=lambda L: (score.get(L, 0), -"ABCD".index(L)))


def fm(*args: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([FM, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"fm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def mcq_overall(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout)  # overall figures at the top level, per category under "categories"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fm-eval-bench-"))
    env = {**os.environ, "FM_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    fm("demo", env=env)
    rows = []
    blind = mcq_overall(fm("eval", "mcq", "--baseline", "blind", "--split", "all", "--format", "json", env=env))
    rows.append(("MCQ", "blind (train's most frequent letter)", blind))
    with start_server(word_overlap) as server:
        local = {**env, "FM_LLM_API_BASE": server.base_url, "FM_LLM_API_KEY": "local"}
        for label, extra in (("caption-only, word-overlap stand-in", ["--baseline", "caption-only"]),
                             ("question only, same stand-in", ["--text-only"])):
            out = fm("eval", "mcq", "--model", "openai/word-overlap-rule", "--split", "all", "--no-cache",
                     "--format", "json", *extra, env=local)
            rows.append(("MCQ", label, mcq_overall(out)))
    result = home / "grounded.json"
    fm("eval", "grounded", "--baseline", "largest-moving", "--pred", str(home / "pred"), "--out", str(result), env=env)
    grounded = json.loads(result.read_text())
    mot_dir = ROOT.parent / "shared" / "data" / "mot"
    mot = None
    if (mot_dir / "TUD-Campus" / "gt.txt").exists():
        mot = fm("eval", "mot", "--gt", str(mot_dir), "--pred", str(mot_dir), env=env).stdout
    else:
        print(f"skipping MOT: {mot_dir} not found")

    if args.markdown:
        print("| task | baseline | n | score | 95 % CI |\n|---|---|---|---|---|")
        for task, label, r in rows:
            print(f"| {task} | {label} | {r['questions']} | {100 * r['accuracy']:.1f} % | "
                  f"{100 * r['ci95_low']:.1f}-{100 * r['ci95_high']:.1f} % |")
        for g in grounded["summary"]:
            print(f"| grounded ({g['q_type']}) | largest moving object | {g['questions']} | "
                  f"J {g['J']:.2f} F {g['F']:.2f} J&F {g['JF']:.2f} | |")
    else:
        print(json.dumps({"mcq": [(t, label, r) for t, label, r in rows], "grounded": grounded["summary"]}, indent=1,
                         default=str))
    if mot:
        print(mot)


if __name__ == "__main__":
    main()
