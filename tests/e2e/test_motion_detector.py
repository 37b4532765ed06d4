"""The embedded `motion` detector (fm_resources.detection.motion.MotionDetector) on a real clip: TUD-Campus's
pedestrians (../shared/data), scored against its MOTChallenge ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from fm_resources.detection.motion import MotionDetector, _iou
from tests.conftest import SHARED_DATA, needs_shared, shared_video


@needs_shared
def test_person_label_on_real_pedestrians():
    from fm_resources.video import decode

    path = shared_video("TUD-Campus.mp4")
    gt_path = SHARED_DATA / "mot" / "TUD-Campus" / "gt.txt"
    if not path.exists() or not gt_path.exists():
        pytest.skip(f"TUD-Campus video or gt not found under {SHARED_DATA}")
    frames = [f.rgb() for f in decode(path)]
    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    dets = MotionDetector().detect_clip(frames)
    matched = persons = 0
    for i, d in enumerate(dets):
        g = gt[gt[:, 0] == i + 1]
        if not len(d) or not len(g):
            continue
        gb = np.c_[g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]].astype(np.float32)
        for k in np.flatnonzero(_iou(d.boxes, gb).max(axis=1) >= 0.5):
            matched += 1
            persons += d.labels[k] == "person"
            assert (d.labels[k] == "person") == (d.extra["person_score"][k] > 0.5)
    assert matched >= 100, f"only {matched} detections match a TUD-Campus pedestrian"
    assert persons >= 0.4 * matched, f"{persons}/{matched} matched pedestrians labelled person"
