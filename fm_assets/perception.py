"""Stage 2: kept clips -> `detections` (every sampled frame, never the first frame only) -> `tracks`
(a fresh mmdet tracker per clip)."""

import base64
import time

import cv2
import numpy as np
import polars as pl
from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import Field

from fm_assets.partitions import BACKFILL_POLICY, for_each_video, lookup_video, of_video, videos_partitions
from fm_assets.schemas import DETECTIONS, TRACKS, frame
from fm_assets.tracking import (
    detection_rows,
    draw_tracks,
    frame_detections,
    sample_step,
    sampled_frames,
    track_rows,
)
from fm_resources.detectors import DetectorResource
from fm_resources.lake import Lake
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore, decode


class DetectionParams(Config):
    sample_fps: float = Field(10.0, gt=0, description="frames per second given to the detector (0 < fps; >= video fps = every frame)")
    max_side: int = Field(1280, ge=64, description="frames are downscaled so that the longer side is at most this")


def _md_image(png: bytes) -> MetadataValue:
    return MetadataValue.md(f"![tracks](data:image/png;base64,{base64.b64encode(png).decode()})")


def detect_video(video_id: str, path, rotation: int, clips: pl.DataFrame, fps: float, detector, p: DetectionParams):
    """Run the detector over every kept clip's sampled frames, in one decode pass. Returns (rows, n_frames, seconds
    spent in the detector)."""
    step = sample_step(fps, p.sample_fps)
    wanted = {}
    for c in clips.sort("start_frame").iter_rows(named=True):
        for f in sampled_frames(c["start_frame"], c["end_frame"], step):
            wanted[f] = c["clip_id"]
    ends = {c["clip_id"]: c["end_frame"] for c in clips.iter_rows(named=True)}
    rows, n_frames, busy = [], 0, 0.0
    batch: list[tuple[int, float, np.ndarray]] = []
    current = None

    def flush():
        nonlocal busy
        if not batch:
            return
        started = time.perf_counter()
        dets = detector.detect_clip([img for _, _, img in batch])
        busy += time.perf_counter() - started
        for (idx, t, img), det in zip(batch, dets):
            rows.extend(detection_rows(video_id, current, idx, t, det, scale, step, img))
        batch.clear()

    scale = 1.0
    last = max(ends.values()) if ends else 0
    for fr in decode(path, rotation) if wanted else ():
        if fr.idx >= last:
            break
        clip_id = wanted.get(fr.idx)
        if clip_id is None:
            continue
        if clip_id != current:
            flush()
            current = clip_id
        img = fr.rgb()
        longest = max(img.shape[:2])
        scale = max(1.0, longest / p.max_side)
        if scale > 1.0:
            img = cv2.resize(img, (round(img.shape[1] / scale), round(img.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        batch.append((fr.idx, fr.t_s, img))
        n_frames += 1
    flush()
    return rows, n_frames, busy


@asset(partitions_def=videos_partitions, group_name="perception", pool="gpu", backfill_policy=BACKFILL_POLICY,
       description="Boxes (and masks where the detector gives them) on every sampled frame of every kept clip.")
def detections(context: AssetExecutionContext, config: DetectionParams, videos: pl.DataFrame, raw_clips: pl.DataFrame,
               detector: DetectorResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    def one(video_id: str):
        kept = of_video(raw_clips, video_id).filter(pl.col("kept"))
        video = of_video(videos, video_id).row(0, named=True)
        rows, n_frames, busy = [], 0, 0.0
        if video["status"] == "ok" and not kept.is_empty():
            path = video_store.fetch(lookup_video(video_id, lake)["uri"])
            rows, n_frames, busy = detect_video(video_id, path, video["rotation"], kept, video["fps"], detector.get(), config)
        df = frame(rows, DETECTIONS)
        return df, {
            "detector": getattr(detector.get(), "name", detector.backend),
            "clips": len(kept),
            "frames": n_frames,
            "boxes": len(df),
            "frames_per_s": MetadataValue.float(n_frames / busy if busy > 0 else 0.0),
            "labels": str(dict(df.group_by("label").len().sort("label").iter_rows())) if len(df) else "{}",
        }

    return for_each_video(context, one, DETECTIONS)


@asset(partitions_def=videos_partitions, group_name="perception", backfill_policy=BACKFILL_POLICY,
       description="Boxes with track ids: a fresh ByteTrack/OC-SORT per clip, fed every sampled frame.")
def tracks(context: AssetExecutionContext, videos: pl.DataFrame, raw_clips: pl.DataFrame, detections: pl.DataFrame,
           tracker: TrackerResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    def one(video_id: str):
        started = time.perf_counter()
        rows, n_frames = [], 0
        video_dets = of_video(detections, video_id)
        for c in of_video(raw_clips, video_id).filter(pl.col("kept")).sort("start_frame").iter_rows(named=True):
            dets = video_dets.filter(pl.col("clip_id") == c["clip_id"])
            if dets.is_empty():
                continue
            step = int(dets["sample_step"][0])
            by_frame = dets.partition_by("frame_idx", as_dict=True)
            frames = []
            for f in sampled_frames(c["start_frame"], c["end_frame"], step):
                fr = by_frame.get((f,), dets.clear())
                t = float(fr["t_s"][0]) if len(fr) else None
                frames.append((f, t, fr))
            tracked = tracker.track_clip([frame_detections(fr) for _, _, fr in frames])
            rows += track_rows(video_id, c["clip_id"], [(f, t, fr) for f, t, fr in frames], tracked)
            n_frames += len(frames)
        df = frame(rows, TRACKS)
        elapsed = time.perf_counter() - started
        metadata = {
            "tracker": tracker.kind,
            "tracks": df.select("clip_id", "track_id").n_unique() if len(df) else 0,
            "boxes": len(df),
            "frames_per_s": MetadataValue.float(n_frames / elapsed if elapsed > 0 else 0.0),
            "labels": str(dict(df.unique(["clip_id", "track_id"]).group_by("label").len().sort("label").iter_rows())) if len(df) else "{}",
        }
        if len(df):
            png = overlay(video_id, of_video(videos, video_id).row(0, named=True), df, video_store, lake)
            metadata["overlay"] = _md_image(png)
        return df, metadata

    return for_each_video(context, one, TRACKS)


def overlay(video_id: str, video: dict, df: pl.DataFrame, video_store: VideoStore, lake: Lake) -> bytes:
    """Tracks of the clip with the most tracks, drawn over its middle frame; saved to the lake and returned."""
    busiest = df.group_by("clip_id").agg(pl.col("track_id").n_unique().alias("n")).sort(["n", "clip_id"], descending=[True, False])
    clip_id = busiest["clip_id"][0]
    clip = df.filter(pl.col("clip_id") == clip_id)
    target = int(clip["frame_idx"].sort()[len(clip) // 2])
    path = video_store.fetch(lookup_video(video_id, lake)["uri"])
    image = next((f.rgb() for f in decode(path, video["rotation"]) if f.idx >= target), None)
    if image is None:
        image = np.zeros((video["height"], video["width"], 3), np.uint8)
    png = draw_tracks(image, clip, at_frame=target)
    lake.write_bytes(f"overlays/{video_id}/tracks.png", png)
    return png
