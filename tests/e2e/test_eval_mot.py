"""`fm eval mot` reproduces the reference scores on TUD-Campus (../shared/data) from every folder layout, and scores
`fm export mot` of the labelled video as that sequence."""

import json

import pytest

from fm_assets import cli
from tests.conftest import SHARED_DATA, needs_shared, run_fm, shared_video

TUD = SHARED_DATA / "mot" / "TUD-Campus"
needs_tud = pytest.mark.skipif(
    not (TUD / "gt.txt").exists() or not (TUD / "sample_tracker_output.txt").exists(),
    reason=f"TUD-Campus ground truth and tracker output not found at {TUD} (the project's ../shared/data); "
           "these tests need it",
)


@needs_tud
@pytest.mark.parametrize("layout", ["mot-dir", "sequence-dir", "file"])
def test_reproduces_the_reference_scores_on_tud_campus(layout, tmp_path, capsys):
    gt, pred = {"mot-dir": (TUD.parent, TUD.parent), "sequence-dir": (TUD, TUD),
                "file": (TUD, TUD / "sample_tracker_output.txt")}[layout]
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "mot", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--no-lake"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "TUD-Campus" in printed and "0.526" in printed and "0.558" in printed
    seq, combined = json.loads(out.read_text())["sequences"]
    # ../shared/data/README.md: py-motmetrics 1.4.0 gives MOTA 0.526, IDF1 0.558, 7 id switches
    assert seq["sequence"] == "TUD-Campus" and seq["status"] == "ok" and seq["frames"] == 71  # seqinfo.ini
    assert seq["MOTA"] == pytest.approx(0.526, abs=5e-4) and seq["IDF1"] == pytest.approx(0.558, abs=5e-4)
    assert seq["IDSW"] == 7
    assert combined["sequence"] == "COMBINED"
    for k in ("MOTA", "IDF1", "HOTA", "MOTP", "IDSW", "FP", "FN"):
        assert combined[k] == pytest.approx(seq[k])


@needs_shared
@needs_tud
def test_fm_export_mot_is_scored_as_its_sequence(tmp_path):
    """The user's path: label TUD-Campus.mp4, `fm export mot`, `fm eval mot --gt ../shared/data/mot`: the export's
    tud-campus-<hash>.txt is TUD-Campus's prediction (not a missing sequence), and the command exits 0."""
    home = tmp_path / "home"
    r = run_fm("run", str(shared_video("TUD-Campus.mp4")), "--until", "tracks", "-q", home=home)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_fm("export", "mot", str(tmp_path / "mot"), home=home)
    assert r.returncode == 0, r.stderr[-2000:]
    (pred,) = (tmp_path / "mot").glob("tud-campus-*.txt")
    out = tmp_path / "r.json"
    r = run_fm("eval", "mot", "--gt", str(SHARED_DATA / "mot"), "--pred", str(tmp_path / "mot"), "--out", str(out),
               "--no-lake", home=home)
    assert r.returncode == 0, r.stderr[-2000:]
    (seq, combined) = json.loads(out.read_text())["sequences"]
    assert seq["sequence"] == "TUD-Campus" and seq["status"] == "ok" and seq["pred_file"] == str(pred)
    assert seq["MOTA"] > 0.3 and seq["IDF1"] > 0.3  # the embedded detector's tracks, not an all-missed sequence
