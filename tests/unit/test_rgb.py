"""fm_resources.video.Frame.rgb converts with swscale on one thread, and with its fast bilinear flag for the pixel
formats of FAST_EXACT: the pixels must be the ones PyAV's default conversion gives, or the labels would change with
the speed-up."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fm_assets.synthetic.generator import write_h264
from fm_resources.video import FAST_EXACT, Frame, decode


def _picture(seed: int, h: int = 144, w: int = 176) -> np.ndarray:
    """Colour ramps and noise: every chroma and luma value changes from pixel to pixel."""
    rng = np.random.default_rng(seed)
    ramp = np.cumsum(rng.integers(0, 256, (h, w, 3)), axis=1) % 256
    return ((ramp + rng.integers(0, 40, (h, w, 3))) % 256).astype(np.uint8)


@pytest.mark.parametrize("fmt", sorted(FAST_EXACT) + ["yuv444p", "nv12", "yuv420p10le", "gray"])
def test_rgb_gives_the_default_conversions_pixels(fmt: str):
    for seed in range(3):
        src = av.VideoFrame.from_ndarray(_picture(seed), format="rgb24").reformat(format=fmt)
        assert np.array_equal(Frame(0, 0.0, src).rgb(), src.to_ndarray(format="rgb24"))


def test_rgb_of_decoded_h264_is_the_default_conversions(tmp_path: Path):
    """Frames as the decoder gives them (with their colour tags and padded lines), of one of FAST_EXACT's formats."""
    path = tmp_path / "ramps.mp4"
    write_h264(path, ((i, _picture(i)) for i in range(12)), 176, 144, Fraction(10))
    frames = list(decode(path))
    assert len(frames) == 12 and frames[0].av_frame.format.name in FAST_EXACT
    for fr in frames:
        assert np.array_equal(fr.rgb(), fr.av_frame.to_ndarray(format="rgb24"))
        small = fr.rgb(width=88)
        assert small.shape == (72, 88, 3)
        assert np.array_equal(small, fr.av_frame.to_ndarray(width=88, height=72, format="rgb24"))
