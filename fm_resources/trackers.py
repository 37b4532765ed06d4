"""Multi-object trackers from mmdet 3.x (the successor of mmtrack): ByteTrack (default) and OC-SORT.

The mmdet side (feeding a tracker, its worker processes) is fm_resources.mmdet_trackers, which workers import
without Dagster. `TrackerResource.track_clip()` builds a FRESH mmdet tracker for every sequence it is given (the
`tracks` asset gives it one run of continuous clips of a shot at a time), so ids and Kalman state never leak
between shots or videos (a class- or module-level tracker state is a classic bug). Track ids are numbered from 1 within a
sequence; fm_assets.labels.tracking.shot_track_rows renumbers them to be unique within the video.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from fm_assets.labels.types import Detections, Tracked
from fm_assets.labels.workers import KeptPool
from fm_resources.mmdet_trackers import WORKERS, ClipTracker, follow, follow_frames, new_tracker


class TrackerResource(ConfigurableResource):
    """mmdet.models.trackers.ByteTracker or OCSORTTracker with their thresholds exposed."""

    kind: Literal["bytetrack", "ocsort"] = "bytetrack"
    high_score: float = Field(0.6, description="ByteTrack: first-association score threshold (OC-SORT: obj_score_thr)")
    low_score: float = Field(0.1, description="ByteTrack: second-association score threshold")
    init_track_score: float = Field(0.7, description="a new track starts only from a detection scoring above this")
    match_iou_high: float = 0.1
    match_iou_low: float = 0.5
    match_iou_tentative: float = 0.3
    num_tentatives: int = Field(3, description="frames before a new track is confirmed")
    keep_lost_frames: int = Field(30, description="frames a lost track is remembered (num_frames_retain)")
    min_track_len: int = Field(5, description="tracks with fewer boxes are dropped")
    match_buffer: float = Field(0.0, ge=0.0, description="boxes are matched widened by this share of their width and "
                                                          "height on each side (C-BIoU): small, fast objects")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """A run that tracks starts its first tracking worker now, where none is running: the worker imports torch
        and mmdet on another core while the run's first steps decode and detect (seconds in a new process)."""
        WORKERS.warm()

    def settings(self) -> dict:
        """The fields by name (what mmdet_trackers' functions take)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def pool(self) -> KeptPool:
        """This process's tracking workers (`follower()` runs there), kept from run to run."""
        return WORKERS

    def new_clip(self) -> ClipTracker:
        return new_tracker(self.settings())

    def track_clip(self, detections: Iterable[Detections]) -> Tracked:
        """Track one sequence of frames (a clip, or a run of clips of a shot) with a fresh tracker; tracks with fewer
        than min_track_len boxes are removed."""
        return self.follow(detections).without_short(self.min_track_len)

    def follow(self, detections: Iterable[Detections]) -> Tracked:
        """Every box a fresh tracker keeps over the frames, short tracks included, as columns (Tracked)."""
        return follow(self.settings(), detections)

    def warmup_frames(self) -> int:
        """Frames a fresh tracker is run before the part of a long sequence it is given, so that its tracks have
        caught up with those of a tracker that saw everything (fm_assets.labels.tracking.track_runs): twice
        the frames a lost track is remembered, plus the frames that confirm a new one."""
        return 2 * self.keep_lost_frames + self.num_tentatives

    def follower(self) -> Callable[[np.ndarray, np.ndarray, list[str], np.ndarray], Tracked]:
        """`follow` as a function a worker process can run (follow_frames with this tracker's settings)."""
        return functools.partial(follow_frames, self.settings())
