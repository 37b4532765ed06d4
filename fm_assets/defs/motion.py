"""Stage 3a: tracks -> `trajectories` (smoothed paths + motion facts per track, and pictures of them)."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, asset

from fm_assets.defs.config import config_class
from fm_assets.defs.partitions import for_each_video, kept_clips, of_video, per_clip, videos_partitions
from fm_assets.defs.perception import clip_still
from fm_assets.labels import plots
from fm_assets.labels.motion_facts import TRAJECTORY_SCHEMA, TrajectoryParams
from fm_assets.labels.qa import clip_trajectories
from fm_assets.labels.workers import cores, map_clips
from fm_resources.lake import Lake
from fm_resources.video import VideoStore

TrajectoryConfig = config_class(TrajectoryParams, "TrajectoryConfig")
# tracked boxes from which a video's trajectories are fitted in worker processes: about 3 s of work on one core
# (0.3 ms a box, 2-CPU VM), where starting them costs about one
PARALLEL_BOXES = 10_000


@asset(partitions_def=videos_partitions, group_name="language",
       description="Per track: smoothed normalised path and motion facts; too short or static tracks kept=false; "
                   "kept tracks that questions will not be asked about carry drop_reason 'doubtful: <why>'.")
def trajectories(context: AssetExecutionContext, config: TrajectoryConfig, raw_clips: pl.DataFrame,
                 tracks: pl.DataFrame, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    params = config.to_params()

    def one(video_id: str):
        video_tracks = of_video(tracks, video_id)
        # each clip's trajectories, with why a kept track will not be asked about (annotate_doubts, with the
        # default question parameters); a long video's clips on every core (worker processes cost about a second
        # to start)
        jobs = [(per_clip(video_tracks, c["clip_id"]), c, params) for c in kept_clips(of_video(raw_clips, video_id))]
        parts = map_clips(clip_trajectories, jobs, cores() if len(video_tracks) >= PARALLEL_BOXES else 1)
        df = pl.concat(parts) if parts else pl.DataFrame(schema=TRAJECTORY_SCHEMA)
        kept = df.filter(pl.col("kept"))
        metadata = {
            "tracks": len(df), "kept": len(kept), "doubtful": int(kept["drop_reason"].is_not_null().sum()),
            "dropped": str(dict(df.filter(~pl.col("kept")).group_by("drop_reason").len().sort("drop_reason").iter_rows())),
            "directions": str(dict(kept.group_by("direction").len().sort("direction").iter_rows())),
        }
        # pictures for a labeler: the paths over a frame of their clip (overlay) and speed over time (plot)
        clips = plots.clip_panels(df, of_video(raw_clips, video_id))
        if clips:
            try:
                # the stills `detections` kept (the sampled frames nearest the clips' middles): no second decode
                frames = {c["frame_idx"]: clip_still(video_id, c, video_store, lake) for c in clips}
                for name, png in plots.trajectory_pictures(df, clips, frames).items():
                    lake.write_bytes(f"overlays/{video_id}/{name}.png", png)
                    metadata[name] = MetadataValue.md(plots.md_image(png, name))
            except Exception as exc:  # the pictures are a view; the facts still materialize without them
                context.log.warning(f"{video_id}: trajectory pictures failed: {exc!r}")
        return df, metadata

    return for_each_video(context, one, TRAJECTORY_SCHEMA)
