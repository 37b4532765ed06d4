"""The data that crosses from perception into the labels: a frame's detections, a tracked box, and what a
decoded video frame offers. Plain numpy; every detector backend and tracker produces these."""

from __future__ import annotations

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

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)):
            raise ValueError("boxes, scores and labels must have the same length")
        if self.masks is not None and len(self.masks) != len(self.boxes):
            raise ValueError("masks must have one entry per box")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [])


@dataclass(slots=True)  # a long shot's tracker output holds hundreds of thousands: no __dict__ each
class TrackedBox:
    track_id: int
    box: np.ndarray  # x1, y1, x2, y2 (the tracker's box: the matched detection)
    score: float
    det_index: int  # index of the detection on this frame
