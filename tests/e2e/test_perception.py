"""detections + tracks through the real `fm` command: `fm run --until tracks` then `fm export mot` scored against the
scene's truth (tracked in `fm`'s kept tracking worker: `fm` itself never imports torch or mmdet for a short video),
and a broken detector checkpoint that stops the run before any video is read."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from fm_assets.evaluation.mot_metrics import evaluate, read_mot
from fm_assets.synthetic import render_scene, scene_by_name
from tests.conftest import FM, ROOT, run_fm


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    return d, {n: render_scene(scene_by_name(n), d) for n in ("left_right", "ordered_pair")}


# the real `fm` script, run as `fm` runs it, then which of torch and mmdet the process imported
FM_REPORTING_IMPORTS = """import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("imported:", *[m for m in ("torch", "mmdet") if m in sys.modules], file=sys.stderr)
"""


def test_fm_run_until_tracks_and_export_mot(scenes, fm_home, tmp_path):
    d, truths = scenes
    env = {**os.environ, "FM_HOME": str(fm_home)}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([sys.executable, "-c", FM_REPORTING_IMPORTS, FM, "run", str(truths["ordered_pair"].mp4),
                           "--until", "tracks"], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "imported:\n" in proc.stderr  # tracked in the kept worker, which imported them
    out = tmp_path / "mot"
    exp = run_fm("export", "mot", str(out), home=fm_home)
    assert exp.returncode == 0, exp.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files[0] == "manifest.json" and files[1].startswith("ordered_pair-") and len(files) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256((out / files[1]).read_bytes()).hexdigest()
    gt = read_mot(truths["ordered_pair"].gt, is_gt=True)
    m = evaluate(gt, read_mot(out / files[1]), n_frames=int(gt[:, 0].max()))
    assert m["MOTA"] >= 0.8 and m["IDF1"] >= 0.8, m


def test_fm_run_with_a_broken_checkpoint_stops_before_reading_videos(scenes, fm_home, tmp_path):
    _, truths = scenes
    cfg = tmp_path / "detector.yaml"
    cfg.write_text("resources:\n  detector:\n    config:\n      backend: mmdet\n"
                   "      mmdet_config: rtmdet_tiny_8xb32-300e_coco\n"
                   f"      mmdet_checkpoint: {tmp_path / 'nowhere.pth'}\n")
    proc = run_fm("run", str(truths["left_right"].mp4), "--config", str(cfg), home=fm_home)
    assert proc.returncode != 0
    assert "detector configuration error" in proc.stderr and "nowhere.pth" in proc.stderr and "no such file" in proc.stderr
    assert not (fm_home / "lake").exists()  # nothing registered, nothing written
