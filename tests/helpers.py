"""Run the ingest assets on files in-process, with explicit resources (no global state)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from dagster import DagsterInstance, materialize

from fm_assets.clips import ingest
from fm_assets.partitions import register_video
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.video import VideoStore


def ingest_files(paths: list[Path], lake_root: Path, config: dict | None = None, instance=None):
    """Register and materialize `videos` + `raw_clips` for each file; returns (results, videos, raw_clips)."""
    lake = Lake(root=str(lake_root))
    store = VideoStore()
    instance = instance or DagsterInstance.ephemeral()
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": store}
    results = {}
    for path in paths:
        reg = register_video(str(path), store, lake)
        if not instance.has_dynamic_partition("videos", reg.video_id):
            instance.add_dynamic_partitions("videos", [reg.video_id])
        run_config = {"ops": {"ingest": {"config": config}}} if config else None
        results[path.name] = (
            reg.video_id,
            materialize([ingest], partition_key=reg.video_id, instance=instance, resources=resources,
                        run_config=run_config, raise_on_error=False),
        )
    videos = pl.concat([lake.read_parquet(k) for k in lake.list("videos")]) if lake.list("videos") else None
    clips = pl.concat([lake.read_parquet(k) for k in lake.list("raw_clips")]) if lake.list("raw_clips") else None
    return results, videos, clips
