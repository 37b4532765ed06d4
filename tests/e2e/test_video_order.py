"""Frames of a real video whose H.264 stream declares a smaller B-frame reorder depth than it uses
(../shared/data/videos/box.mp4) come out in presentation order."""

import pytest

from fm_resources.video import decode
from tests.conftest import needs_shared, shared_video


@needs_shared
def test_real_video_with_reordered_b_frames_has_increasing_times():
    times = [f.t_s for f in decode(shared_video("box.mp4"))]
    assert len(times) == 455
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[1] == pytest.approx(0.0334, abs=0.001)  # 29.97 fps, not the decoder's 0.101
