"""`fm eval mot`: the folder layouts, bad input (missing and extra sequences, malformed lines, repeated ids, rows
after the last frame), the combination over sequences, and the lake table. The reference scores on TUD-Campus
(../shared/data): tests/e2e/test_eval_mot.py."""


import numpy as np
import pytest

from fm_assets.evaluation.mot import combine, evaluate_dirs, find_gt, find_pred, read_checked, write_lake_mot
from fm_assets.evaluation.mot_metrics import evaluate, parse_mot


def lines(*rows) -> str:
    return "".join(",".join(str(v) for v in r) + "\n" for r in rows)


def one_object(frames=range(1, 5), oid=1, x=0) -> str:
    return lines(*[(f, oid, x, 0, 10, 10, 1, -1, -1, -1) for f in frames])


def test_layouts(tmp_path):
    (tmp_path / "gt" / "A" / "gt").mkdir(parents=True)
    (tmp_path / "gt" / "A" / "gt" / "gt.txt").write_text(one_object())  # MOTChallenge
    (tmp_path / "gt" / "B").mkdir()
    (tmp_path / "gt" / "B" / "gt.txt").write_text(one_object())  # ../shared/data/mot
    (tmp_path / "gt" / "C.gt.txt").write_text(one_object())  # synthetic scenes
    gts = find_gt(tmp_path / "gt")
    assert sorted(gts) == ["A", "B", "C"]
    assert find_gt(tmp_path / "gt" / "B") == {"B": tmp_path / "gt" / "B" / "gt.txt"}
    p = tmp_path / "pred"
    (p / "data").mkdir(parents=True)
    (p / "A.txt").write_text("")  # DIR/SEQ.txt
    (p / "data" / "B.txt").write_text("")  # TrackEval's DIR/data/SEQ.txt
    (p / "C-0123abcd.txt").write_text("")  # `fm export mot`: <video_id>.txt
    (p / "D.txt").write_text("")
    found, extra, why = find_pred(p, ["A", "B", "C"])
    assert {k: v.relative_to(p).as_posix() for k, v in found.items()} == {
        "A": "A.txt", "B": "data/B.txt", "C": "C-0123abcd.txt"}
    assert extra == ["D"] and not why
    (p / "C-99999999.txt").write_text("")
    found, _, why = find_pred(p, ["C"])
    assert "C" not in found and "several prediction files" in why["C"]


def test_malformed_lines_are_reported_and_skipped(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text(one_object() + "x,1,0,0,10,10\n" + "5,1,0,0\n" + "6,1,0,0,-3,10,1\n" + "0,1,0,0,10,10\n"
                 + "7,1,0,0,10,10\n")  # the last: 6 fields, conf defaults to 1
    arr, problems = read_checked(f, is_gt=False)
    assert len(arr) == 5 and arr[-1].tolist() == [7, 1, 0, 0, 10, 10, 1]
    assert len(problems) == 1 and "4 malformed line(s)" in problems[0]
    assert "line 5" in problems[0] and "not a number" in problems[0] and "fewer than 6 fields" in problems[0]
    g, _ = read_checked(f, is_gt=True)
    assert len(g) == 5


def test_bad_input_never_drops_a_sequence(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for seq, text in {"A": one_object(), "B": one_object(range(1, 3))}.items():
        (gt / seq).mkdir(parents=True)
        (gt / seq / "gt.txt").write_text(text)
    (gt / "A" / "seqinfo.ini").write_text("[Sequence]\nname=A\nseqLength=4\n")
    pred.mkdir()
    # A: perfect, plus a malformed line, a repeated id on frame 1 and a row after the last frame (5 > seqLength 4)
    (pred / "A.txt").write_text(one_object() + "garbage\n" + lines((1, 1, 50, 50, 10, 10, 1)) +
                                lines((5, 1, 0, 0, 10, 10, 1)))
    (pred / "C.txt").write_text(one_object())  # no such sequence
    res = evaluate_dirs(gt, pred)  # B has no prediction
    a, b, combined = res["sequences"]
    assert (a["sequence"], a["status"], a["MOTA"], a["FP"], a["frames"]) == ("A", "problems", 1.0, 0, 4)
    joined = " | ".join(a["problems"])
    assert "1 malformed line" in joined and "repeat an id" in joined and "after the last frame (4)" in joined
    # B: scored as all missed, not skipped
    assert (b["sequence"], b["status"], b["FN"], b["MOTA"], b["IDF1"]) == ("B", "missing", 2, 0.0, 0.0)
    assert b["pred_file"] is None and "no prediction file" in b["problems"][0]
    assert res["extra"] == ["C"]
    # combined: counts summed; MOTA = 1 - (FN + FP + IDSW) / ground-truth boxes = 1 - 2 / 6
    assert (combined["FN"], combined["FP"], combined["IDSW"]) == (2, 0, 0)
    assert combined["MOTA"] == pytest.approx(1 - 2 / 6) and combined["status"] == "problems"


def test_combined_over_one_sequence_is_the_wrappers_score():
    gt = parse_mot(one_object() + one_object(range(2, 6), oid=2, x=40))
    pred = parse_mot(lines((1, 7, 0, 0, 10, 10, 1), (2, 7, 1, 0, 10, 10, 1), (3, 8, 0, 0, 10, 10, 1),
                           (4, 8, 50, 50, 10, 10, 1), (3, 9, 40, 0, 10, 10, 1)))
    single = evaluate(gt, pred)
    combined = combine({"s": (gt, pred, None)})
    for k, v in single.items():
        assert combined[k] == pytest.approx(v), k


def test_cli_reports_and_writes_the_lake_table(tmp_path, capsys, fm_home):
    from fm_assets.cli import eval_mot
    from fm_resources.lake import Lake
    from fm_resources.warehouse import Warehouse

    gt, pred = tmp_path / "gt", tmp_path / "pred"
    (gt / "A").mkdir(parents=True)
    (gt / "A" / "gt.txt").write_text(one_object())
    pred.mkdir()
    (pred / "A.txt").write_text(one_object() + "nonsense\n")
    lake = Lake(root=str(tmp_path / "lake"))
    rc = eval_mot.cmd_mot(cli_args(gt, pred, run_name="run one"), lake=lake)
    printed = capsys.readouterr().out
    assert rc == 0 and "malformed" in printed and "COMBINED" in printed
    rows = Warehouse(lake=lake).query("select * from eval_mot order by sequence")
    assert rows["run_name"].to_list() == ["run-one", "run-one"] and rows["sequence"].to_list() == ["A", "COMBINED"]
    assert rows["MOTA"].to_list() == [1.0, 1.0] and "malformed" in rows["problems"][0]
    assert eval_mot.cmd_mot(cli_args(gt, pred, strict=True), lake=lake) == 1  # problems + --strict
    assert eval_mot.cmd_mot(cli_args(tmp_path / "nothing", pred), lake=lake) == 1
    assert "no ground truth" in capsys.readouterr().err


def cli_args(gt, pred, run_name=None, strict=False, allow_missing=False):
    import argparse

    return argparse.Namespace(gt=str(gt), pred=str(pred), out=None, run_name=run_name, no_lake=False,
                              strict=strict, allow_missing=allow_missing, baseline=None)


def test_sequence_names_match_whatever_their_case_and_export_ids_match_their_sequence(tmp_path):
    """`fm export mot` writes <video_id>.txt, e.g. tud-campus-1a2b3c4d.txt for TUD-Campus.mp4: it is TUD-Campus's
    prediction; a plain name matches in any case; two files for one sequence are an error, not a guess."""
    p = tmp_path / "pred"
    p.mkdir()
    (p / "tud-campus-1a2b3c4d.txt").write_text("")
    (p / "mot17-02.txt").write_text("")
    (p / "Other-Seq-9.txt").write_text("")
    found, extra, why = find_pred(p, ["TUD-Campus", "MOT17-02", "ADL-Rundle-6"])
    assert {k: v.name for k, v in found.items()} == {"TUD-Campus": "tud-campus-1a2b3c4d.txt",
                                                       "MOT17-02": "mot17-02.txt"}
    assert extra == ["Other-Seq-9"] and list(why) == ["ADL-Rundle-6"]
    (p / "MOT17-02.txt").write_text("")
    found, _, why = find_pred(p, ["MOT17-02"])
    assert "MOT17-02" not in found and "several prediction files" in why["MOT17-02"]


def test_a_missing_or_unmatched_prediction_fails_the_command_unless_allowed(tmp_path, capsys):
    from fm_assets.cli import eval_mot

    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for seq in ("A", "B"):
        (gt / seq).mkdir(parents=True)
        (gt / seq / "gt.txt").write_text(one_object())
    pred.mkdir()
    (pred / "a.txt").write_text(one_object())
    (pred / "Z.txt").write_text(one_object())
    args = cli_args(gt, pred)
    args.no_lake = True
    assert eval_mot.cmd_mot(args) == 1
    err = capsys.readouterr().err
    assert "no prediction for B" in err and "matching no sequence: Z" in err and "--allow-missing" in err
    args.allow_missing = True
    assert eval_mot.cmd_mot(args) == 0  # scores printed either way; B counts as all missed
    (pred / "Z.txt").unlink()
    (pred / "b.txt").write_text(one_object())
    args.allow_missing = False
    assert eval_mot.cmd_mot(args) == 0


def test_write_lake_mot_schema_is_stable_for_an_empty_prediction(tmp_path):
    from fm_resources.lake import Lake

    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "S.gt.txt").write_text(one_object())
    res = evaluate_dirs(tmp_path / "gt", tmp_path / "nothing")
    res.update(run_name="r", created="2026-01-01T00:00:00+00:00", gt="g", pred="p")
    lake = Lake(root=str(tmp_path / "lake"))
    write_lake_mot(res, lake)
    df = lake.read_parquet("eval_mot/r.parquet")
    assert df["status"].to_list() == ["missing", "problems"] and df["FN"].to_list() == [4, 4]
    assert np.isclose(df["MOTA"].to_list(), [0.0, 0.0]).all()
