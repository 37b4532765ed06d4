"""MOT metrics (TrackEval) on hand-computed cases. The reference figures on TUD-Campus (../shared/data):
tests/e2e/test_mot_metrics.py."""

import numpy as np
import pytest

from fm_assets.evaluation.mot_metrics import evaluate, parse_mot


def test_perfect_tracks_score_one():
    gt = parse_mot("1,1,10,10,20,40,1,-1,-1,-1\n2,1,12,10,20,40,1,-1,-1,-1\n2,2,100,100,30,30,1,-1,-1,-1\n")
    m = evaluate(gt, gt.copy())
    assert (m["MOTA"], m["IDF1"], m["IDSW"]) == (1.0, 1.0, 0)
    assert m["HOTA"] == pytest.approx(1.0)


def test_hand_computed_case():
    # gt: one object on 4 frames. pred: frames 1-2 id 7 (match), frame 3 id 8 (match, an id switch),
    # frame 4 a box elsewhere (FP + FN)
    gt = parse_mot("".join(f"{f},1,0,0,10,10,1,-1,-1,-1\n" for f in range(1, 5)))
    pred = parse_mot("1,7,0,0,10,10,1\n2,7,1,0,10,10,1\n3,8,0,0,10,10,1\n4,8,50,50,10,10,1\n")
    m = evaluate(gt, pred)
    assert (m["FN"], m["FP"], m["IDSW"]) == (1, 1, 1)
    assert m["MOTA"] == pytest.approx(1 - (1 + 1 + 1) / 4)
    # IDF1: best id mapping 1->7 gives IDTP 2; IDF1 = 2*2 / (4 + 4)
    assert m["IDF1"] == pytest.approx(0.5)


def test_ignored_gt_rows_and_empty_prediction():
    gt = parse_mot("1,1,0,0,10,10,1\n1,2,50,50,10,10,0\n", is_gt=True)
    assert len(gt) == 1
    m = evaluate(gt, np.zeros((0, 7)))
    assert m["MOTA"] == 0.0 and m["FN"] == 1
