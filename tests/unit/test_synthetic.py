"""Tests of the synthetic scene generator's pure parts: the standard scenes' specs, the direction classifier, facts
computed from keyframes. Rendering (determinism, timestamps, ground truth vs pixels, facts files):
tests/assets/test_synthetic.py."""

from __future__ import annotations

import pytest

from fm_assets import synthetic as S

REQUIRED = {"left_right", "up_down", "toward_away", "stop_and_go", "back_and_forth", "late_entry", "ordered_pair"}


def test_standard_scenes_meet_the_brief() -> None:
    specs = S.standard_scenes()
    assert REQUIRED <= {s.name for s in specs}
    for s in specs:
        assert (s.width, s.height, s.fps) == (640, 480, 25.0)
        assert 6 <= s.duration_s <= 12 and 1 <= len(s.objects) <= 3
        assert s.name.replace("_", "").isalnum()
        for _, _, x, y, w, h in S.gt_rows(s):  # fully inside the frame whenever visible
            assert x >= 0 and y >= 0 and x + w <= s.width and y + h <= s.height, s.name


def test_direction_classifier() -> None:
    diag = 800.0
    cases = {(10, 0): "right", (-10, 0): "left", (0, -10): "up", (0, 10): "down", (10, -10): "up-right",
             (-10, -10): "up-left", (10, 10): "down-right", (-10, 10): "down-left", (10, -3): "right"}
    for (dx, dy), want in cases.items():
        assert S.classify_direction(dx * 10, dy * 10, 1.0, diag, S.STATIONARY_FRAC) == want
    assert S.classify_direction(5, 0, 1.0, diag, S.STATIONARY_FRAC) == "stationary"
    assert S.classify_direction(5, 0, 1.5, diag, S.STATIONARY_FRAC) == "toward"
    assert S.classify_direction(5, 0, 0.7, diag, S.STATIONARY_FRAC) == "away"
    assert S.classify_direction(200, 0, 1.5, diag, S.STATIONARY_FRAC) == "right"


def test_facts_with_disappearance_and_holds() -> None:
    obj = S.ObjectSpec(1, "box", "red", "box", 40, 40,
                       (S.Keyframe(2.0, 100, 100), S.Keyframe(4.0, 300, 100), S.Keyframe(6.0, 100, 100)),
                       appear_s=1.0, disappear_s=5.0)
    f = S.scene_facts(S.SceneSpec("t", duration_s=8.0, objects=(obj,)))["objects"][0]
    assert f["onset_s"] == 2.0 and f["end_s"] == 5.0
    assert [(s["t0"], s["t1"], s["kind"]) for s in f["segments"]] == [(1.0, 2.0, "stop"), (2.0, 4.0, "move"),
                                                                      (4.0, 5.0, "move")]
    assert f["repetitions"] == 1  # out and (part of the way) back within the visible window
    assert f["direction"] == "right" and f["dx"] == pytest.approx(100 / 640, abs=1e-4)
