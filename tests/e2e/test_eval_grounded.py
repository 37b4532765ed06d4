"""`fm eval grounded` through the real `fm` console script, on a groundmore export with bad predictions."""

import json

import pytest

from tests.conftest import run_fm
from tests.helpers import write_boxes, write_export


def test_the_fm_command_on_an_export_reports_bad_input(tmp_path):
    """The real `fm` console script: a groundmore export as truth, one right, one missing and one broken
    prediction plus an extra id; table, JSON and exit codes."""
    q = {"question": "?", "answer": "it", "obj_id": 2, "action_start": "00:02", "action_end": "00:04"}
    write_export(tmp_path / "gt", {"qa1": {**q, "q_type": "Causal"}, "qa2": {**q, "q_type": "Sequential"},
                                   "qa3": {**q, "q_type": "Descriptive"}})
    pred = tmp_path / "pred"
    inside = [12, 13, 15, 16, 18, 19, 21, 22]  # frames 12..23 of floor(linspace(0, 29, 20)): 2 s to 4 s at 6 fps
    write_boxes(pred, "qa1", {f: [8, 6, 14, 10] for f in inside})  # object 2's box exactly, in the window
    (pred / "qa3.json").write_text("[1, 2")
    write_boxes(pred, "zzz", {})
    out = tmp_path / "r.json"
    args = ["eval", "grounded", "--gt", str(tmp_path / "gt"), "--pred", str(pred), "--out", str(out), "--no-lake"]
    r = run_fm(*args, home=tmp_path / "home", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "causal" in r.stdout and "missing" in r.stdout and "qa2" in r.stdout and "zzz" in r.stdout
    res = json.loads(out.read_text())
    assert [(x["qa_id"], x["status"], x["J"]) for x in res["questions"]] == [
        ("qa1", "ok", 1.0), ("qa2", "missing", 0.0), ("qa3", "broken", 0.0)]
    assert res["extra_ids"] == ["zzz"]
    overall = res["summary"][-1]
    assert overall["JF"] == pytest.approx(100 / 3) and (overall["missing"], overall["broken"]) == (1, 1)
    assert run_fm(*args, "--strict", home=tmp_path / "home", timeout=120).returncode == 1
    r = run_fm("eval", "grounded", "--gt", str(tmp_path / "gt"), home=tmp_path / "home", timeout=120)
    assert r.returncode == 2 and "--pred" in r.stderr
