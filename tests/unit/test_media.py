"""The bad-input makers that encode nothing (an empty file, text named .mp4) produce what they claim: PyAV cannot
decode them. The makers that encode video or audio: tests/assets/test_media.py."""

from __future__ import annotations

from pathlib import Path

import av

from tests import media


def _fails_to_decode(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return len(list(c.decode(video=0))) == 0
    except (av.error.FFmpegError, ValueError, IndexError):
        return True


def test_zero_byte(tmp_path: Path) -> None:
    p = media.zero_byte(tmp_path / "empty.mp4")
    assert p.stat().st_size == 0 and _fails_to_decode(p)


def test_text_as_mp4(tmp_path: Path) -> None:
    p = media.text_as_mp4(tmp_path / "notes.mp4")
    assert p.read_text().startswith("This is not a video") and _fails_to_decode(p)
