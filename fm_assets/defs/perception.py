"""Stage 2b: `detections` (made in the `ingest` step's decode pass: fm_assets/defs/ingest.py) -> `tracks` (a fresh
mmdet tracker per run of continuous kept clips of a shot, tracklets joined across short gaps, track ids unique
within the video); the clips' stills the pictures are drawn on."""

import time

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from fm_assets.defs.config import config_class
from fm_assets.defs.partitions import for_each_video, of_video, videos_partitions
from fm_assets.labels.plots import md_image
from fm_assets.labels.schemas import TRACKS, frame
from fm_assets.labels.tracking import (
    PARALLEL_FRAMES,
    TRACKER_INPUT,
    DetectionParams,
    TrackParams,
    draw_tracks,
    read_still,
    run_frames,
    run_track_rows,
    shot_runs,
    still_frame,
    track_runs,
    with_sample_origin,
)
from fm_assets.labels.workers import cores
from fm_resources.lake import Lake
from fm_resources.registry import lookup_video
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore, decode

DetectionConfig = config_class(DetectionParams, "DetectionConfig")
TrackConfig = config_class(TrackParams, "TrackConfig")


@asset(partitions_def=videos_partitions, group_name="perception",
       ins={"detections": AssetIn(metadata={"columns": TRACKER_INPUT})},  # boxes, colours, histograms: no masks
       description="Boxes with track ids: one ByteTrack/OC-SORT over each run of continuous kept clips of a shot "
                   "(clips of a shot keep its ids), tracklets joined across short gaps by motion and colour, ids "
                   "unique within the video.")
def tracks(context: AssetExecutionContext, config: TrackConfig, videos: pl.DataFrame, raw_clips: pl.DataFrame,
           detections: pl.DataFrame, tracker: TrackerResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    def one(video_id: str):
        started = time.perf_counter()
        params = config.to_params()
        video_dets = of_video(detections, video_id)
        runs = shot_runs(with_sample_origin(of_video(raw_clips, video_id)).filter(pl.col("kept")))
        prepared = [rf for rf in (run_frames(run, video_dets if len(runs) == 1 else (  # (one run: no copy)
            video_dets.filter(pl.col("clip_id").is_in([c["clip_id"] for c in run])))) for run in runs) if rf]
        n_frames = sum(len(rf) for rf in prepared)
        # in this process's kept tracking workers (the first one started with the run); a long video's runs and
        # long runs' segments on every core
        workers = cores() if n_frames >= PARALLEL_FRAMES else 1
        tracked = track_runs(prepared, tracker.follower(), params.segment_frames, tracker.warmup_frames(),
                             tracker.min_track_len, workers, pool=tracker.pool())
        if workers > 1:  # the workers a long video started hold torch and mmdet each: not kept past this step
            tracker.pool().close()
        parts, next_id = [frame([], TRACKS)], 1
        for rf, run_tracked in zip(prepared, tracked):
            run_table, _, next_id = run_track_rows(video_id, rf, run_tracked, params, next_id)
            parts.append(run_table)
        df = pl.concat(parts)
        elapsed = time.perf_counter() - started
        metadata = {
            "tracker": tracker.kind,
            "tracks": df["track_id"].n_unique() if len(df) else 0,
            "boxes": len(df),
            "frames_per_s": MetadataValue.float(n_frames / elapsed if elapsed > 0 else 0.0),
            "labels": str(dict(df.unique("track_id").group_by("label").len().sort("label").iter_rows())) if len(df) else "{}",
        }
        if len(df):
            png = overlay(video_id, of_video(videos, video_id).row(0, named=True),
                          with_sample_origin(of_video(raw_clips, video_id)), df, int(video_dets["sample_step"][0]),
                          video_store, lake)
            metadata["overlay"] = MetadataValue.md(md_image(png, "tracks"))
        return df, metadata

    return for_each_video(context, one, TRACKS)


def still_key(video_id: str, clip_id: str) -> str:
    """Where the `detections` step keeps a clip's still (its middle frame, JPEG) in the lake."""
    return f"stills/{video_id}/{clip_id}.jpg"


def clip_still(video_id: str, clip: dict, video_store: VideoStore, lake: Lake,
               rotation: int | None = None, step: int = 1) -> np.ndarray | None:
    """A kept clip (a raw_clips row; `sample_origin` where known) as an RGB image of its display size: the still
    `detections` kept, else (a lake labelled before stills existed, a damaged still) that frame (still_frame at the
    sampling `step`) decoded again with `rotation` (None: the stream's own); None when the video cannot give it."""
    key = still_key(video_id, clip["clip_id"])
    if lake.exists(key):
        try:
            return read_still(lake.read_bytes(key), clip["width"], clip["height"])
        except ValueError:
            pass  # a damaged still: its frame is decoded again
    path = video_store.fetch(lookup_video(video_id, lake)["uri"])
    target = still_frame(clip["start_frame"], clip["end_frame"], step, clip.get("sample_origin"))
    return next((f.rgb() for f in decode(path, rotation) if f.idx >= target), None)


def overlay(video_id: str, video: dict, clips: pl.DataFrame, df: pl.DataFrame, step: int, video_store: VideoStore,
            lake: Lake) -> bytes:
    """Tracks of the clip with the most tracks, drawn over its still (the sampled frame nearest its middle, at the
    detections' sampling `step`); saved to the lake and returned."""
    busiest = df.group_by("clip_id").agg(pl.col("track_id").n_unique().alias("n")).sort(["n", "clip_id"], descending=[True, False])
    clip_id = busiest["clip_id"][0]
    clip = df.filter(pl.col("clip_id") == clip_id)
    row = clips.filter(pl.col("clip_id") == clip_id).row(0, named=True)
    target = still_frame(row["start_frame"], row["end_frame"], step, row.get("sample_origin"))
    image = clip_still(video_id, row, video_store, lake, video["rotation"], step)
    if image is None:
        image = np.zeros((video["height"], video["width"], 3), np.uint8)
    png = draw_tracks(image, clip, at_frame=target)
    lake.write_bytes(f"overlays/{video_id}/tracks.png", png)
    return png
