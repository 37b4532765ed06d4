"""The mmdet side of fm_resources.trackers: mmdet 3.x's ByteTracker and OCSORTTracker fed a sequence of frames'
detections, and the worker processes that run them. No Dagster here: a tracking worker imports this module, torch
and mmdet, and nothing else it does not need."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fm_assets.labels.types import Detections, Tracked
from fm_assets.labels.workers import KeptPool


def register_mmdet() -> None:
    """Import mmdet and register its modules (trackers, motion models): seconds the first time in a process."""
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=False)


def _scaled(boxes: np.ndarray, factor: float) -> np.ndarray:
    """xyxy boxes scaled by `factor` about their centres, in their own dtype."""
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return np.concatenate([centre - half, centre + half], axis=1).astype(boxes.dtype)


class ClipTracker:
    """Feeds one clip's detections, frame by frame (including frames without detections), to an mmdet tracker."""

    def __init__(self, mmdet_tracker, buffer: float = 0.0) -> None:
        self._tracker = mmdet_tracker
        self._frame = 0
        # C-BIoU's buffered matching: each box is widened by `buffer` of its width and height on every side before
        # the tracker sees it, so that a small object moving more than its own size between sampled frames still
        # overlaps its last box; the rows keep the detection's own box
        self._grow = 1.0 + 2.0 * buffer
        # mmdet's trackers keep every box of a track in Python lists (a tensor each), so on a long shot their memory
        # grows with its length; they read only the last entries: the last box and frame, len(bboxes) against
        # num_tentatives, OC-SORT's observation vel_delta_t back or the last one seen (a lost track is dropped
        # after num_frames_retain frames). Entries older than that are dropped after each frame: same tracks.
        t = mmdet_tracker
        self._history = t.num_frames_retain + getattr(t, "num_tentatives", 0) + getattr(t, "vel_delta_t", 0) + 2

    def update(self, det: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The next frame's detections in; the boxes the tracker keeps on it out, as arrays: track ids (from 1),
        boxes (N, 4), scores and the detection each one is (-1: a box the tracker made itself)."""
        import torch
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        given = _scaled(det.boxes, self._grow) if self._grow != 1.0 else det.boxes
        # inference mode: no autograd bookkeeping on the tracker's many small tensor operations (10-15 % of its
        # time a frame; the same tracks)
        with torch.inference_mode():
            sample = DetDataSample(metainfo={"frame_id": self._frame})
            sample.pred_instances = InstanceData(
                bboxes=torch.from_numpy(given.copy()),
                scores=torch.from_numpy(det.scores.copy()),
                labels=torch.zeros(len(det), dtype=torch.long),  # class-agnostic association
            )
            out = self._tracker.track(sample)
        self._frame += 1
        for track in self._tracker.tracks.values():
            for history in track.values():
                if isinstance(history, list) and len(history) > self._history:
                    del history[: len(history) - self._history]
        if not len(out):
            return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
        boxes = out.bboxes.numpy()
        # the tracker returns the detections it kept, with their ids; which detection each one is (the first
        # within 1e-3 px of it: every box at once)
        same = np.isclose(given[None], boxes[:, None], atol=1e-3).all(axis=2)
        which = np.where(same.any(axis=1), same.argmax(axis=1), -1)
        if self._grow != 1.0:  # back to the detections' own boxes (a box the tracker made itself: unwidened)
            boxes = np.where((which >= 0)[:, None], det.boxes[np.maximum(which, 0)], _scaled(boxes, 1.0 / self._grow))
        return (out.instances_id.numpy().astype(np.int64) + 1, boxes.astype(np.float64),
                out.scores.numpy().astype(np.float64), which.astype(np.int64))


def new_tracker(s: dict) -> ClipTracker:
    """A fresh mmdet tracker with TrackerResource's settings `s` (its fields by name), fed frame by frame."""
    register_mmdet()
    from mmdet.models.trackers import ByteTracker, OCSORTTracker

    motion = {"type": "KalmanFilter"}
    if s["kind"] == "bytetrack":
        tracker = ByteTracker(
            motion=motion,
            obj_score_thrs={"high": s["high_score"], "low": s["low_score"]},
            init_track_thr=s["init_track_score"],
            weight_iou_with_det_scores=True,
            match_iou_thrs={"high": s["match_iou_high"], "low": s["match_iou_low"],
                            "tentative": s["match_iou_tentative"]},
            num_tentatives=s["num_tentatives"],
            num_frames_retain=s["keep_lost_frames"],
        )
    else:
        tracker = OCSORTTracker(
            motion=motion,
            obj_score_thr=s["high_score"],
            init_track_thr=s["init_track_score"],
            weight_iou_with_det_scores=True,
            match_iou_thr=1.0 - s["match_iou_low"],
            num_tentatives=s["num_tentatives"],
            num_frames_retain=s["keep_lost_frames"],
        )
    return ClipTracker(tracker, s["match_buffer"])


def follow(settings: dict, detections: Iterable[Detections]) -> Tracked:
    """Every box a fresh tracker keeps over the frames, short tracks included. The boxes come out as columns
    (Tracked), gathered a block of frames at a time: a long shot's hundreds of thousands of boxes never exist
    as an object each."""
    clip = new_tracker(settings)
    blocks: list[tuple[np.ndarray, ...]] = []
    block: list[tuple[np.ndarray, ...]] = []
    n = 0
    for n, det in enumerate(detections, 1):
        ids, boxes, scores, which = clip.update(det)
        if len(ids):
            block.append((np.full(len(ids), n - 1, np.int64), ids, boxes, scores, which))
        if len(block) >= 1024:
            blocks.append(tuple(np.concatenate(col) for col in zip(*block)))
            block = []
    if block:
        blocks.append(tuple(np.concatenate(col) for col in zip(*block)))
    if not blocks:
        return Tracked.empty(n)
    frame, ids, boxes, scores, which = (np.concatenate(col) for col in zip(*blocks))
    return Tracked(n, frame, ids, boxes, scores, which)


def follow_frames(settings: dict, boxes: np.ndarray, scores: np.ndarray, labels: list[str],
                  offsets: np.ndarray) -> Tracked:
    """`follow` over the frames whose detections are boxes[offsets[i]:offsets[i + 1]] (scores, labels likewise):
    one segment of a long run, e.g. in a worker process."""
    return follow(settings, Detections.of_frames(boxes, scores, labels, offsets))


def one_thread() -> None:
    """A tracking worker process's start: torch on one thread (the tracker's tensors are a few boxes each, and
    the other cores run the other segments)."""
    import torch

    torch.set_num_threads(1)


def start_worker() -> None:
    """A kept tracking worker's start: torch on one thread, mmdet imported and registered."""
    one_thread()
    register_mmdet()


# this process's tracking workers, kept from run to run (a process that labels one video after another imports
# torch and mmdet in them once); a run that tracks starts the first one (TrackerResource.setup_for_execution)
WORKERS = KeptPool(start_worker)
