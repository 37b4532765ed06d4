"""What a detector is, free of Dagster: the `Detector` protocol and its configuration error. A detector sees
the sampled frames of ONE clip (RGB uint8 arrays, display orientation, all the same size, in time order) and
returns one `fm_assets.labels.types.Detections` per frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fm_assets.labels.types import Detections

__all__ = ["Detections", "Detector", "DetectorConfigError"]


class Detector(Protocol):
    name: str  # e.g. "motion" or "mmdet:rtmdet_tiny_8xb32-300e_coco"

    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per frame of one clip. Must not keep state between calls."""
        ...


class DetectorConfigError(ValueError):
    """The detector is misconfigured (missing or broken config / checkpoint): raised before any video is touched."""
