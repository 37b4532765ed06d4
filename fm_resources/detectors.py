"""Detectors: one small protocol, two backends.

A detector sees the sampled frames of ONE clip (RGB uint8 arrays, display orientation, all the same size, in
time order) and returns one `Detections` per frame. Backends:
- `motion` (default, embedded, no weights): background subtraction learned over the clip (see motion.py).
- `mmdet`: any mmdet 3.x config + checkpoint (see mmdet_backend.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr


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


class DetectorConfigError(ValueError):
    """The detector is misconfigured (missing or broken config / checkpoint): raised before any video is touched."""


class DetectorResource(ConfigurableResource):
    """Which detector the `detections` asset uses. `motion` needs no weights; `mmdet` takes any mmdet 3.x config
    (a file, or the name of a config shipped with mmdet) and checkpoint (a path, or a URL where the machine can
    download), on cpu or cuda. The detector is built (and a bad config or checkpoint rejected) when a run starts,
    before any video is read."""

    backend: Literal["motion", "mmdet"] = "motion"
    mmdet_config: str | None = Field(None, description="config path or packaged config name, e.g. rtmdet_tiny_8xb32-300e_coco")
    mmdet_checkpoint: str | None = Field(None, description="checkpoint path or URL")
    device: str = "cpu"
    batch_size: int = 8
    score_thr: float = 0.3
    text_prompt: str | None = Field(None, description="class prompt for open-vocabulary models (Grounding DINO)")

    _detector: object = PrivateAttr(default=None)

    def build(self) -> Detector:
        if self.backend == "motion":
            from fm_resources.motion import MotionDetector

            return MotionDetector()
        if not self.mmdet_config or not self.mmdet_checkpoint:
            raise DetectorConfigError("backend 'mmdet' needs both mmdet_config and mmdet_checkpoint")
        from fm_resources.mmdet_backend import MMDetDetector

        return MMDetDetector(config=self.mmdet_config, checkpoint=self.mmdet_checkpoint, device=self.device,
                             batch_size=self.batch_size, score_thr=self.score_thr, text_prompt=self.text_prompt)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._detector = self.build()

    def get(self) -> Detector:
        if self._detector is None:
            self._detector = self.build()
        return self._detector
