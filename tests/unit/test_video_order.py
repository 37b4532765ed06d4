"""Frames come out in presentation order even when the decoder hands them out of order (an H.264 stream that
declares a smaller B-frame reorder depth than it uses, like ../shared/data/videos/box.mp4: that real video is in
tests/e2e/test_video_order.py)."""

from types import SimpleNamespace

import pytest

from fm_resources.video import VideoError, _presentation_order


def frames(pts: list) -> list:
    return [SimpleNamespace(pts=p, dts=None, name=f"f{p}") for p in pts]


def test_out_of_order_frames_are_sorted_by_pts_within_the_buffer():
    decoded = frames([0, 101, 67, 134, 34, 234, 201, 267, 167, 367])
    out = list(_presentation_order(iter(decoded), depth=4))
    assert [p for p, _ in out] == sorted(p.pts for p in decoded)
    assert [f.name for _, f in out] == [f"f{p}" for p in sorted(p.pts for p in decoded)]


def test_in_order_frames_pass_through_and_missing_timestamps_are_an_error():
    assert [p for p, _ in _presentation_order(iter(frames([0, 1, 2, 3])))] == [0, 1, 2, 3]
    with pytest.raises(VideoError, match="no timestamp"):
        list(_presentation_order(iter(frames([0, None]))))
