"""Stage 1: source videos -> `videos` (one row per source video) and `raw_clips` (shot-aware clips with a
camera-motion score). One decode pass per video; bad input becomes a recorded status, never a crash."""


import base64
import time

import polars as pl
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, multi_asset

from fm_assets.defs.config import config_class
from fm_assets.defs.partitions import videos_partitions
from fm_assets.labels.clipping import (
    ClipParams,
    contact_sheet,
    frame_duration,
    nearest_thumb,
    plan_clips,
    scan_frames,
    timing_error,
)
from fm_assets.labels.schemas import RAW_CLIPS, VIDEOS, frame
from fm_resources.lake import Lake
from fm_resources.registry import GONE_STATUSES, lookup_video, retire_video
from fm_resources.video import VideoError, VideoStore, decode, display_size, sha256_file, stream_info

ClipConfig = config_class(ClipParams, "ClipConfig")


def analyse_video(video_id: str, uri: str, sha256: str, store: VideoStore, p: ClipParams):
    """Probe, scan and clip one video. Returns (videos row, clip rows, scan); a video that cannot be used
    gets status 'error' (unreadable) or 'skipped' (readable but unusable) and no clips."""
    started = time.perf_counter()
    row = {"video_id": video_id, "uri": uri, "sha256": sha256, "status": "ok", "error": None}
    try:  # the source as it is now: there, readable, and the content this id stands for
        if not store.exists(uri):
            row.update(status="source_missing", error=f"source not found: {uri} (deleted or moved)")
            return row, [], None
        path = store.fetch(uri)
        row["size_bytes"] = path.stat().st_size
        row["source_sha256"] = actual = sha256_file(path)
    except OSError as exc:  # permissions, a file vanishing under us, a disk error
        row.update(status="error", error=f"cannot read the source: {exc.strerror or exc}")
        return row, [], None
    if not sha256:
        row.update(status="error", error=f"the source could not be read when it was registered: {uri}")
        return row, [], None
    if actual != sha256:
        row.update(status="stale", error=f"the source changed since it was registered (sha256 {actual[:8]} is not "
                                         f"{sha256[:8]}): nothing was labelled; `fm run {uri}` labels the new "
                                         "content under its own id")
        return row, [], None
    try:
        info = stream_info(path)
        row.update(codec=info.codec, width=info.width, height=info.height)
        scan = scan_frames(decode(path), info.width, info.declared_fps, p)
    except VideoError as exc:
        row.update(status="skipped" if str(exc).startswith("no video stream") else "error", error=str(exc))
        return row, [], None
    except OSError as exc:
        row.update(status="error", error=f"cannot read the source: {exc.strerror or exc}")
        return row, [], None
    width, height = display_size(info.width, info.height, scan.rotation)
    row.update(rotation=scan.rotation, width=width, height=height)
    times = scan.times
    n = len(times)
    if n == 0:
        row.update(status="error", error="no decodable frames", n_frames=0)
        return row, [], scan
    dur = frame_duration(times, info.declared_fps)
    gaps = [b - a for a, b in zip(times, times[1:])]
    broken = timing_error(times, dur, p)
    if broken:
        row.update(status="error", error=broken, n_frames=n, duration_s=times[-1] - times[0] + dur)
        return row, [], scan
    row.update(
        n_frames=n,
        duration_s=times[-1] - times[0] + dur,
        fps=(n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else info.declared_fps,
        vfr=bool(gaps) and (max(gaps) - min(gaps)) > 0.25 * dur,
        n_shots=len(scan.cuts) + 1,
    )
    clips = plan_clips(scan, video_id, info.declared_fps, p)
    for k, c in enumerate(clips):
        c.update(video_id=video_id, clip_id=f"{video_id}-{k:03d}", clip_idx=k, width=width, height=height)
    row["n_clips_kept"] = sum(c["kept"] for c in clips)
    if row["n_clips_kept"] == 0:
        row.update(status="skipped", error=f"no usable clip: {row['duration_s']:.2f} s, {n} frame(s), "
                   f"drop reasons {sorted({c['drop_reason'] for c in clips})}")
    row["analysed_s"] = time.perf_counter() - started
    return row, clips, scan


@multi_asset(
    outs={
        "videos": AssetOut(description="One row per source video: probe results and status ('ok', 'skipped', 'error')."),
        "raw_clips": AssetOut(description="Shot-aware clips of 5-10 s with a camera-motion score; dropped clips stay with kept=false."),
    },
    partitions_def=videos_partitions,
    group_name="ingest",
    can_subset=False,
)
def ingest(context: AssetExecutionContext, config: ClipConfig, video_store: VideoStore, lake: Lake):
    videos_parts, clip_parts = [], []
    for video_id in context.partition_keys:
        videos_df, clips_df, video_meta, clips_meta = ingest_video(video_id, config.to_params(), video_store, lake, context.log)
        context.add_asset_metadata(video_meta, asset_key="videos", partition_key=video_id)
        context.add_asset_metadata(clips_meta, asset_key="raw_clips", partition_key=video_id)
        videos_parts.append(videos_df)
        clip_parts.append(clips_df)
    yield Output(pl.concat(videos_parts), output_name="videos")
    yield Output(pl.concat(clip_parts), output_name="raw_clips")


def ingest_video(video_id: str, config: ClipParams, video_store: VideoStore, lake: Lake, log):
    """One video's `videos` row and clips, with the metadata each materialization shows."""
    reg = lookup_video(video_id, lake)
    row, clips, scan = analyse_video(video_id, reg["uri"], reg["sha256"], video_store, config)
    if row["status"] != "ok":
        log.warning(f"{video_id}: {row['status']}: {row['error']}")
    if row["status"] in GONE_STATUSES:  # keep the labels of the content this id stands for, out of the views
        retire_video(lake, video_id, row["status"], row["error"], move=True)
    thumbs = save_thumbnails(video_id, clips, scan, lake)
    videos_df, clips_df = frame([row], VIDEOS), frame(clips, RAW_CLIPS)
    video_meta, clips_meta = ingest_metadata(row, clips_df, thumbs, reg["uri"])
    return videos_df, clips_df, video_meta, clips_meta


def save_thumbnails(video_id: str, clips: list[dict], scan, lake: Lake) -> list[bytes]:
    """Each clip's keyframe (the thumbnail nearest its middle) into the lake; sets the clips' `thumbnail` key."""
    thumbs = []
    for c in clips:
        jpeg = nearest_thumb(scan, (c["start_s"] + c["end_s"]) / 2) if scan else None
        if jpeg:
            c["thumbnail"] = lake.write_bytes(f"thumbnails/{video_id}/{c['clip_id']}.jpg", jpeg)
            thumbs.append(jpeg)
    return thumbs


def ingest_metadata(row: dict, clips_df: pl.DataFrame, thumbs: list[bytes], uri: str) -> tuple[dict, dict]:
    """The materialization metadata of `videos` and `raw_clips` (counts and the keyframe contact sheet)."""
    sheet = base64.b64encode(contact_sheet(thumbs[:12])).decode() if thumbs else None
    video_meta = {
        "status": row["status"],
        "error": row["error"] or "",
        "duration_s": MetadataValue.float(float(row.get("duration_s") or 0.0)),
        "n_frames": int(row.get("n_frames") or 0),
        "uri": uri,
    }
    kept = clips_df.filter(pl.col("kept"))
    clips_meta = {
        "clips": len(clips_df),
        "kept": len(kept),
        "dropped": MetadataValue.json(dict(clips_df.filter(~pl.col("kept")).group_by("drop_reason").len().sort("drop_reason").iter_rows())),
        "max_camera_motion": MetadataValue.float(float(clips_df["camera_motion"].max() or 0.0)),
        "keyframes": MetadataValue.md(f"![keyframes](data:image/jpeg;base64,{sheet})" if sheet else "_no clips_"),
    }
    return video_meta, clips_meta
