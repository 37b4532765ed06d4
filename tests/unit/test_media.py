"""The bad-input makers that encode nothing (an empty file, text named .mp4) produce what they claim: PyAV cannot
decode them. The makers that encode video or audio: tests/assets/test_media.py."""

from __future__ import annotations

from pathlib import Path

from tests import media


def test_zero_byte(tmp_path: Path) -> None:
    p = media.zero_byte(tmp_path / "empty.mp4")
    assert p.stat().st_size == 0 and media.fails_to_decode(p)


def test_text_as_mp4(tmp_path: Path) -> None:
    p = media.text_as_mp4(tmp_path / "notes.mp4")
    assert p.read_text().startswith("This is not a video") and media.fails_to_decode(p)
