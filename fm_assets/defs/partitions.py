"""Video partitions: one dynamic partition per source video, keyed by a stable, readable, safe video id."""

from __future__ import annotations

import polars as pl
from dagster import BackfillPolicy, DynamicPartitionsDefinition

from fm_assets.labels.schemas import frame

videos_partitions = DynamicPartitionsDefinition(name="videos")


def backfill_policy(batch: int) -> BackfillPolicy:
    """Backfills run batches of `batch` videos per run (one run start per batch, not per video); every per-video
    asset computes each partition of its batch separately (for_each_video) and the lake keeps one file per video.
    definitions.py applies it to every per-video asset with FM_BACKFILL_BATCH (fm_resources.settings)."""
    return BackfillPolicy.multi_run(max_partitions_per_run=batch)


def for_each_video(context, compute, schema: dict, asset_key: str | None = None):
    """Run `compute(video_id) -> (rows DataFrame, metadata)` for each video partition of this run: one, or a
    batch when a backfill runs several partitions per run (BackfillPolicy.multi_run). Each partition's
    materialization gets its own metadata; the rows of all of them are returned (the IO manager writes one
    file per video)."""
    parts = []
    for video_id in context.partition_keys:
        df, metadata = compute(video_id)
        context.add_asset_metadata(metadata, partition_key=video_id, **({"asset_key": asset_key} if asset_key else {}))
        parts.append(df)
    return pl.concat(parts, how="vertical") if parts else frame([], schema)


def of_video(df, video_id: str):
    """The rows of one video from an input that may hold a batch of videos (the input itself, not a copy, when it
    holds only that video's: a long video's detections are tens of MB)."""
    if "video_id" not in df.columns:
        return df
    ids = df["video_id"]
    if len(ids) and ids.null_count() == 0 and ids.min() == ids.max() == video_id:
        return df
    return df.filter(pl.col("video_id") == video_id)


def kept_clips(raw_clips: pl.DataFrame) -> list[dict]:
    """The kept clips of a raw_clips table, in time order, as dicts."""
    return list(raw_clips.filter(pl.col("kept")).sort("start_frame").iter_rows(named=True))


def per_clip(df: pl.DataFrame, clip_id: str) -> pl.DataFrame:
    return df.filter(pl.col("clip_id") == clip_id)
