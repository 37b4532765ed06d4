"""Video IO: list input locations, fetch and hash files, decode with PyAV using presentation timestamps.

Every frame the pipeline sees carries its index in decode order over the whole source video (`idx`, 0-based)
and its presentation time in seconds from the start of the stream (`t_s`, from PTS, never from an assumed
frame rate), so variable-frame-rate video keeps correct times.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from dagster import ConfigurableResource

from fm_assets.labels.plots import jpeg
from fm_resources.lake import is_s3, split_s3
from fm_resources.listing import VIDEO_EXTENSIONS, InputFile, Listing, local_listing
from fm_resources.settings import fm_home, input_locations, s3_endpoint_url


class VideoError(Exception):
    """The file cannot be used as a video (unreadable, no video stream, undecodable)."""


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    width: int  # as coded (see display_size for the displayed size)
    height: int
    declared_fps: float | None
    declared_frames: int


@dataclass
class Frame:
    idx: int  # decode-order index over the whole source video, 0-based
    t_s: float  # presentation time in seconds from the stream start
    av_frame: av.VideoFrame
    rotation: int = 0

    def luma(self, step: int = 1) -> np.ndarray:
        """The Y plane, subsampled by `step` in both directions, without any colour conversion."""
        plane = self.av_frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        return _rotate(y[::step, ::step], self.rotation)

    def rgb(self, width: int | None = None) -> np.ndarray:
        """An RGB24 image, optionally resized to `width` (aspect kept), in display orientation. swscale works on
        this thread only (its automatic threads would contend with the detector's workers for the cores; the same
        pixels), and converts the 8-bit YUV layouts of FAST_EXACT with its fast bilinear flag, which gives them the
        same pixels as the default (tests/unit/test_rgb.py) in a third of the time (bench/rgb_convert.py)."""
        f = self.av_frame
        if width and width < f.width:
            height = max(2, int(round(f.height * width / f.width / 2)) * 2)
            img = f.to_ndarray(width=width, height=height, format="rgb24", threads=1)
        elif f.format.name in FAST_EXACT:
            img = f.to_ndarray(format="rgb24", threads=1, interpolation="FAST_BILINEAR")
        else:
            img = f.to_ndarray(format="rgb24", threads=1)
        return _rotate(img, self.rotation)


# pixel formats whose same-size conversion to RGB24 is the same with swscale's fast bilinear flag as with its default
# (its unscaled YUV converters; not so for yuv444p, nv12 or 10-bit video, which keep the default)
FAST_EXACT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p"})


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"not a readable video container: {exc}") from exc


def stream_info(path: Path) -> StreamInfo:
    """What the container declares (cheap: nothing is decoded). Width and height are as coded; the rotation
    comes with the decoded frames (see `decode`)."""
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoError(f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return StreamInfo(
            codec=stream.codec_context.name,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            declared_fps=float(rate) if rate else None,
            declared_frames=int(stream.frames or 0),
        )


def frame_rotation(frame: av.VideoFrame) -> int:
    """Degrees counter-clockwise a player turns this frame for display (from its display matrix), 0-270."""
    return int(round(frame.rotation or 0)) % 360


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    return (height, width) if rotation in (90, 270) else (width, height)


REORDER_FRAMES = 8


def _presentation_order(frames: Iterator[av.VideoFrame], depth: int = REORDER_FRAMES) -> Iterator[tuple[int, av.VideoFrame]]:
    """(pts, frame) in presentation order. Some H.264 streams declare a smaller B-frame reorder depth than they
    use, and the decoder then hands frames out of order (pts 0, 101, 67, 134, 34, ...): a small buffer sorted by
    pts puts them back, so frame indices and times increase together."""
    heap: list[tuple[int, int, av.VideoFrame]] = []
    for seq, frame in enumerate(frames):
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise VideoError(f"frame {seq} has no timestamp")
        heapq.heappush(heap, (pts, seq, frame))
        if len(heap) > depth:
            pts, _, out = heapq.heappop(heap)
            yield pts, out
    while heap:
        pts, _, out = heapq.heappop(heap)
        yield pts, out


def decode(path: Path, rotation: int | None = None, start_s: float = 0.0, end_s: float | None = None) -> Iterator[Frame]:
    """Decode the first video stream, yielding frames with index and PTS time in [start_s, end_s).

    Always decodes from the first frame so that `idx` is exact over the source video (decoding is cheap next
    to analysis; frames before start_s are skipped without conversion). With rotation=None each frame's own
    display matrix decides how `Frame.luma()` / `Frame.rgb()` turn it upright."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        t0 = stream.start_time if stream.start_time is not None else None
        try:
            for idx, (pts, frame) in enumerate(_presentation_order(container.decode(stream))):
                if t0 is None:
                    t0 = pts
                t = float((pts - t0) * tb)
                if t < start_s - 1e-9:
                    continue
                if end_s is not None and t >= end_s - 1e-9:
                    break
                yield Frame(idx=idx, t_s=t, av_frame=frame,
                            rotation=frame_rotation(frame) if rotation is None else rotation)
        except av.error.FFmpegError as exc:
            raise VideoError(f"decoding failed: {exc}") from exc


CUT_ENCODER_OPTIONS = {"crf": "23", "preset": "veryfast"}  # the reference re-encodes its clips with x264 crf 23
CUT_ENCODER_THREADS = 2  # fixed: x264 output depends on the thread count, so a re-export gives the same bytes


@dataclass
class ClipCut:
    """One clip cut out of a source video by `cut_clips`: an H.264 / yuv420p mp4 and what went into it."""

    start_s: float
    end_s: float
    data: bytes  # the mp4 (empty when no frame of the source lies in [start_s, end_s))
    times: list[float]  # source presentation time (s) of every frame written, in order
    first_idx: int | None  # index of the first frame written, over the source video's decoded frames
    width: int  # as displayed (rotation applied), even
    height: int

    @property
    def n_frames(self) -> int:
        return len(self.times)


class _ClipEncoder:
    def __init__(self, rate: Fraction, time_base: Fraction, width: int, height: int, options: dict):
        self.buf = io.BytesIO()
        self.container = av.open(self.buf, "w", format="mp4", container_options={"fflags": "+bitexact"})
        self.stream = self.container.add_stream("libx264", rate=rate, options=dict(options))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = time_base
        self.stream.codec_context.thread_type = "FRAME"
        self.stream.codec_context.thread_count = CUT_ENCODER_THREADS
        self.time_base = time_base

    def add(self, frame: av.VideoFrame, pts: int) -> None:
        frame.pts, frame.time_base = pts, self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> bytes:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        return self.buf.getvalue()


def iter_cut_clips(path: Path, spans: list[tuple[float, float]], rotation: int | None = None,
                   options: dict | None = None) -> Iterator[tuple[int, ClipCut]]:
    """Cut clips [start_s, end_s) out of a video in ONE decode pass, yielding (index into spans, ClipCut) as
    soon as each clip is complete (so a long video's clips are never all held in memory). Every source frame
    whose presentation time lies in a span is re-encoded (libx264, yuv420p) into that clip's mp4, upright
    (rotation applied, so boxes in display pixels fit the clip) and with its presentation time kept relative
    to the clip's first frame (variable frame rate survives). Odd display sizes lose their last column / row
    (yuv420p needs even sizes); boxes stay valid. Spans may overlap; a span without frames yields an empty
    ClipCut. Raises VideoError when the source cannot be read."""
    spans = [(float(a), float(b)) for a, b in spans]
    if not spans:
        return
    info = stream_info(path)
    rate = Fraction(info.declared_fps or 25).limit_denominator(1001)
    opts = {**CUT_ENCODER_OPTIONS, **(options or {})}
    encoders: dict[int, _ClipEncoder] = {}
    cuts = {k: ClipCut(a, b, b"", [], None, 0, 0) for k, (a, b) in enumerate(spans)}
    first_pts: dict[int, int] = {}
    pending = sorted(cuts, key=lambda k: (spans[k][1], k))  # by end time: the order clips complete in

    def finish(k: int) -> tuple[int, ClipCut]:
        enc = encoders.pop(k, None)
        if enc is not None:
            cuts[k].data = enc.close()
        return k, cuts.pop(k)

    for f in decode(path, rotation, start_s=min(a for a, _ in spans), end_s=max(b for _, b in spans)):
        while pending and spans[pending[0]][1] - 1e-9 <= f.t_s:  # frames come in presentation order
            yield finish(pending.pop(0))
        inside = [k for k in cuts if spans[k][0] - 1e-9 <= f.t_s < spans[k][1] - 1e-9]
        if not inside:
            continue
        src = f.av_frame
        tb = src.time_base or Fraction(1, 90000)
        pts = src.pts if src.pts is not None else int(round(f.t_s / tb))
        w, h = display_size(src.width, src.height, f.rotation)
        w2, h2 = w - w % 2, h - h % 2
        for k in inside:
            if k not in encoders:
                encoders[k] = _ClipEncoder(rate, tb, w2, h2, opts)
                first_pts[k] = pts
                cuts[k].first_idx, cuts[k].width, cuts[k].height = f.idx, w2, h2
            if f.rotation % 360 == 0 and (w2, h2) == (w, h):
                out = src.reformat(format="yuv420p")
            else:
                out = av.VideoFrame.from_ndarray(np.ascontiguousarray(f.rgb()[:h2, :w2]), format="rgb24")
            encoders[k].add(out, pts - first_pts[k])
            cuts[k].times.append(f.t_s)
    while pending:
        yield finish(pending.pop(0))


def cut_clips(path: Path, spans: list[tuple[float, float]], rotation: int | None = None,
              options: dict | None = None) -> list[ClipCut]:
    """All clips of `iter_cut_clips`, in the order of `spans`."""
    out = dict(iter_cut_clips(path, spans, rotation, options))
    return [out[k] for k in range(len(spans))]


def cut_clip(path: Path, start_s: float, end_s: float, rotation: int | None = None,
             options: dict | None = None) -> ClipCut:
    """One clip [start_s, end_s) of a video as an H.264 mp4 (see `cut_clips`)."""
    return cut_clips(path, [(start_s, end_s)], rotation, options)[0]


def keyframes(path: Path, rotation: int | None, start_s: float, end_s: float, every_s: float,
              max_side: int) -> list[bytes]:
    """JPEGs of the first frame at or after every `every_s` seconds of [start_s, end_s), longer side at most
    `max_side` (the frames a vision LLM is shown, as FoundationMotion's reference samples them)."""
    out, next_t = [], start_s
    for f in decode(path, rotation, start_s, end_s):
        if f.t_s + 1e-9 < next_t:
            continue
        img = f.rgb()
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = f.rgb(max(1, round(img.shape[1] * scale)))
        out.append(jpeg(img))
        next_t += every_s * max(1, int((f.t_s - next_t) // every_s) + 1)
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class VideoStore(ConfigurableResource):
    """Where raw videos come from: local folders and s3://bucket/prefix locations (through dagster-aws).
    Remote files are downloaded once into a local cache keyed by their ETag."""

    inputs: list[str] = []
    cache_dir: str | None = None
    s3_endpoint_url: str | None = None

    def locations(self) -> list[str]:
        return self.inputs or input_locations()

    def _s3(self):
        from fm_resources.s3 import s3_client  # retries through outages (FM_S3_RETRY_S)

        return s3_client(self.s3_endpoint_url or s3_endpoint_url())

    def scan(self, location: str) -> list[InputFile]:
        """The video files at a location (a folder, searched recursively, a single file, or an S3 prefix)."""
        return self.listing(location).files

    def listing(self, location: str) -> Listing:
        """The video files at a location, with what could not be listed and what was passed over, and why (a local
        path: fm_resources.listing.local_listing; an S3 prefix: every object with a video extension below it, its
        ETag as signature)."""
        if is_s3(location):
            bucket, prefix = split_s3(location)
            out = []
            for page in self._s3().pages(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].lower().endswith(VIDEO_EXTENSIONS):
                        out.append(InputFile(f"s3://{bucket}/{obj['Key']}", obj["Size"], obj["ETag"].strip('"')))
            return Listing(sorted(out, key=lambda f: f.uri))
        return local_listing(location)

    def exists(self, uri: str) -> bool:
        """Whether the source is still there (an S3 object: one HEAD; an outage raises)."""
        if not is_s3(uri):
            return Path(uri).is_file()
        from fm_resources.lake import not_found

        bucket, key = split_s3(uri)
        try:
            self._s3().head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            if not_found(exc):
                return False
            raise

    def fetch(self, uri: str) -> Path:
        """A local path for the video at `uri` (downloading S3 objects into the cache when needed)."""
        if not is_s3(uri):
            return Path(uri)
        bucket, key = split_s3(uri)
        client = self._s3()
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        cache = Path(self.cache_dir) if self.cache_dir else fm_home() / "cache" / "videos"
        target = cache / bucket / f"{etag}{Path(key).suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")  # one per process
            try:
                client.download_file(bucket, key, str(tmp))
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, target)
        return target
