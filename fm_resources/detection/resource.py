"""The detector as a Dagster resource: which backend, built (and checked) when a run starts. Backends:
- `motion` (default, embedded, no weights): background subtraction learned over the clip (fm_resources.detection.motion).
- `mmdet`: any mmdet 3.x config + checkpoint (fm_resources.detection.mmdet).
"""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from fm_resources.detection.types import Detector, DetectorConfigError


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
    fp16: bool = Field(False, description="mmdet on CUDA: inference under float16 autocast")
    text_prompt: str | None = Field(None, description="class prompt for open-vocabulary models (Grounding DINO)")
    clip_workers: int = Field(0, ge=0, description="clips detected at once, by a detector that allows it (motion); "
                                                  "0 = one per CPU core of this process, 1 = one at a time")
    clip_pool: Literal["thread", "process"] = Field(
        "process", description="run clip_workers as processes (default: no GIL between them; each clip's frames go "
                               "to its worker through shared memory; threads where a process cannot start workers, e.g. "
                               "a daemonic one, or /dev/shm has no room for a clip per worker) or as threads (less memory: on 2 cores and a 21-minute video "
                               "threads took a third longer to detect and 130-190 MB less in all, see BENCHMARKS.md)")

    _detector: object = PrivateAttr(default=None)

    def build(self) -> Detector:
        if self.backend == "motion":
            from fm_resources.detection.motion import MotionDetector

            return MotionDetector()
        if not self.mmdet_config or not self.mmdet_checkpoint:
            raise DetectorConfigError("backend 'mmdet' needs both mmdet_config and mmdet_checkpoint")
        from fm_resources.detection.mmdet import MMDetDetector

        return MMDetDetector(config=self.mmdet_config, checkpoint=self.mmdet_checkpoint, device=self.device,
                             batch_size=self.batch_size, score_thr=self.score_thr, text_prompt=self.text_prompt,
                             fp16=self.fp16)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._detector = self.build()

    def workers(self) -> int:
        """How many clips `detect_video` may detect at once (clip_workers; 0 = the CPU cores this process may use)."""
        from fm_assets.labels.workers import cores

        return self.clip_workers or cores()

    def get(self) -> Detector:
        if self._detector is None:
            self._detector = self.build()
        return self._detector
