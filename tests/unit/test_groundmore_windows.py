"""GroundMoRe names time in whole seconds: the exported span of a clip, a question's window in whole seconds, and
the frame window GroundMoRe's evaluator derives from the "MM:SS" strings (its arithmetic, re-derived here)."""

import pytest

from fm_assets.export.groundmore import evaluator_window, groundmore_vid, inward_window, seconds_window, whole_seconds


@pytest.mark.parametrize(("start", "end", "span"), [(0.0, 8.0, (0, 8)), (0.96, 8.04, (1, 8)), (59.5, 65.2, (60, 65)),
                                                     (2.1, 2.9, (3, 3))])
def test_a_clip_is_exported_over_its_whole_seconds(start, end, span):
    assert whole_seconds({"start_s": start, "end_s": end}) == span


def test_the_key_ends_with_the_span_as_the_evaluator_parses_it():
    vid = groundmore_vid({"clip_id": "v-1a2b3c4d-003", "start_s": 59.5, "end_s": 125.2})
    assert vid == "v-1a2b3c4d-003_0100_0205"
    tail = vid[-9:].split("_")[0]  # the evaluator: video[-9:].split("_")[0], then MM:SS
    assert int(tail[:2]) * 60 + int(tail[2:]) == 60


@pytest.mark.parametrize(("t0", "t1", "span", "want"), [
    (0.5, 6.504, (0, 8), (1, 7)),  # each end to the nearest second
    (3.2, 3.4, (0, 8), (3, 4)),  # under a second: one second
    (7.6, 7.9, (0, 8), (7, 8)),  # ... kept inside the span
    (6.7, 9.0, (0, 8), (7, 8)),  # clamped to the span
    (-1.0, 0.2, (1, 8), None),  # nothing of it inside the span
    (8.2, 9.0, (0, 8), None),
])
def test_seconds_window(t0, t1, span, want):
    assert seconds_window(t0, t1, span) == want


def test_inward_window_stays_inside_the_motion():
    assert inward_window(0.5, 6.5, (0, 8)) == (1, 6)
    assert inward_window(3.2, 3.9, (0, 8)) is None


def test_evaluator_window_is_groundmores_arithmetic():
    # (start - clip start) * 6 .. (end - clip start) * 6 - 1, both ends inclusive
    assert evaluator_window("00:01", "00:07", "clip_0000_0008") == (6, 41)
    assert evaluator_window("00:04", "00:05", "x_0003_0010") == (6, 11)
    assert evaluator_window("01:01", "01:03", "x_0100_0110", fps=5) == (5, 14)
    first, last = evaluator_window("00:05", "00:05", "x_0003_0010")
    assert last < first  # an empty window: every frame's truth is empty, as in the evaluator
