"""Detectors: one small protocol, two backends.

A detector sees the sampled frames of ONE clip (RGB uint8 arrays, display orientation, all the same size, in
time order) and returns one `Detections` per frame. Backends:
- `motion` (default, embedded, no weights): background subtraction learned over the clip (see motion.py).
- `mmdet`: any mmdet 3.x config + checkpoint (see mmdet_backend.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


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


class Detector(Protocol):
    name: str  # e.g. "motion" or "mmdet:rtmdet_tiny_8xb32-300e_coco"

    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per frame of one clip. Must not keep state between calls."""
        ...
