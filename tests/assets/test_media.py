"""Each bad / unusual input maker that encodes video or audio produces what it claims, read back with PyAV; and
keyframes of a rendered scene. The makers that encode nothing: tests/unit/test_media.py."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests import media


def _frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def test_truncated_mp4(tmp_path: Path) -> None:
    src = media.small_mp4(tmp_path / "src.mp4")
    assert len(_frames(src)) == 50
    p = media.truncated_mp4(tmp_path / "cut.mp4", src)
    assert p.stat().st_size == int(src.stat().st_size * 0.4)
    assert media.fails_to_decode(p)
    with pytest.raises(av.error.InvalidDataError):  # no moov atom: opening itself fails
        av.open(str(p)).close()
    assert media.fails_to_decode(media.truncated_mp4(tmp_path / "cut2.mp4"))  # default source


def test_audio_only(tmp_path: Path) -> None:
    p = media.audio_only(tmp_path / "tone.mp4")
    with av.open(str(p)) as c:
        assert len(c.streams.video) == 0 and len(c.streams.audio) == 1
        assert c.streams.audio[0].codec_context.name == "aac"
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples >= 44100


def test_single_frame(tmp_path: Path) -> None:
    p = media.single_frame(tmp_path / "one.mp4")
    frames = _frames(p)
    assert len(frames) == 1 and frames[0].time == 0
    with av.open(str(p)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_variable_frame_rate(tmp_path: Path) -> None:
    p, times = media.variable_frame_rate(tmp_path / "vfr.mp4")
    gaps = {round(b - a, 6) for a, b in zip(times, times[1:])}
    assert gaps == {0.03, 0.07}
    frames = _frames(p)
    assert len(frames) == len(times)
    for f, t in zip(frames, times):
        assert Fraction(f.pts) * f.time_base == Fraction(round(t * 1000), 1000)
        assert f.time == pytest.approx(t, abs=1e-9)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated(tmp_path: Path, degrees: int) -> None:
    p = media.rotated(tmp_path / f"rot{degrees}.mp4", degrees=degrees)
    frames = _frames(p)
    assert len(frames) == 10
    f = frames[0]
    assert (f.rotation - degrees) % 360 == 0  # 180 reads back as -180
    assert (f.width, f.height) == (320, 240)  # stored unrotated; players rotate on display
    # (PyAV 18's SideDataContainer.values() raises KeyError; get() by type works)
    assert f.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX) is not None
    assert all(fr.rotation == f.rotation for fr in frames)


def test_uhd_4k(tmp_path: Path) -> None:
    p = media.uhd_4k(tmp_path / "uhd.mp4")
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (3840, 2160)
        assert c.duration / av.time_base == pytest.approx(2.0, abs=0.11)
        assert s.frames == 20


def test_makers_are_fast(tmp_path: Path) -> None:
    makers = {
        "zero_byte": lambda: media.zero_byte(tmp_path / "a.mp4"),
        "truncated_mp4": lambda: media.truncated_mp4(tmp_path / "b.mp4"),
        "text_as_mp4": lambda: media.text_as_mp4(tmp_path / "c.mp4"),
        "audio_only": lambda: media.audio_only(tmp_path / "d.mp4"),
        "single_frame": lambda: media.single_frame(tmp_path / "e.mp4"),
        "variable_frame_rate": lambda: media.variable_frame_rate(tmp_path / "f.mp4"),
        "rotated": lambda: media.rotated(tmp_path / "g.mp4"),
        "uhd_4k": lambda: media.uhd_4k(tmp_path / "h.mp4"),
    }
    for name, make in makers.items():
        t0 = time.perf_counter()
        make()
        assert time.perf_counter() - t0 < 3.0, name


def test_keyframes_every_half_second_capped_in_size(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from fm_assets.synthetic import render_scene, scene_by_name
    from fm_resources.video import keyframes

    mp4 = render_scene(scene_by_name("left_right"), tmp_path).mp4  # 640x480, 25 fps, 8 s
    frames = keyframes(mp4, None, 1.0, 4.0, 0.5, 320)
    assert len(frames) == 6  # 1.0, 1.5, ..., 3.5
    sizes = {Image.open(io.BytesIO(b)).size for b in frames}
    assert sizes == {(320, 240)}
    assert len(set(frames)) == 6  # distinct frames (the objects move)
