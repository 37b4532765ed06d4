"""MOT metrics (TrackEval) reproduce the reference figures on TUD-Campus (../shared/data)."""

import pytest

from fm_assets.evaluation.mot_metrics import evaluate, read_mot
from tests.conftest import SHARED_DATA, needs_shared


@needs_shared
def test_reproduces_the_reference_scores_on_tud_campus():
    d = SHARED_DATA / "mot" / "TUD-Campus"
    m = evaluate(read_mot(d / "gt.txt", is_gt=True), read_mot(d / "sample_tracker_output.txt"), n_frames=71)
    # ../shared/data/README.md: py-motmetrics 1.4.0 gives MOTA 0.526, IDF1 0.558, 7 id switches
    assert m["MOTA"] == pytest.approx(0.526, abs=5e-4)
    assert m["IDF1"] == pytest.approx(0.558, abs=5e-4)
    assert m["IDSW"] == 7
