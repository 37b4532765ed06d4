"""Makers of bad and unusual input files for the pipeline's bad-input tests.

Each function writes one file and returns its Path (``variable_frame_rate`` also returns the presentation
times a decoder reports).  All are fast (well under 3 s) and deterministic.

Rotation in PyAV 18: ``VideoStream.set_display_rotation(degrees)`` (or ``set_display_matrix``), called
before the first frame is encoded, writes a display matrix into the stream's coded side data, which the mp4
muxer stores in the track header (tkhd matrix).  On read, ``VideoFrame.rotation`` returns it (degrees
counter-clockwise, FFmpeg's ``av_display_rotation_get`` convention) and ``frame.side_data`` holds a
DISPLAYMATRIX entry; decoded frames are NOT rotated (width/height stay as encoded).  The legacy
``stream.metadata["rotate"]`` tag is silently ignored by this libavformat (reads back as rotation 0).
A phone's portrait clip (legacy tag ``rotate=90``, i.e. turn 90 degrees clockwise to display) reads back
as ``frame.rotation == -90``.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "audio_only",
    "copy_to",
    "moving_square",
    "single_frame",
    "small_mp4",
    "text_as_mp4",
    "truncated_mp4",
    "uhd_4k",
    "variable_frame_rate",
    "rotated",
    "zero_byte",
]


def _pattern(width: int, height: int, i: int) -> np.ndarray:
    """A cheap RGB test frame: colour gradient plus a white square that moves with i."""
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = x[None, :]
    img[..., 1] = y[:, None]
    img[..., 2] = 96
    s = max(4, min(width, height) // 8)
    x0 = (i * max(1, width // 50)) % max(1, width - s)
    y0 = (height - s) // 2
    img[y0 : y0 + s, x0 : x0 + s] = 255
    return img


def _write_h264(
    path: Path,
    frames: Iterable[tuple[np.ndarray, int]],
    width: int,
    height: int,
    time_base: Fraction,
    rate: Fraction,
    preset: str = "ultrafast",
    rotation: float | None = None,
    fmt: str = "rgb24",
) -> Path:
    """Encode (frame array in ``fmt``, pts) pairs as H.264 yuv420p mp4, without B-frames so that pts pass
    through exactly as given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": preset, "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.max_b_frames = 0
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for img, pts in frames:
            frame = av.VideoFrame.from_ndarray(img, format=fmt)
            frame.pts, frame.time_base = pts, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _cfr(width: int, height: int, n: int) -> Iterator[tuple[np.ndarray, int]]:
    for i in range(n):
        yield _pattern(width, height, i), i


def moving_square(path: Path, seed: int, n_frames: int = 30, width: int = 128, height: int = 96, fps: int = 10) -> Path:
    """A short H.264 mp4 of one square moving over a plain background, its colours and motion drawn from `seed`:
    every seed its own content (so its own video id)."""
    rng = np.random.default_rng(seed)
    background, colour = rng.integers(40, 90, size=3), rng.integers(150, 255, size=3)
    x, y, vx, vy = rng.uniform(10, width - 30), rng.uniform(10, height - 30), rng.uniform(-3, 3), rng.uniform(-2, 2)

    def frames() -> Iterator[tuple[np.ndarray, int]]:
        for i in range(n_frames):
            img = np.empty((height, width, 3), np.uint8)
            img[:] = background
            xi, yi = int(x + vx * i) % (width - 20), int(y + vy * i) % (height - 20)
            img[yi:yi + 16, xi:xi + 16] = colour
            yield img, i

    return _write_h264(path, frames(), width, height, Fraction(1, fps), Fraction(fps))


def small_mp4(path: Path, n_frames: int = 50, width: int = 320, height: int = 240, fps: int = 25) -> Path:
    """A valid constant-frame-rate H.264 mp4 (moov atom at the end, as FFmpeg writes by default)."""
    return _write_h264(path, _cfr(width, height, n_frames), width, height, Fraction(1, fps), Fraction(fps))


def zero_byte(path: Path) -> Path:
    """An empty file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def truncated_mp4(path: Path, src: Path | None = None, fraction: float = 0.4) -> Path:
    """The first ``fraction`` of ``src``'s bytes (default: a fresh ``small_mp4``).  For mp4s with the moov
    atom at the end (FFmpeg's default, also ``fm_assets.synthetic``) opening fails: no moov atom."""
    path = Path(path)
    if src is None:
        src = small_mp4(path.with_name(f".{path.stem}.src.mp4"))
        data = src.read_bytes()
        src.unlink()
    else:
        data = Path(src).read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def text_as_mp4(path: Path) -> Path:
    """A plain text file with an .mp4 name."""
    path = Path(path)
    path.write_text("This is not a video. It is a text file with an .mp4 extension.\n" * 20)
    return path


def audio_only(path: Path, seconds: float = 1.0, sample_rate: int = 44100, freq: float = 440.0) -> Path:
    """An AAC sine tone in an mp4 container, with no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        n_total, chunk = int(seconds * sample_rate), 1024
        for start in range(0, n_total, chunk):
            n = min(chunk, n_total - start)
            t = (np.arange(start, start + n) / sample_rate).astype(np.float32)
            samples = (0.3 * np.sin(2 * math.pi * freq * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def single_frame(path: Path, width: int = 320, height: int = 240) -> Path:
    """A valid H.264 mp4 with exactly one frame."""
    return _write_h264(path, _cfr(width, height, 1), width, height, Fraction(1, 25), Fraction(25))


VFR_GAPS_MS = (30, 70)


def variable_frame_rate(path: Path, n_frames: int = 30, width: int = 320, height: int = 240) -> tuple[Path, list[float]]:
    """An H.264 mp4 whose frame gaps alternate 30 ms and 70 ms.  Returns the path and the presentation
    times in seconds (exact multiples of 1 ms) that a decoder reports, in display order."""
    pts_ms = [0]
    for i in range(1, n_frames):
        pts_ms.append(pts_ms[-1] + VFR_GAPS_MS[(i - 1) % len(VFR_GAPS_MS)])
    frames = ((_pattern(width, height, i), p) for i, p in enumerate(pts_ms))
    _write_h264(path, frames, width, height, Fraction(1, 1000), Fraction(20))
    return Path(path), [p / 1000 for p in pts_ms]


def rotated(path: Path, degrees: float = 90, width: int = 320, height: int = 240, n_frames: int = 10) -> Path:
    """A valid H.264 mp4 whose stream carries a display matrix: read back, ``frame.rotation == degrees``
    (counter-clockwise).  Frames are stored unrotated (width x height)."""
    return _write_h264(path, _cfr(width, height, n_frames), width, height, Fraction(1, 25), Fraction(25),
                       rotation=degrees)


def uhd_4k(path: Path, seconds: float = 2.0, fps: int = 10) -> Path:
    """A 3840x2160 H.264 mp4 of ``seconds`` length with a moving bright block (``fps`` kept low and frames
    built directly in yuv420p so it takes about a second to write)."""
    width, height = 3840, 2160
    base = np.full((height * 3 // 2, width), 128, np.uint8)  # Y plane, then U and V (quarter size each)
    base[:height] = np.linspace(16, 200, width, dtype=np.uint8)[None, :]
    frames = []
    for i in range(int(round(seconds * fps))):
        img = base.copy()
        x0 = 200 + 60 * i
        img[900:1260, x0 : x0 + 360] = 235
        frames.append((img, i))
    return _write_h264(path, frames, width, height, Fraction(1, fps), Fraction(fps), fmt="yuv420p")


def copy_to(path: Path, src: Path) -> Path:
    """Copy ``src`` to ``path`` (e.g. to give a valid file an odd name)."""
    shutil.copyfile(src, path)
    return Path(path)


def fails_to_decode(path: Path) -> bool:
    """PyAV cannot open the file or decodes no video frame from it."""
    try:
        with av.open(str(path)) as c:
            return len(list(c.decode(video=0))) == 0
    except (av.error.FFmpegError, ValueError, IndexError):
        return True
