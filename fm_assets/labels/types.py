"""The data that crosses from perception into the labels: a frame's detections, a tracked box, and what a
decoded video frame offers. Plain numpy; every detector backend and tracker produces these."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class VideoFrame(Protocol):
    """A decoded frame (fm_resources.video.Frame is one)."""

    idx: int  # decode-order index over the whole source video, 0-based
    t_s: float  # presentation time in seconds from the stream start
    rotation: int  # display rotation in degrees (0, 90, 180, 270), already applied by luma() and rgb()

    def luma(self, step: int = 1) -> np.ndarray: ...

    def rgb(self, width: int | None = None) -> np.ndarray: ...


@dataclass
class Detections:
    """Boxes found on one frame. Coordinates are pixels of the frame given to the detector."""

    boxes: np.ndarray  # (N, 4) float32: x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32 in [0, 1]
    labels: list[str]  # N class names
    masks: list[dict | None] | None = None  # N COCO RLEs ({"size": [h, w], "counts": str}) or None
    extra: dict = field(default_factory=dict)  # backend-specific per-box arrays (e.g. "person_score")
    # where the detector has them: the masks as (x, y, crop), the crop (nonzero = in) placed at column x, row y of
    # the frame, exactly what `masks` encodes (read instead of decoding the RLE)
    mask_crops: list[tuple[int, int, np.ndarray]] | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)):
            raise ValueError("boxes, scores and labels must have the same length")
        if self.masks is not None and len(self.masks) != len(self.boxes):
            raise ValueError("masks must have one entry per box")
        if self.mask_crops is not None and (self.masks is None or len(self.mask_crops) != len(self.boxes)):
            raise ValueError("mask_crops must have one entry per box, and masks too")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [])

    @classmethod
    def of_frames(cls, boxes: np.ndarray, scores: np.ndarray, labels: list[str],
                  offsets: np.ndarray) -> Iterator[Detections]:
        """Frame i's detections from columns: rows offsets[i]:offsets[i + 1] of boxes, scores and labels (made one
        at a time, as a tracker takes them: a long shot has tens of thousands of frames)."""
        for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            yield cls(boxes[a:b], scores[a:b], labels[a:b])


@dataclass(slots=True)
class TrackedBox:
    track_id: int
    box: np.ndarray  # x1, y1, x2, y2 (the tracker's box: the matched detection)
    score: float
    det_index: int  # index of the detection on this frame


@dataclass
class Tracked:
    """A tracker's output over a sequence of frames as columns, a row per tracked box in frame order: a long shot
    has hundreds of thousands of boxes, held as arrays rather than as an object each."""

    n_frames: int  # frames in the sequence (some may have no box)
    frame: np.ndarray  # (N,) int64: the box's frame, an index into the sequence
    track_id: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float64: x1, y1, x2, y2 (the tracker's box: the matched detection)
    scores: np.ndarray  # (N,) float64
    det_index: np.ndarray  # (N,) int64: the detection on that frame (-1: a box the tracker made itself)

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls, n_frames: int = 0) -> Tracked:
        return cls(n_frames, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0),
                   np.zeros(0, np.int64))

    def take(self, keep: np.ndarray) -> Tracked:
        """The rows `keep` selects (a boolean mask or indices), over the same frames."""
        return Tracked(self.n_frames, self.frame[keep], self.track_id[keep], self.boxes[keep], self.scores[keep],
                       self.det_index[keep])

    def without_short(self, min_len: int) -> Tracked:
        """Without the tracks of fewer than `min_len` boxes."""
        found, counts = np.unique(self.track_id, return_counts=True)
        return self.take(np.isin(self.track_id, found[counts >= min_len]))

    def per_frame(self) -> list[list[TrackedBox]]:
        """The boxes frame by frame, a TrackedBox each (for a short sequence)."""
        out: list[list[TrackedBox]] = [[] for _ in range(self.n_frames)]
        for k in range(len(self)):
            out[int(self.frame[k])].append(TrackedBox(int(self.track_id[k]), self.boxes[k], float(self.scores[k]),
                                                      int(self.det_index[k])))
        return out
