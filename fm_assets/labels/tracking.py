"""Pure functions behind `detections` and `tracks`: frame sampling, the detector over a video's clips, the tracker
over a clip, table rows, track labels, overlays, MOT."""

from __future__ import annotations

import bisect
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import cv2
import numpy as np
import polars as pl

from fm_assets.labels.ids import seed_for
from fm_assets.labels.masks import rle_columns
from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.plots import encode_png, jpeg, shrink
from fm_assets.labels.schemas import DETECTIONS, TRACKS, frame
from fm_assets.labels.types import Detections, Tracked, VideoFrame
from fm_assets.labels.workers import KeptPool, map_clips, process_pool


@dataclass(frozen=True)
class DetectionParams:
    """Which frames the detector sees, and at what size."""

    sample_fps: float = param(10.0, "frames per second given to the detector (0 < fps; >= video fps = every frame)",
                              gt=0)
    max_side: int = param(1280, "frames are downscaled so that the longer side is at most this (or at most the "
                                "detector's own max_side: the motion detector's is 960)", ge=64)

    def __post_init__(self) -> None:
        check_bounds(self)


class ClipDetector(Protocol):
    """A detector (fm_resources.detection.types.Detector): one Detections per frame of one clip."""

    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...


def sample_step(video_fps: float | None, sample_fps: float | None) -> int:
    """Every k-th decoded frame is sampled: k = round(video fps / sample fps), at least 1 (None = every frame)."""
    if not sample_fps or not video_fps or video_fps <= sample_fps:
        return 1
    return max(1, int(round(video_fps / sample_fps)))


def first_frames_step(t0: float, t1: float, sample_fps: float | None) -> int:
    """The sampling step of a video that declares no frame rate: from the interval of its first two frames."""
    return sample_step(1.0 / (t1 - t0) if t1 > t0 else None, sample_fps)


def sampled_frames(start_frame: int, end_frame: int, step: int, origin: int | None = None) -> list[int]:
    """The frames of [start_frame, end_frame) the detector sees: every `step`-th frame counted from `origin`, the
    first frame of the clip's shot (the default: the clip's own first frame), so all clips of a shot share one
    grid and the tracker sees a steady frame rate across their borders."""
    origin = start_frame if origin is None else origin
    return list(range(start_frame + (origin - start_frame) % step, end_frame, step))


def with_sample_origin(clips: pl.DataFrame) -> pl.DataFrame:
    """raw_clips rows (all of a video's, dropped ones too) with `sample_origin`: the first frame of each clip's shot,
    where its sampling grid starts (see sampled_frames). Filter kept clips after this, not before."""
    if "shot_idx" not in clips.columns:
        return clips.with_columns(sample_origin=pl.col("start_frame"))
    return clips.with_columns(sample_origin=pl.col("start_frame").min().over("video_id", "shot_idx")
                              if "video_id" in clips.columns else pl.col("start_frame").min().over("shot_idx"))


# Hue sectors (OpenCV hue 0-179) of the colour names; brown = dark orange/red, pink = light magenta/red
_HUES = ((8, "red"), (20, "orange"), (33, "yellow"), (78, "green"), (96, "cyan"), (130, "blue"), (150, "purple"),
         (170, "magenta"), (180, "red"))


_NAMES = ("black", "blue", "brown", "cyan", "gray", "green", "magenta", "orange", "pink", "purple", "red", "white",
          "yellow")  # alphabetical: a tie between names goes to the first
_HUE_NAME = np.array([_NAMES.index(name) for _, name in _HUES])
_N = {name: k for k, name in enumerate(_NAMES)}


def _hsv(pixels: np.ndarray) -> np.ndarray:
    """HSV (OpenCV ranges) of RGB pixels (n x 3 uint8), as an (n, 1, 3) uint8 array."""
    return cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.uint8, copy=False), cv2.COLOR_RGB2HSV)


def pixel_names(h: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Each HSV pixel's colour name (an index into _NAMES): black / white / gray by value and saturation, else by
    hue; dark orange is brown, light red or magenta pink."""
    sat, val = sat.astype(np.int16), val.astype(np.int16)
    names = _HUE_NAME[np.searchsorted([b for b, _ in _HUES], h, side="right").clip(0, len(_HUES) - 1)]
    names = np.where((names == _N["orange"]) & (val < 150), _N["brown"], names)
    names = np.where(((names == _N["red"]) | (names == _N["magenta"])) & (sat < 130) & (val > 170), _N["pink"], names)
    grey = sat < 60
    names = np.where(grey & (val >= 190), _N["white"], np.where(grey & (val < 190), _N["gray"], names))
    return np.where(val < 50, _N["black"], names)


# pixel_names as a table: the rules change only at these saturations and values, so (hue, saturation band, value
# band) names a pixel (three look-ups a pixel instead of a pass of the rules each)
_SAT_BAND = np.searchsorted([60, 130], np.arange(256), side="right").astype(np.intp)
_VAL_BAND = np.searchsorted([50, 150, 171, 190], np.arange(256), side="right").astype(np.intp)
_BAND_NAMES = pixel_names(*np.meshgrid(np.arange(256), [0, 60, 130], [0, 50, 150, 171, 190], indexing="ij")
                          ).astype(np.uint8).reshape(-1)  # [hue * 15 + sat band * 5 + value band]


def colour_name(pixels: np.ndarray, hsv: np.ndarray | None = None) -> str | None:
    """The dominant colour name of RGB pixels (n x 3 uint8): each pixel is named (pixel_names) and the most
    frequent name wins (ties: the first name alphabetically). None for fewer than 16 pixels. `hsv`: the pixels'
    _hsv when already computed."""
    if len(pixels) < 16:
        return None
    hsv = (_hsv(pixels) if hsv is None else hsv).reshape(-1, 3)
    names = _BAND_NAMES[hsv[:, 0].astype(np.intp) * 15 + _SAT_BAND[hsv[:, 1]] * 5 + _VAL_BAND[hsv[:, 2]]]
    return _NAMES[int(np.argmax(np.bincount(names, minlength=len(_NAMES))))]


def _box_pixels(image: np.ndarray, box, mask_rle: dict | None = None,
                mask_crop: tuple[int, int, np.ndarray] | None = None) -> np.ndarray | None:
    """RGB pixels (n x 3) of a box in an image: the mask's pixels where there is a mask, else the central half of
    the box (less background); None for an empty box. Only the box's columns of the mask are decoded; none where
    `mask_crop` (Detections.mask_crops) holds the mask's pixels."""
    hgt, wid = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(wid, x2), min(hgt, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    if mask_rle is not None and tuple(mask_rle["size"]) == (hgt, wid):
        if mask_crop is not None:
            m = np.zeros((y2 - y1, x2 - x1), bool)
            cx, cy, crop = mask_crop
            ox1, oy1 = max(x1, cx), max(y1, cy)
            ox2, oy2 = min(x2, cx + crop.shape[1]), min(y2, cy + crop.shape[0])
            if ox2 > ox1 and oy2 > oy1:
                m[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1] = crop[oy1 - cy : oy2 - cy, ox1 - cx : ox2 - cx] != 0
        else:
            m = rle_columns(mask_rle["counts"], hgt, x1, x2)[y1:y2]
        if m.any():
            return image[y1:y2, x1:x2][m]
    qx, qy = (x2 - x1) // 4, (y2 - y1) // 4
    return image[y1 + qy : y2 - qy, x1 + qx : x2 - qx].reshape(-1, 3)


HIST_BINS = (6, 2, 3)  # hue x saturation x value bins of the appearance histogram


def box_appearance(image: np.ndarray, box, mask_rle: dict | None = None,
                   mask_crop: tuple[int, int, np.ndarray] | None = None) -> tuple[str | None, list[int] | None]:
    """(colour, histogram) of a box in an RGB image, from one look at its pixels (see _box_pixels): the
    colour_name, and a joint HSV histogram (HIST_BINS, 36 bins) scaled to sum to about 255 and stored as small
    integers; (None, None) for fewer than 16 pixels."""
    pixels = _box_pixels(image, box, mask_rle, mask_crop)
    if pixels is None or len(pixels) < 16:
        return None, None
    hsv = _hsv(pixels)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).reshape(-1)
    return colour_name(pixels, hsv), [int(v) for v in np.round(hist / max(hist.sum(), 1.0) * 255).clip(0, 255)]


def box_colour(image: np.ndarray, box, mask_rle: dict | None = None) -> str | None:
    """The colour of box_appearance."""
    return box_appearance(image, box, mask_rle)[0]


def box_hist(image: np.ndarray, box, mask_rle: dict | None = None) -> list[int] | None:
    """The histogram of box_appearance."""
    return box_appearance(image, box, mask_rle)[1]


def hist_similarity(a: Sequence[float] | np.ndarray | None, b: Sequence[float] | np.ndarray | None) -> float | None:
    """Histogram intersection of two appearance histograms (1 = same colours, 0 = none shared)."""
    if a is None or b is None:
        return None
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.sum() <= 0 or y.sum() <= 0:
        return None
    return float(np.minimum(x / x.sum(), y / y.sum()).sum())


def detection_rows(video_id: str, clip_id: str, frame_idx: int, t_s: float, det: Detections, scale: float,
                   step: int, image: np.ndarray | None = None) -> list[dict]:
    """Rows of the detections table for one frame; boxes are scaled back to source pixels; `color` named from
    the detector's input `image` where given."""
    rows = []
    for k in range(len(det)):
        x1, y1, x2, y2 = (float(v) * scale for v in det.boxes[k])
        mask = det.masks[k] if det.masks is not None else None
        crop = det.mask_crops[k] if det.mask_crops is not None else None
        colour, hist = box_appearance(image, det.boxes[k], mask, crop) if image is not None else (None, None)
        rows.append({
            "color": colour, "hist": hist,
            "video_id": video_id, "clip_id": clip_id, "frame_idx": frame_idx, "t_s": t_s, "det_idx": k,
            "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": float(det.scores[k]), "label": det.labels[k],
            "person_score": float(det.extra["person_score"][k]) if "person_score" in det.extra else None,
            "mask_rle": json.dumps(mask, separators=(",", ":")) if mask is not None else None,
            "sample_step": step,
        })
    return rows


def majority(table: pl.DataFrame, key: str, col: str) -> pl.DataFrame:
    """Per `key`, the most frequent non-null `col`, ties broken by name (deterministic): columns key, col. A
    track's label and colour are the majority of its detections'."""
    return (table.filter(pl.col(col).is_not_null()).group_by(key, col).len()
            .sort([key, "len", col], descending=[False, True, False])
            .group_by(key, maintain_order=True).agg(pl.col(col).first()))


def track_rows(video_id: str, clip_id: str, frames: Sequence[tuple[int, float | None, list[str], list[str | None]]],
               tracked: Tracked) -> pl.DataFrame:
    """The tracks table of one clip (or run of clips), a column per field, in the tracker's order: frames =
    (frame_idx, t_s, that frame's detection labels and colours in det_idx order), tracked = the tracker's boxes on
    them. `label` and `color` are the track's majority over its boxes' detections, `box_color` each box's own
    detection colour. Besides the TRACKS columns: `_pos` (the box's frame, as an index into `frames`) and `_det`
    (its detection on that frame; -1: none)."""
    n = len(tracked)
    pos, tid, xyxy, score = tracked.frame, tracked.track_id, tracked.boxes, tracked.scores
    n_dets = np.array([len(f[2]) for f in frames], np.int64)
    det = np.where((tracked.det_index >= 0) & (tracked.det_index < n_dets[pos]), tracked.det_index, -1)
    flat_labels = [x for f in frames for x in f[2]] + [None]  # every frame's detections, then "none"
    flat_colours = [x for f in frames for x in f[3]] + [None]
    first = np.cumsum(n_dets) - n_dets  # each frame's first detection in the flat lists
    at = np.where(det >= 0, first[pos] + det, len(flat_labels) - 1) if n else np.zeros(0, np.int64)
    times = np.array([np.nan if f[1] is None else f[1] for f in frames], np.float64)
    table = pl.DataFrame({
        "video_id": pl.Series([video_id] * n, dtype=pl.String), "clip_id": pl.Series([clip_id] * n, dtype=pl.String),
        "track_id": tid, "frame_idx": np.array([f[0] for f in frames], np.int64)[pos] if n else np.zeros(0, np.int64),
        "t_s": pl.Series(times[pos] if n else np.zeros(0)).fill_nan(None),
        "x1": xyxy[:, 0], "y1": xyxy[:, 1], "x2": xyxy[:, 2], "y2": xyxy[:, 3], "score": score,
        "_label": pl.Series([flat_labels[i] for i in at], dtype=pl.String),
        "box_color": pl.Series([flat_colours[i] for i in at], dtype=pl.String), "_pos": pos, "_det": det,
    })
    label = majority(table, "track_id", "_label").rename({"_label": "label"})  # one vote per track
    colour = majority(table, "track_id", "box_color").rename({"box_color": "color"})
    return (table.join(label, on="track_id", how="left", maintain_order="left")
            .join(colour, on="track_id", how="left", maintain_order="left")
            .with_columns(pl.col("label").fill_null("object")).drop("_label"))


@dataclass
class DetectionRun:
    """What `detect_video` gives: the detections table (built clip by clip, so a long video's rows are never all
    held as Python dicts), the frames the detector saw, the seconds spent in the detector (summed over threads)
    and each kept clip's still (JPEG of its middle frame, the picture the tracks and trajectories are drawn on,
    so no later stage decodes the video again). With a `spill` folder each clip's rows go there as a Parquet file
    when they come, instead of being held (`parts`): a long video's detections are never all in memory; `lazy()`
    reads them back in clip order."""

    parts: list[pl.DataFrame]
    frames: int
    busy_s: float
    stills: dict[str, bytes]
    spill: Path | None = None
    spilled: int = 0  # clip tables written to `spill`

    def add(self, rows: pl.DataFrame) -> None:
        if self.spill is None:
            self.parts.append(rows)
            return
        rows.write_parquet(self.spill / f"part-{self.spilled:06d}.parquet", compression="lz4", statistics=False)
        self.spilled += 1

    def lazy(self) -> pl.LazyFrame:
        if self.spill is not None and self.spilled:
            return pl.scan_parquet([self.spill / f"part-{i:06d}.parquet" for i in range(self.spilled)])
        return self.table.lazy()

    @property
    def table(self) -> pl.DataFrame:
        if self.spill is not None and self.spilled:
            return self.lazy().collect()
        return pl.concat(self.parts) if self.parts else frame([], DETECTIONS)


def still_frame(start_frame: int, end_frame: int, step: int = 1, origin: int | None = None) -> int:
    """The frame a clip's pictures are drawn on: the sampled frame (see sampled_frames) nearest its middle frame, the
    earlier one on a tie; the first frame when none is sampled."""
    a, b = int(start_frame), int(end_frame)
    middle = (a + b - 1) // 2
    first = a + ((a if origin is None else int(origin)) - a) % step
    if first >= b or middle <= first:
        return first if first < b else a
    lo = first + (middle - first) // step * step
    return lo if middle - lo <= lo + step - middle or lo + step >= b else lo + step


def _detect_batch(detector: ClipDetector, video_id: str, clip_id: str, batch: list[tuple[int, float, np.ndarray]],
                  scale: float, step: int) -> tuple[pl.DataFrame, float]:
    """One clip through the detector: its detections table rows and the seconds the detector took (a module-level
    function, so a worker process can run it)."""
    started = time.perf_counter()
    dets = detector.detect_clip([img for _, _, img in batch])
    busy = time.perf_counter() - started
    out: list[dict] = []
    for (idx, t, img), det in zip(batch, dets):
        out.extend(detection_rows(video_id, clip_id, idx, t, det, scale, step, img))
    return frame(out, DETECTIONS), busy


class _SharedBlocks:
    """The shared memory blocks a DetectionPass hands its clips' frames to worker processes in, reused from clip to
    clip: the kernel faults in and zeroes every page of a new block when it is first written (1.4 ms a 768x576
    frame, against 0.2 ms to copy a frame into a block already used once; bench/shared_blocks.py), and each worker
    keeps the blocks it has seen mapped (_attached). At most one block per clip in flight; all are removed by
    close(). A block is made half as large again as its first clip (only the pages written take memory), so that
    the longer clips that come later fit in it instead of replacing it."""

    headroom = 1.5

    def __init__(self) -> None:
        self.free: list[Any] = []
        self.busy: list[Any] = []
        self.written: dict[str, int] = {}  # bytes of each block written so far (the memory it holds)

    def take(self, batch: list[tuple[int, float, np.ndarray]], shape: tuple[int, ...]):
        """A block holding the batch's frames (all of one size) as one `shape` uint8 array at its start: a free
        block that is large enough, else a new one (replacing the smallest free block); None where /dev/shm has no
        room for the pages to write (the caller pickles the frames instead: writing past a container's /dev/shm
        limit kills the process with SIGBUS)."""
        from multiprocessing import shared_memory

        nbytes = int(np.prod(shape))
        fits = [b for b in self.free if b.size >= nbytes]
        if fits:
            block = min(fits, key=lambda b: b.size)
            if nbytes > self.written[block.name] and not _shared_room(nbytes - self.written[block.name]):
                return None
            self.free.remove(block)
        else:
            if self.free:  # a clip longer than any block: its block replaces the smallest free one
                self._remove(self.free.pop(int(np.argmin([b.size for b in self.free]))))
            if not _shared_room(nbytes):
                return None
            block = shared_memory.SharedMemory(create=True, size=int(nbytes * self.headroom))
            self.written[block.name] = 0
        self.busy.append(block)
        try:
            frames = np.ndarray(shape, np.uint8, buffer=block.buf)
            for k, (_, _, img) in enumerate(batch):
                frames[k] = img
            del frames
        except BaseException:
            self.drop(block)
            raise
        self.written[block.name] = max(self.written[block.name], nbytes)
        return block

    def give(self, block) -> None:
        """A block whose clip is done (its worker no longer reads it): free for the next clip."""
        if block is not None and block in self.busy:
            self.busy.remove(block)
            self.free.append(block)

    def drop(self, block) -> None:
        """Remove a block now (its clip never reached a worker)."""
        self.busy.remove(block)
        self._remove(block)

    def names(self) -> tuple[str, ...]:
        """The blocks that exist: a worker unmaps any other it has kept (_attached)."""
        return tuple(b.name for b in [*self.busy, *self.free])

    def close(self) -> None:
        """Remove every block (after the workers are stopped: a block in use goes when they let it go)."""
        while self.busy or self.free:
            self._remove((self.busy or self.free).pop())

    def _remove(self, block) -> None:
        self.written.pop(block.name, None)
        _free(block)


_ATTACHED: dict[str, Any] = {}  # in a worker process: the shared memory blocks it has mapped, by name


def _attached(name: str, live: tuple[str, ...]):
    """The shared memory block `name`, mapped once per worker process and kept for the next clips that come in it;
    blocks no longer in `live` (removed by the DetectionPass) are unmapped."""
    from multiprocessing import shared_memory

    for old in [n for n in _ATTACHED if n not in live]:
        try:
            _ATTACHED.pop(old).close()
        except BufferError:  # a view still held (by an exception's traceback): the mapping goes with it
            pass
    if name not in _ATTACHED:
        _ATTACHED[name] = shared_memory.SharedMemory(name=name)
    return _ATTACHED[name]


def _detect_shared(detector: ClipDetector, video_id: str, clip_id: str, name: str, shape: tuple[int, ...],
                   at: list[tuple[int, float]], scale: float, step: int,
                   live: tuple[str, ...]) -> tuple[pl.DataFrame, float]:
    """_detect_batch in a worker process on frames the caller put at the start of the shared memory block `name` (a
    (frames, height, width, 3) uint8 array; `at`: each frame's index and time), instead of frames pickled to it: a
    100-frame clip of 768x576 frames is 130 MB to copy through a pipe. `live`: the blocks that exist (_attached)."""
    block = _attached(name, live)
    frames = np.ndarray(shape, np.uint8, buffer=block.buf)
    batch = [(idx, t, frames[k]) for k, (idx, t) in enumerate(at)]
    del frames
    try:
        return _detect_batch(detector, video_id, clip_id, batch, scale, step)
    finally:
        batch = []  # no view of the block outlives the clip


def _shared_room(nbytes: int, where: str = "/dev/shm") -> bool:
    """Whether the shared memory file system has room for a block of `nbytes` (and as much to spare): a block
    written past its size limit (a container's /dev/shm is often 64 MB) kills the process with SIGBUS, so a clip
    that does not fit is pickled to its worker instead."""
    import os

    try:
        st = os.statvfs(where)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= 2 * nbytes


def _free(block) -> None:
    """Close and remove a shared memory block (None: nothing)."""
    if block is not None:
        block.close()
        block.unlink()


def clip_pool(workers: int, kind: str, clip_bytes: int = 0) -> Executor | None:
    """The pool `detect_video` detects clips in: `workers` processes (started by a forkserver: no state copied
    from this multi-threaded process) or threads; None for one worker. A process pool falls back to threads where
    it cannot start (a daemonic worker process may not have children) and where the shared memory the workers read
    their frames from has no room for a clip of `clip_bytes` per worker (a container's /dev/shm is often 64 MB):
    pickling every clip to a worker is slower than threads and holds each clip twice (BENCHMARKS.md, session 10)."""
    if workers <= 1:
        return None
    if kind == "process" and _shared_room(workers * clip_bytes):
        pool = process_pool(workers, cv2.setNumThreads, (1,))
        if pool is not None:
            return pool
    return ThreadPoolExecutor(workers, thread_name_prefix="detect")


class DetectionPass:
    """The detector over a video's kept clips, fed in one pass over its decoded frames: `frame` keeps each sampled
    frame (every `step`-th of its shot, downscaled to max_side or the detector's own) as it goes by, `clip` takes a
    planned clip once it is final (all its frames seen) and detects it if it is kept, keeping its still. With
    `workers` > 1 and a detector that allows it (`parallel_clips`), up to `workers` clips are detected at once in a
    `clip_pool` of `pool_kind` ("process" or "thread") while the next frames are decoded; rows come out in clip
    order either way, and are the same. Frames are held only from the first clip not yet final on."""

    def __init__(self, video_id: str, detector: ClipDetector, p: DetectionParams, step: int | None,
                 workers: int = 1, pool_kind: str = "thread", keep_still: Callable[[str, bytes], None] | None = None,
                 spill: Path | None = None):
        """`step`: the sampling step (sample_step of the video's declared frame rate); None: first_frames_step of its
        first two frames (given first, from frame 0). `keep_still(clip_id, jpeg)` takes each still as it is made
        (a long video's stills are not all held); None: they are kept in the run's `stills`. `spill`: a folder
        the clips' rows are written to as they come (DetectionRun)."""
        self.video_id, self.detector, self.p = video_id, detector, p
        self.keep_still = keep_still or self.run_still
        self.step = step or 0  # 0: not known before frame 1
        self.first_t: float | None = None
        self.workers, self.pool_kind = workers, pool_kind
        self.parallel = getattr(detector, "parallel_clips", False) and workers > 1
        self.pool: Executor | None = None
        self.pending: deque[tuple[Future, Any]] = deque()  # (clip's job, its shared memory block or None)
        self.blocks = _SharedBlocks()
        self.held: deque[tuple[int, float, np.ndarray]] = deque()  # (frame, time, image) of the clips to come
        self.scale = 1.0
        # frames are downscaled to max_side, or to the detector's own max_side where it gains nothing from more
        self.max_side = min(p.max_side, getattr(detector, "max_side", None) or p.max_side)
        self.run = DetectionRun([], 0, 0.0, {}, spill)

    def frame(self, fr: VideoFrame, origin: int) -> None:
        """A decoded frame of the shot that starts at frame `origin`, in order."""
        if not self.step:
            if self.first_t is None or fr.idx == 0:
                self.first_t = fr.t_s
            else:
                self.step = first_frames_step(self.first_t, fr.t_s, self.p.sample_fps)
        if (fr.idx - origin) % max(self.step, 1):
            return
        img = fr.rgb()
        longest = max(img.shape[:2])
        self.scale = max(1.0, longest / self.max_side)
        if self.scale > 1.0:
            img = shrink(img, round(img.shape[1] / self.scale), round(img.shape[0] / self.scale))
        self.held.append((fr.idx, fr.t_s, img))

    def clip(self, c: dict) -> None:
        """A final clip (a raw_clips row: clip_id, start_frame, end_frame, kept; sample_origin): all its frames have
        been given. Its frames leave the pass; a kept clip is detected."""
        batch = []
        while self.held and self.held[0][0] < c["end_frame"]:
            item = self.held.popleft()
            if item[0] >= c["start_frame"]:
                batch.append(item)
        if not c.get("kept", True) or not batch:
            return
        at = still_frame(c["start_frame"], c["end_frame"], self.step, c.get("sample_origin"))
        still = next((img for idx, _, img in batch if idx == at), batch[len(batch) // 2][2])
        self.keep_still(c["clip_id"], jpeg(still, quality=90))
        self.run.frames += len(batch)
        if not self.parallel:
            self._add(*_detect_batch(self.detector, self.video_id, c["clip_id"], batch, self.scale, self.step))
            return
        shape = (len(batch), *batch[0][2].shape)
        if self.pool is None:
            self.pool = clip_pool(self.workers, self.pool_kind, int(np.prod(shape)))
        while len(self.pending) >= self.workers:  # at most `workers` clips' frames held at once
            self._collect(*self.pending.popleft())
        block = None
        if isinstance(self.pool, ProcessPoolExecutor) and len({img.shape for _, _, img in batch}) == 1:
            # a worker process reads the clip's frames from shared memory (one copy here, none through a pipe)
            block = self.blocks.take(batch, shape)
        if block is not None:
            try:
                job = cast(Executor, self.pool).submit(
                    _detect_shared, self.detector, self.video_id, c["clip_id"], block.name, shape,
                    [(idx, t) for idx, t, _ in batch], self.scale, self.step, self.blocks.names())
            except BaseException:
                self.blocks.drop(block)
                raise
        else:
            job = cast(Executor, self.pool).submit(_detect_batch, self.detector, self.video_id, c["clip_id"], batch,
                                                   self.scale, self.step)
        self.pending.append((job, block))

    def run_still(self, clip_id: str, data: bytes) -> None:
        self.run.stills[clip_id] = data

    def _collect(self, job: Future, block: Any = None) -> None:
        """A clip's rows and detector seconds, once its job is done; its shared memory block (if any) free for the
        next clip."""
        try:
            self._add(*job.result())
        finally:
            self.blocks.give(block)

    def _add(self, rows: pl.DataFrame, busy: float) -> None:
        self.run.add(rows)
        self.run.busy_s += busy

    def finish(self) -> DetectionRun:
        """The detections of every clip given, once the last is done."""
        while self.pending:
            self._collect(*self.pending.popleft())
        return self.run

    def close(self) -> None:
        """Stop the pool (also after an error: clips in flight are dropped)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.pending.clear()
        self.blocks.close()


def detect_video(video_id: str, frames: Iterable[VideoFrame], clips: pl.DataFrame, fps: float | None,
                 detector: ClipDetector, p: DetectionParams, workers: int = 1, pool_kind: str = "thread",
                 keep_still: Callable[[str, bytes], None] | None = None, spill: Path | None = None) -> DetectionRun:
    """Run the detector over the kept clips given (raw_clips rows; `sample_origin` from with_sample_origin, else
    each clip's own start) in one pass over the video's decoded `frames` (stopped after the last clip), keeping
    each clip's still as it goes by: what the one-pass `ingest` step does (DetectionPass) for clips planned
    before. `fps`: the video's declared frame rate (None: from its first two frames), which sets the sampling step
    (sample_step). `keep_still`, `spill`: see DetectionPass."""
    rows = list(clips.sort("start_frame").iter_rows(named=True))
    if not rows:
        return DetectionRun([], 0, 0.0, {})
    it = iter(frames)
    head = [f for _, f in zip(range(2), it)]
    if fps:
        step = sample_step(fps, p.sample_fps)
    else:  # the rule of DetectionPass, from the first two frames of the video
        step = first_frames_step(head[0].t_s, head[1].t_s, p.sample_fps) if len(head) == 2 else 1
    dp = DetectionPass(video_id, detector, p, step, workers if len(rows) > 1 else 1, pool_kind, keep_still, spill)
    i = 0
    try:
        for fr in itertools.chain(head, it):
            while i < len(rows) and fr.idx >= rows[i]["end_frame"]:
                dp.clip(rows[i])
                i += 1
            if i == len(rows):
                break
            if fr.idx >= rows[i]["start_frame"]:
                dp.frame(fr, rows[i].get("sample_origin", rows[i]["start_frame"]))
        for c in rows[i:]:
            dp.clip(c)
        return dp.finish()
    finally:
        dp.close()


def read_still(data: bytes, width: int, height: int) -> np.ndarray:
    """A still (see DetectionRun) as an RGB image of the video's display size (boxes are in its pixels)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a JPEG still")
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != (height, width):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return img


@dataclass(frozen=True)
class TrackParams:
    """How tracks are cut where their appearance changes for good, and tracklets joined across short gaps
    (occlusions, missed detections) within a shot."""

    bridge_gap_s: float = param(2.0, "a tracklet that ends is linked to one that starts at most this much later "
                                     "(seconds; 0 = no bridging)", ge=0)
    bridge_dist: float = param(1.0, "... whose start lies within this many box diagonals (times 1 + the gap in "
                                    "seconds) of where the first one's motion leads", gt=0)
    bridge_similarity: float = param(0.6, "... whose colour histograms intersect at least this much", ge=0, le=1)
    bridge_size_ratio: float = param(1.6, "... and whose box heights differ by at most this factor", ge=1)
    split_similarity: float = param(0.0, "a track whose colour histogram before and after some frame intersects less "
                                         "than this (e.g. 0.5) is cut there: it followed two objects (0 = never cut; "
                                         "off by default: see BENCHMARKS.md, issue 13)", ge=0, le=1)
    split_min_boxes: int = param(5, "... each side having at least this many boxes", ge=2)
    segment_frames: int = param(2000, "a run of a shot of twice this many sampled frames or more is tracked in "
                                      "segments of at least this many, on every core, and their tracks joined "
                                      "where they overlap (track_runs; 0 = one tracker over every run)", ge=0)

    def __post_init__(self) -> None:
        check_bounds(self)


def shot_runs(clips: pl.DataFrame) -> list[list[dict]]:
    """Kept clips grouped into runs of continuous footage that one tracker follows: same shot, each clip
    starting on the frame where the previous one ended (a dropped clip in between starts a new run)."""
    runs: list[list[dict]] = []
    for c in clips.sort("start_frame").iter_rows(named=True):
        last = runs[-1][-1] if runs else None
        if last is not None and last.get("shot_idx") == c.get("shot_idx") and last["end_frame"] == c["start_frame"]:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


# the detections' columns that tracking reads (not the masks: a long shot's are most of its detections' bytes)
TRACKER_INPUT = ["video_id", "clip_id", "frame_idx", "t_s", "det_idx", "x1", "y1", "x2", "y2", "score", "label",
                 "color", "hist", "sample_step"]


@dataclass
class RunFrames:
    """One run of clips (see shot_runs) made ready for a tracker: its detections as columns, in (frame, det_idx)
    order, and every sampled frame of the run (with or without boxes) in time order, as a slice of them. No
    per-frame DataFrame and no object per box: a long shot has tens of thousands of frames."""

    table: pl.DataFrame  # the run's detections (TRACKER_INPUT columns), sorted
    boxes: np.ndarray  # (N, 4) the detections' boxes
    scores: np.ndarray  # (N,)
    labels: list[str]  # N labels, one string object per distinct label
    offsets: np.ndarray  # (frames + 1,) frame i's detections are rows offsets[i]:offsets[i + 1]
    frames: list[tuple[int, float | None, list[str], list[str | None]]]  # (frame_idx, t_s, labels, colours)
    clip_ids: list[str]  # each frame's clip

    def __len__(self) -> int:
        return len(self.frames)

    def detections(self) -> Iterable[Detections]:
        """The frames' detections, made one at a time as a tracker takes them."""
        return Detections.of_frames(self.boxes, self.scores, self.labels, self.offsets)


def run_frames(run: Sequence[dict], dets: pl.DataFrame) -> RunFrames | None:
    """The run's RunFrames (None: no detections)."""
    if dets.is_empty():
        return None
    step = int(dets["sample_step"][0])
    d = dets.select(c for c in TRACKER_INPUT if c in dets.columns)
    gf, gk = np.diff(d["frame_idx"].to_numpy()), np.diff(d["det_idx"].to_numpy())
    if not np.all((gf > 0) | ((gf == 0) & (gk > 0))):  # (they come in this order: no copy of a long shot's rows)
        d = d.sort(["frame_idx", "det_idx"])
    at = d["frame_idx"].to_numpy()
    t_s = d["t_s"].to_numpy()
    # one string object per distinct label / colour name, not one per detection
    labels = cast(list[str], _interned(d["label"]))
    colours: list[str | None] = _interned(d["color"]) if "color" in d.columns else [None] * len(d)
    frames, clip_ids, starts = [], [], []
    for clip in run:
        idx = sampled_frames(clip["start_frame"], clip["end_frame"], step, clip.get("sample_origin"))
        lo, hi = np.searchsorted(at, idx, "left"), np.searchsorted(at, idx, "right")
        for f, a, b in zip(idx, lo.tolist(), hi.tolist()):
            frames.append((f, float(t_s[a]) if b > a else None, labels[a:b], colours[a:b]))
            starts.append((a, b))
        clip_ids.extend([clip["clip_id"]] * len(idx))
    spans = np.array(starts, np.int64).reshape(-1, 2)
    # frames are in time order and their detections contiguous, so each frame's slice starts where the last ended
    # (a frame outside every clip has none and is not sampled)
    offsets = np.append(spans[:, 0], spans[-1, 1] if len(spans) else 0)
    if len(spans) and not np.array_equal(spans[1:, 0], spans[:-1, 1]):
        d = d[np.concatenate([np.arange(a, b) for a, b in spans])]  # detections outside the run's frames: dropped
        return run_frames(run, d)
    return RunFrames(d, d.select("x1", "y1", "x2", "y2").to_numpy(), d["score"].to_numpy(), labels, offsets, frames,
                     clip_ids)


# sampled frames from which a video's tracking runs on every core (`tracks`): about 10 s of mmdet's tracker on one
# core (3 ms a frame, 2-CPU VM), where each more worker's import of torch and mmdet costs what one worker's does
PARALLEL_FRAMES = 3_000


def segment_bounds(n: int, length: int) -> list[int]:
    """Where a run of n frames is cut into segments of `length` frames or more (fewer than 2 x length: the run is
    cut into n // length equal parts; 0 = never cut): [0, ..., n]. It depends on n alone, so the labels do not
    depend on the machine's cores."""
    k = max(1, n // length) if length > 0 else 1
    return [round(i * n / k) for i in range(k + 1)]


def track_runs(runs: Sequence[RunFrames], follow: Callable[[np.ndarray, np.ndarray, list[str], np.ndarray], Tracked],
               segment_frames: int, warmup: int, min_len: int, workers: int = 1,
               worker_start: Callable | None = None, pool: KeptPool | None = None) -> list[Tracked]:
    """Every run tracked by fresh trackers (`follow(boxes, scores, labels, offsets)`, e.g.
    TrackerResource.follower(): a picklable function), the runs and the segments of a long run (segment_bounds)
    at once in up to `workers` processes; tracks of fewer than `min_len` boxes removed. A segment's tracker starts
    `warmup` frames before the segment and runs `warmup` frames past it; its tracks continue those of the
    segment before where the two trackers put the same detections in the same track on the frames both saw
    after the cut (stitch). The same result with any number of workers (`worker_start`: run at each one's start),
    here or in a kept `pool`'s (one worker: every job in one of them, e.g. a short video's, where the tracker is
    imported already)."""
    jobs, plan = [], []
    for r, rf in enumerate(runs):
        bounds = segment_bounds(len(rf), segment_frames)
        for k in range(len(bounds) - 1):
            s = max(0, bounds[k] - warmup) if k else 0
            e = min(len(rf), bounds[k + 1] + warmup) if k + 1 < len(bounds) - 1 else len(rf)
            a, b = int(rf.offsets[s]), int(rf.offsets[e])
            jobs.append((rf.boxes[a:b], rf.scores[a:b], rf.labels[a:b], rf.offsets[s:e + 1] - a))
            plan.append((r, s, bounds[k], bounds[k + 1]))
    parts = map_clips(follow, jobs, workers, initializer=worker_start, pool=pool)
    out = []
    for r, rf in enumerate(runs):
        mine = [(s, b0, b1, part) for (rr, s, b0, b1), part in zip(plan, parts) if rr == r]
        out.append(stitch(mine, len(rf)).without_short(min_len))
    return out


_KEY = 1 << 20  # (frame, detection) as one integer: frame * _KEY + detection index


def stitch(parts: Sequence[tuple[int, int, int, Tracked]], n: int) -> Tracked:
    """One Tracked over n frames from the trackers of consecutive segments: parts = (first frame the tracker saw,
    the segment's first frame, the frame after its last, its Tracked with frames counted from the first it saw).
    A segment's boxes on its own frames are kept; a track of a segment takes the id of the previous segment's
    track that holds the most of the same detections (frame and detection index) on the frames past the cut that
    both trackers saw (one to one, most shared first), else a new id (1, 2, ... in the order they come)."""
    if len(parts) == 1 and parts[0][0] == 0:  # one tracker over the whole run: its own ids
        return parts[0][3]
    kept: list[tuple[np.ndarray, np.ndarray, Tracked]] = []
    next_id, prev_ids = 1, dict[int, int]()  # the previous segment's track ids -> ids of the result
    prev_keys, prev_tracks = np.zeros(0, np.int64), np.zeros(0, np.int64)  # its boxes past its cut: (frame, det)
    for s, b0, b1, part in parts:
        f = part.frame + s
        key = f * _KEY + part.det_index
        mine: dict[int, int] = {}
        both = np.flatnonzero((f >= b0) & (part.det_index >= 0))
        if len(prev_keys) and len(both):
            at = np.searchsorted(prev_keys, key[both]).clip(0, len(prev_keys) - 1)
            hit = prev_keys[at] == key[both]
            pairs = np.column_stack([prev_tracks[at[hit]], part.track_id[both[hit]]])
            if len(pairs):
                found, counts = np.unique(pairs, axis=0, return_counts=True)
                taken: set[int] = set()
                for i in np.lexsort((found[:, 1], found[:, 0], -counts)).tolist():
                    old, new = int(found[i, 0]), int(found[i, 1])
                    if new not in mine and old not in taken and old in prev_ids:
                        mine[new] = prev_ids[old]
                        taken.add(old)
        for t in np.unique(part.track_id).tolist():
            if t not in mine:
                mine[t], next_id = next_id, next_id + 1
        own = (f >= b0) & (f < b1)
        kept.append((f[own], np.array([mine[t] for t in part.track_id[own].tolist()], np.int64), part.take(own)))
        after = np.flatnonzero((f >= b1) & (part.det_index >= 0))
        order = after[np.argsort(key[after], kind="stable")]
        prev_keys, prev_tracks, prev_ids = key[order], part.track_id[order], mine
    return Tracked(n, np.concatenate([k[0] for k in kept]), np.concatenate([k[1] for k in kept]),
                   np.concatenate([k[2].boxes for k in kept]), np.concatenate([k[2].scores for k in kept]),
                   np.concatenate([k[2].det_index for k in kept]))


def shot_track_rows(video_id: str, run: Sequence[dict], dets: pl.DataFrame,
                    track_clip: Callable[[Iterable[Detections]], Tracked],
                    params: TrackParams | None = None, first_id: int = 1) -> tuple[pl.DataFrame, int, int]:
    """The tracks table (TRACKS) of one run of clips (see shot_runs): every sampled frame of the run (with or
    without boxes) goes, in time order, to `track_clip` (a FRESH tracker, e.g. TrackerResource.track_clip), so a
    track keeps its id from one clip of the shot to the next; then run_track_rows. Returns (table, frames fed to
    the tracker, next free id)."""
    rf = run_frames(run, dets)
    if rf is None:
        return frame([], TRACKS), 0, first_id
    return run_track_rows(video_id, rf, track_clip(rf.detections()), params, first_id)


def run_track_rows(video_id: str, rf: RunFrames, tracked: Tracked, params: TrackParams | None = None,
                   first_id: int = 1) -> tuple[pl.DataFrame, int, int]:
    """The tracks table (TRACKS) of a run from its tracker's boxes: tracklets joined across short gaps
    (bridge_tracklets) and numbered from `first_id` in order of appearance, so ids are unique within the video.
    Each row carries the clip its frame belongs to. Returns (table, frames fed to the tracker, next free id).
    The boxes are held as columns, not as a Python object each: a long shot has hundreds of thousands."""
    params = params or TrackParams()
    table = track_rows(video_id, "", rf.frames, tracked)
    pos, det = table["_pos"].to_numpy(), table["_det"].to_numpy()
    row = np.where(det >= 0, rf.offsets[:-1][pos] + det, -1)  # the detection's row in rf.table
    hists, has_hist = hist_matrix(rf.table)
    # per track: (frame, row of `hists`) of its boxes with a histogram, in time order
    with_hist = np.flatnonzero((row >= 0) & has_hist[np.maximum(row, 0)])
    seqs = _per_track(table["track_id"].to_numpy()[with_hist], np.column_stack([table["frame_idx"].to_numpy()[with_hist],
                                                                               row[with_hist]]))
    if params.split_similarity > 0:
        table, seqs = split_on_appearance(table, seqs, hists, params)
    table = bridge_tracklets(table, {t: hists[seq[:, 1]].mean(axis=0) for t, seq in seqs.items()}, params)
    for key in ("label", "color"):  # a joined track's label and colour: the majority over its tracklets' boxes
        table = table.drop(key).join(majority(table, "track_id", key), on="track_id", how="left", maintain_order="left")
    first = table.group_by("track_id").agg(pl.col("frame_idx").min()).sort("frame_idx", "track_id")
    order = dict(zip(first["track_id"].to_list(), range(first_id, first_id + len(first))))
    table = table.with_columns(track_id=pl.col("track_id").replace_strict(order),
                               clip_id=pl.Series(rf.clip_ids, dtype=pl.String).gather(pos))
    return table.select([pl.col(k).cast(v) for k, v in TRACKS.items()]), len(rf), first_id + len(order)


def _interned(names: pl.Series) -> list[str | None]:
    """The names as a list holding one string object per distinct name (a long shot has hundreds of thousands)."""
    return [sys.intern(x) if x is not None else None for x in names.to_list()]


def _per_track(track_ids: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """values (rows in time order) grouped by track id, each group in time order."""
    order = np.argsort(track_ids, kind="stable")
    ids, starts = np.unique(track_ids[order], return_index=True)
    return {int(t): values[order[a:b]] for t, a, b in zip(ids, starts, [*starts[1:], len(order)])}


def hist_matrix(dets: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The detections' appearance histograms as one uint8 matrix (a row per detection; a long shot has hundreds of
    thousands, which as Python lists cost ten times the memory) and which rows have one."""
    n = len(dets)
    if "hist" not in dets.columns or dets["hist"].null_count() == n:
        return np.zeros((n, 0), np.uint8), np.zeros(n, bool)
    lens = dets["hist"].list.len().fill_null(0).to_numpy()
    width = int(lens.max())
    has = (lens == width) & (width > 0)
    out = np.zeros((n, width), np.uint8)
    if has.any():
        out[has] = dets["hist"].filter(pl.Series(has)).explode().to_numpy().astype(np.uint8).reshape(-1, width)
    return out, has


def split_on_appearance(table: pl.DataFrame, seqs: dict[int, np.ndarray], hists: np.ndarray,
                        p: TrackParams) -> tuple[pl.DataFrame, dict[int, np.ndarray]]:
    """Cut a track where its colour histogram changes for good (the tracker followed one object, then another):
    the cut is at the frame that best separates the track's boxes (`seqs`: per track, its boxes' (frame, row of
    `hists`) in time order, an array of pairs) into two runs of at least `split_min_boxes`, when the two runs' mean
    histograms intersect less than `split_similarity`. The later run gets a new id. Returns the table (columns
    track_id and frame_idx used) and the (frame, row) runs of the tracks after the cuts."""
    next_id = int(cast(int, table["track_id"].max())) + 1 if len(table) else 1
    cuts: list[tuple[int, int, int]] = []  # (track, first frame of its later run, the run's id)
    out: dict[int, np.ndarray] = {}
    for tid, seq in seqs.items():
        n, k = len(seq), p.split_min_boxes
        best = None
        if n >= 2 * k:
            h = hists[seq[:, 1]].astype(float)
            h = h / np.maximum(h.sum(axis=1, keepdims=True), 1e-9)
            csum = np.cumsum(h, axis=0)
            for i in range(k, n - k + 1):
                sim = float(np.minimum(csum[i - 1] / i, (csum[-1] - csum[i - 1]) / (n - i)).sum())
                if best is None or sim < best[0]:
                    best = (sim, i)
        if best is not None and best[0] < p.split_similarity:
            cuts.append((tid, int(seq[best[1], 0]), next_id))
            out[tid], out[next_id] = seq[:best[1]], seq[best[1]:]
            next_id += 1
        else:
            out[tid] = seq
    if cuts:
        c = np.array(sorted(cuts), np.int64)
        ids, frames = table["track_id"].to_numpy(), table["frame_idx"].to_numpy()
        at = np.clip(np.searchsorted(c[:, 0], ids), 0, len(c) - 1)  # the cut of each box's track, if it has one
        moved = (c[at, 0] == ids) & (frames >= c[at, 1])
        table = table.with_columns(track_id=pl.Series(np.where(moved, c[at, 2], ids)))
    return table, out


def clip_track_rows(video_id: str, clip: dict, dets: pl.DataFrame,
                    track_clip: Callable[[Iterable[Detections]], Tracked],
                    params: TrackParams | None = None) -> tuple[pl.DataFrame, int]:
    """shot_track_rows of a single clip: (table, frames fed to the tracker)."""
    table, n_frames, _ = shot_track_rows(video_id, [clip], dets, track_clip, params)
    return table, n_frames


def _ends(table: pl.DataFrame) -> dict[int, dict]:
    """Per track: first / last time, box and centre velocity (px/s, fitted over up to 1 s at each end)."""
    d = table.select("track_id", "frame_idx", "t_s", "x1", "y1", "x2", "y2").with_row_index("_i")
    d = d.sort("frame_idx", "_i")
    tb = np.column_stack([d["t_s"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
                          d.select("x1", "y1", "x2", "y2").to_numpy().astype(float)])
    out = {}
    for tid, rows in _per_track(d["track_id"].to_numpy(), tb).items():
        t, b = rows[:, 0], rows[:, 1:]
        if np.isnan(t).any():
            continue
        c = (b[:, :2] + b[:, 2:]) / 2
        out[tid] = {"t0": t[0], "t1": t[-1], "b0": b[0], "b1": b[-1], "c0": c[0], "c1": c[-1],
                    "v0": _velocity(t, c, t <= t[0] + 1.0), "v1": _velocity(t, c, t >= t[-1] - 1.0)}
    return out


def _velocity(t: np.ndarray, c: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Least-squares velocity (px/s) of centres c over the selected times."""
    if sel.sum() < 2 or np.ptp(t[sel]) <= 0:
        return np.zeros(2)
    return np.array([np.polyfit(t[sel], c[sel, k], 1)[0] for k in range(2)])


def bridge_tracklets(table: pl.DataFrame, hists: dict[int, np.ndarray], p: TrackParams) -> pl.DataFrame:
    """Join tracklets across short gaps: tracklet A (ends at t1) is continued by B (starts at t0, 0 < t0 - t1 <=
    bridge_gap_s) when B's first box lies where A's motion leads (A's end moved on by its velocity; and A's end
    where B's motion comes from), within bridge_dist box diagonals x (1 + gap), their box heights agree within
    bridge_size_ratio, and their mean colour histograms intersect >= bridge_similarity (without histograms the
    distance must be half as small). Candidate links are taken cheapest first, each tracklet continuing at most
    one and continued by at most one; B's boxes get A's id (columns track_id, frame_idx, t_s, x1..y2 used)."""
    if p.bridge_gap_s <= 0 or table.is_empty():
        return table
    ends = _ends(table)
    by_start = sorted(ends, key=lambda t: ends[t]["t0"])
    starts = [ends[t]["t0"] for t in by_start]
    cands = []
    for a, ea in ends.items():
        # only the tracklets starting within the gap after A ends (a long shot has thousands of tracklets)
        lo, hi = bisect.bisect_right(starts, ea["t1"]), bisect.bisect_right(starts, ea["t1"] + p.bridge_gap_s + 1e-6)
        for b in by_start[lo:hi]:
            eb = ends[b]
            gap = eb["t0"] - ea["t1"]
            if not 0 < gap <= p.bridge_gap_s:  # (the slice is widened by 1e-6)
                continue
            ha, hb = ea["b1"][3] - ea["b1"][1], eb["b0"][3] - eb["b0"][1]
            if min(ha, hb) <= 0 or max(ha, hb) / min(ha, hb) > p.bridge_size_ratio:
                continue
            diag = float(np.hypot(*(ea["b1"][2:] - ea["b1"][:2])))
            fwd = np.hypot(*(ea["c1"] + ea["v1"] * gap - eb["c0"]))
            back = np.hypot(*(eb["c0"] - eb["v0"] * gap - ea["c1"]))
            err = min(fwd, back) / max(diag, 1.0) / (1.0 + gap)
            sim = hist_similarity(hists.get(a), hists.get(b))
            limit = p.bridge_dist if sim is not None else p.bridge_dist / 2
            if err > limit or (sim is not None and sim < p.bridge_similarity):
                continue
            cands.append((err / limit + (1.0 - (sim if sim is not None else 0.5)), a, b))
    nxt: dict[int, int] = {}
    prv: dict[int, int] = {}
    for _, a, b in sorted(cands):
        if a not in nxt and b not in prv:
            nxt[a], prv[b] = b, a
    root = {}
    for tid in prv:
        head = tid
        while head in prv:
            head = prv[head]
        root[tid] = head
    return table.with_columns(pl.col("track_id").replace(root)) if root else table


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id * 7919)
    h = int(rng.integers(0, 180))
    hsv = np.array([[[h, 220, 255]]], dtype=np.uint8)
    r, g, b = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return r, g, b


def draw_tracks(image: np.ndarray, tracks: pl.DataFrame, at_frame: int | None = None, width: int = 960) -> bytes:
    """PNG of the tracks over an RGB keyframe: each track's centre path, and its box + id + label at the
    keyframe (or at its last observation before it); a palette PNG, or smaller, when a full-colour one would be
    over the metadata budget (plots.encode_png)."""
    img = image.copy()
    scale = 1.0
    if img.shape[1] > width:
        scale = width / img.shape[1]
        img = cv2.resize(img, (width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    thick = max(1, round(img.shape[1] / 480))
    for (clip_id, track_id), t in tracks.sort("frame_idx").group_by(["clip_id", "track_id"], maintain_order=True):
        colour = _colour(seed_for(clip_id, track_id) % 100000)
        cx = ((t["x1"] + t["x2"]) / 2 * scale).to_numpy()
        cy = ((t["y1"] + t["y2"]) / 2 * scale).to_numpy()
        pts = np.stack([cx, cy], axis=1).round().astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, thick, cv2.LINE_AA)
        shown = t.filter(pl.col("frame_idx") <= at_frame) if at_frame is not None else t
        row = (shown if not shown.is_empty() else t).row(-1, named=True)
        p1 = (int(row["x1"] * scale), int(row["y1"] * scale))
        p2 = (int(row["x2"] * scale), int(row["y2"] * scale))
        cv2.rectangle(img, p1, p2, colour, thick)
        cv2.putText(img, f"{track_id} {row['label']}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thick, colour, thick, cv2.LINE_AA)
    return encode_png(img)  # under plots.MAX_BYTES: it goes into the event log of every run, for every video


def mot_text(tracks: pl.DataFrame, interpolate: bool = True) -> str:
    """MOTChallenge lines `frame,id,x,y,w,h,score,-1,-1,-1` for ONE video: frames 1-based over the source
    video's decoded frames; ids renumbered 1.. in order of appearance over the video's track ids (unique within a
    video: the clips of a shot share them); with `interpolate`, boxes are linearly interpolated over the frames
    skipped by sampling (and short gaps a track was bridged over) between two observations of a track."""
    if tracks.is_empty():
        return ""
    t = tracks.sort("track_id", "frame_idx")
    first = t.group_by("track_id").agg(pl.col("frame_idx").min()).sort("frame_idx", "track_id")
    ids = {k: i + 1 for i, k in enumerate(first["track_id"].to_list())}
    lines: list[tuple[int, int, float, float, float, float, float]] = []
    for (track_id,), g in t.group_by(["track_id"], maintain_order=True):
        gid = ids[track_id]
        f = g["frame_idx"].to_numpy()
        b = g.select("x1", "y1", "x2", "y2").to_numpy()
        s = g["score"].to_numpy()
        for i in range(len(f)):
            lines.append((int(f[i]) + 1, gid, *b[i], float(s[i])))
            if interpolate and i + 1 < len(f) and f[i + 1] - f[i] > 1:
                for fr in range(int(f[i]) + 1, int(f[i + 1])):
                    w = (fr - f[i]) / (f[i + 1] - f[i])
                    lines.append((fr + 1, gid, *((1 - w) * b[i] + w * b[i + 1]), float(min(s[i], s[i + 1]))))
    lines.sort(key=lambda r: (r[0], r[1]))
    return "".join(
        f"{fr},{i},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{sc:.4f},-1,-1,-1\n" for fr, i, x1, y1, x2, y2, sc in lines
    )
