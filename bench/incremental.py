"""Benchmark: `fm run` again over a folder it has labelled (issue 14: a second run over an unchanged folder >= 20x
faster than the first, with 0 LLM calls; answered by the quick check, fm_resources/quickcheck.py), again with the
quick check's memo removed (Dagster's plan decides, as after any change), then with one stage's config changed
(only that stage and what follows rerun), then with `--force`.

Through the real `fm` command (subprocesses), one fresh FM_HOME, on the videos of ../shared/data/videos (default) or
the paths given. The LLM is the OpenAI-compatible test server of tests/llm_server.py on 127.0.0.1 answering every
caption request with a caption and every question request with one question that agrees with the facts and one
that contradicts them (tests/helpers.scripted_model, the model of tests/assets/test_language.py), so the first run
makes real LLM calls over HTTP; the counts below are the requests the server received. Materializations per asset come from the Dagster instance.

    .venv/bin/python bench/incremental.py --markdown
    .venv/bin/python bench/incremental.py some.mp4 other.mp4 --json /tmp/incremental.json

At scale (`--many N`): N distinct 3 s videos (tests/media.moving_square: a square moving over a plain
background, seeded by its number, so each has its own content and id) are labelled by a first run; then the
second run over the unchanged folder, and a third after 10 new videos were added (the "10,000 labelled videos
plus 10 new" case of issue 14, at N): what a second run costs per labelled video, and whether the 10 new ones
are all that is labelled.

    .venv/bin/python bench/incremental.py --many 200 --markdown
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py (bench/ is the script folder, first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
FM = ROOT / ".venv" / "bin" / "fm"
ASSETS = ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs", "splits")


def materializations(home: Path) -> dict[str, int]:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return {a: len(instance.fetch_materializations(AssetKey(a), limit=10000).records) for a in ASSETS}


def fm_run(folder: Path, home: Path, env: dict, server, *extra: str) -> dict:
    calls = server.calls
    before = materializations(home) if (home / "dagster").exists() else dict.fromkeys(ASSETS, 0)
    started = time.perf_counter()
    p = subprocess.run([str(FM), "run", str(folder), "-q", *extra], env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if p.returncode:
        raise SystemExit(f"fm run {' '.join(extra)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    after = materializations(home)
    return {"seconds": seconds, "llm_calls": server.calls - calls, "closing": p.stderr.strip().splitlines()[-1],
            "rerun": {a: after[a] - before[a] for a in ASSETS if after[a] > before[a]}}


def many(n: int, base: Path, env: dict, server) -> dict:
    """First run over n tiny videos, the second over the unchanged folder, a third with 10 more."""
    from tests.media import moving_square

    folder, home = base / "videos", base / "home"
    for i in range(n):
        moving_square(folder / f"v{i:05d}.mp4", i)
    runs = {f"first ({n} videos)": fm_run(folder, home, env, server),
            f"second (unchanged, {n} videos)": fm_run(folder, home, env, server)}
    for i in range(n, n + 10):
        moving_square(folder / f"v{i:05d}.mp4", i)
    runs[f"third ({n} unchanged + 10 new)"] = fm_run(folder, home, env, server)
    return runs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help=f"video files (default: every video in {DEFAULT_VIDEOS})")
    ap.add_argument("--many", type=int, metavar="N", help="N generated 3 s videos instead (see above)")
    ap.add_argument("--json")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    from tests.helpers import scripted_model
    from tests.llm_server import start_server

    videos = [Path(p) for p in args.paths] or ([] if args.many else sorted(DEFAULT_VIDEOS.glob("*.mp4")))
    if not videos and not args.many:
        print(f"no videos: give paths, or put ../shared/data beside the project ({DEFAULT_VIDEOS})", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="fm-bench-incremental-"))
    folder, home = base / "videos", base / "home"
    folder.mkdir()
    for v in videos:
        (folder / v.name).symlink_to(v.resolve())
    config = base / "trajectories.yaml"
    config.write_text("ops:\n  trajectories:\n    config:\n      smooth_s: 0.6\n")
    import dagster

    result: dict = {"machine": machine.machine_facts(Dagster=dagster.__version__),
                    "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join(["bench/incremental.py", *argv]),
                    "videos": [v.name for v in videos] or [f"{args.many} generated 3 s videos (+10)"]}
    with start_server(scripted_model) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_"))}
        env.update(FM_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True", FM_LLM_MODEL="openai/bench",
                   FM_LLM_API_BASE=server.base_url, FM_LLM_API_KEY="bench-key")
        if args.many:
            runs = many(args.many, base, env, server)
        else:
            runs = {"first": fm_run(folder, home, env, server),
                    "second (unchanged)": fm_run(folder, home, env, server)}
            (home / "up-to-date.json").unlink(missing_ok=True)  # fm_resources/quickcheck.py's memo
            runs |= {"unchanged, memo removed (Dagster's plan)": fm_run(folder, home, env, server),
                     "trajectories config changed": fm_run(folder, home, env, server, "--config", str(config)),
                     "--force": fm_run(folder, home, env, server, "--force", "--config", str(config))}
    result["runs"] = runs
    first, second = list(runs.values())[:2]
    result["ratio_first_to_second"] = first["seconds"] / second["seconds"]
    for name, r in runs.items():
        print(f"{name}: {r['seconds']:.1f} s, {r['llm_calls']} LLM calls, rerun {r['rerun']}; {r['closing']}")
    print(f"first / second: {result['ratio_first_to_second']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        print(machine.run_header(result, f"Videos: {', '.join(result['videos'])}."))
        print("| fm run | s | LLM calls | assets materialized again (partitions) |\n|---|--:|--:|---|")
        for name, r in runs.items():
            rerun = ", ".join(f"{a} {n}" for a, n in r["rerun"].items()) or "none"
            print(f"| {name} | {r['seconds']:.1f} | {r['llm_calls']} | {rerun} |")
        print(f"\nfirst / second (unchanged): **{result['ratio_first_to_second']:.1f}x**")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
