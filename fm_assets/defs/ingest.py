"""Stages 1 and 2a: source videos -> `videos` (one row per source video), `raw_clips` (shot-aware clips with a
camera-motion score) and `detections` (boxes on every sampled frame of every kept clip), in ONE decode pass per
video: each clip goes to the detector as soon as the scan has planned it. Bad input becomes a recorded status,
never a crash."""


import base64
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetKey, AssetOut, MetadataValue, Output, multi_asset
from pydantic import Field

from fm_assets.defs.config import config_class
from fm_assets.defs.partitions import videos_partitions
from fm_assets.defs.perception import DetectionConfig, still_key
from fm_assets.defs.placement import GPU_STEP_TAGS
from fm_assets.labels.clipping import (
    ClipParams,
    ClipWatcher,
    contact_sheet,
    frame_duration,
    nearest_thumb,
    scan_video,
    timing_error,
)
from fm_assets.labels.schemas import DETECTIONS, RAW_CLIPS, VIDEOS, frame
from fm_assets.labels.tracking import (
    PARALLEL_FRAMES,
    DetectionParams,
    DetectionPass,
    DetectionRun,
    detect_video,
    sample_step,
    with_sample_origin,
)
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, table_key
from fm_resources.mmdet_trackers import WORKERS as TRACKING_WORKERS
from fm_resources.registry import GONE_STATUSES, lookup_video, retire_video
from fm_resources.video import StreamInfo, VideoError, VideoStore, decode, display_size, sha256_file, stream_info

ClipConfig = config_class(ClipParams, "ClipConfig")


def analyse_video(video_id: str, uri: str, sha256: str, store: VideoStore, p: ClipParams,
                  watch: Callable[[StreamInfo], ClipWatcher] | None = None):
    """Probe, scan and clip one video in one decode pass. Returns (videos row, clip rows, scan); a video that cannot
    be used gets status 'error' (unreadable) or 'skipped' (readable but unusable) and no clips. `watch(stream
    info)`, when given, makes what sees the frames and clips during the pass (the detector: see scan_video); what
    it made of a video that ends with no clips is to be thrown away."""
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
        scan, clips = scan_video(decode(path), info.width, info.declared_fps, video_id, p,
                                 watch(info) if watch is not None else None)
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
    for c in clips:
        c.update(width=width, height=height)
    row["n_clips_kept"] = sum(c["kept"] for c in clips)
    if row["n_clips_kept"] == 0:
        row.update(status="skipped", error=f"no usable clip: {row['duration_s']:.2f} s, {n} frame(s), "
                   f"drop reasons {sorted({c['drop_reason'] for c in clips})}")
    row["analysed_s"] = time.perf_counter() - started
    return row, clips, scan


class IngestConfig(ClipConfig):  # type: ignore[misc,valid-type]
    """How videos become clips (these fields) and what the detector sees of them (`detections`)."""

    detections: DetectionConfig = Field(default_factory=DetectionConfig)  # type: ignore[valid-type]


@multi_asset(
    outs={  # each output may be materialized without the others (a new detector config: `detections` alone)
        "videos": AssetOut(
            group_name="ingest", is_required=False,
            description="One row per source video: probe results and status ('ok', 'skipped', 'error')."),
        "raw_clips": AssetOut(
            group_name="ingest", is_required=False,
            description="Shot-aware clips of 5-10 s with a camera-motion score; dropped clips stay with kept=false."),
        "detections": AssetOut(
            group_name="perception", is_required=False,
            description="Boxes (and masks where the detector gives them) on every sampled frame of every kept clip, "
                        "detected during the one decode pass."),
    },
    internal_asset_deps={"videos": set(), "raw_clips": {AssetKey("videos")},
                         "detections": {AssetKey("videos"), AssetKey("raw_clips")}},
    partitions_def=videos_partitions,
    can_subset=True,
    pool="gpu",
    op_tags=GPU_STEP_TAGS,
)
def ingest(context: AssetExecutionContext, config: IngestConfig, video_store: VideoStore, lake: Lake,
           detector: DetectorResource):
    """One decode pass per video: the scan plans the clips while the detector works on each clip as soon as it is
    final. Run alone (a new detector config), `detections` reads the clips from the lake and decodes their frames."""
    selected = set(context.op_execution_context.selected_output_names)
    parts: dict[str, list] = {name: [] for name in OUTPUTS if name in selected}
    # the detections go to files clip by clip as they are made and are streamed from there into the lake (the IO
    # manager takes the LazyFrame), so a long video's detections are never all in memory
    with tempfile.TemporaryDirectory(prefix="fm-detections-") as spill:
        for video_id in context.partition_keys:
            tables, metadata = ingest_video(video_id, config.to_params(), config.detections.to_params(), selected,
                                            video_store, lake, detector, context.log, Path(spill) / video_id)
            for name in parts:
                context.add_asset_metadata(metadata[name], asset_key=name, partition_key=video_id)
                parts[name].append(tables[name])
        for name, frames in parts.items():
            yield Output(pl.concat(frames), output_name=name)


OUTPUTS = {"videos": VIDEOS, "raw_clips": RAW_CLIPS, "detections": DETECTIONS}


def ingest_video(video_id: str, config: ClipParams, det_config: DetectionParams, selected: set[str],
                 video_store: VideoStore, lake: Lake, detector: DetectorResource, log,
                 spill: Path | None = None) -> tuple[dict, dict]:
    """One video's tables {asset: DataFrame} and metadata {asset: dict} for the selected assets. With a `spill`
    folder (made here; the caller removes it once the tables are stored), the detections are written there clip by
    clip and come back as a LazyFrame over those files (DetectionRun)."""
    if spill is not None and "detections" in selected:
        spill.mkdir(parents=True)
    tables: dict[str, pl.DataFrame | pl.LazyFrame] = {}
    metadata: dict[str, dict] = {}
    run = None

    def keep_still(clip_id: str, data: bytes) -> None:  # into the lake as each is made: the later pictures' frames
        lake.write_bytes(still_key(video_id, clip_id), data)

    if selected & {"videos", "raw_clips"}:
        passes: list[DetectionPass] = []

        def watch(info: StreamInfo) -> DetectionPass:
            step = sample_step(info.declared_fps, det_config.sample_fps) if info.declared_fps else None
            if info.declared_frames // (step or 1) >= PARALLEL_FRAMES:
                # a long video is tracked on every core by workers started for it: a tracking worker this process
                # keeps for short ones (fm_resources.mmdet_trackers) would sit idle beside the detector's for minutes
                TRACKING_WORKERS.close()
            passes.append(DetectionPass(video_id, detector.get(), det_config, step, workers=detector.workers(),
                                        pool_kind=detector.clip_pool, keep_still=keep_still, spill=spill))
            return passes[-1]

        reg = lookup_video(video_id, lake)
        try:
            row, clips, scan = analyse_video(video_id, reg["uri"], reg["sha256"], video_store, config,
                                             watch if "detections" in selected else None)
            run = passes[0].finish() if passes and row["status"] == "ok" else DetectionRun([], 0, 0.0, {}, spill)
        finally:
            for dp in passes:
                dp.close()
        if row["status"] != "ok":
            log.warning(f"{video_id}: {row['status']}: {row['error']}")
        if row["status"] in GONE_STATUSES:  # keep the labels of the content this id stands for, out of the views
            retire_video(lake, video_id, row["status"], row["error"], move=True)
        thumbs = save_thumbnails(video_id, clips, scan, lake)
        tables["videos"], tables["raw_clips"] = frame([row], VIDEOS), frame(clips, RAW_CLIPS)
        metadata["videos"], metadata["raw_clips"] = ingest_metadata(row, tables["raw_clips"], thumbs, reg["uri"])
    if "detections" in selected:
        tables["detections"], metadata["detections"] = detect_clips(
            video_id, tables.get("videos"), tables.get("raw_clips"), det_config, detector, video_store, lake, run,
            keep_still, spill)
    return tables, metadata


def detect_clips(video_id: str, videos: pl.DataFrame | None, raw_clips: pl.DataFrame | None, p: DetectionParams,
                 detector: DetectorResource, video_store: VideoStore, lake: Lake,
                 run: DetectionRun | None, keep_still: Callable[[str, bytes], None],
                 spill: Path | None = None) -> tuple[pl.DataFrame | pl.LazyFrame, dict]:
    """A video's detections and their metadata: the `run` its scan made, or (`detections` alone: run None) the
    kept clips of the lake's videos / raw_clips detected in a pass over their frames; each clip's still goes to
    `keep_still` as it is made, each clip's rows to `spill` (see DetectionRun)."""
    if videos is None or raw_clips is None:
        videos, raw_clips = (lake_table(lake, name, video_id) for name in ("videos", "raw_clips"))
    kept = with_sample_origin(raw_clips).filter(pl.col("kept"))
    video = videos.row(0, named=True)
    if run is None:
        run = DetectionRun([], 0, 0.0, {}, spill)
        if video["status"] == "ok" and not kept.is_empty():
            path = video_store.fetch(lookup_video(video_id, lake)["uri"])
            run = detect_video(video_id, decode(path, video["rotation"]), kept, stream_info(path).declared_fps,
                               detector.get(), p, workers=detector.workers(), pool_kind=detector.clip_pool,
                               keep_still=keep_still, spill=spill)
    df = run.lazy()
    labels = dict(df.group_by("label").len().sort("label").collect().iter_rows())
    return df, {
        "detector": getattr(detector.get(), "name", detector.backend),
        "clips": len(kept),
        "frames": run.frames,
        "boxes": sum(labels.values()),
        "frames_per_s": MetadataValue.float(run.frames / run.busy_s if run.busy_s > 0 else 0.0),
        "labels": str(labels),
    }


def lake_table(lake: Lake, asset: str, video_id: str) -> pl.DataFrame:
    """One video's table of an asset this step makes, from the lake (the step runs without it: a subset)."""
    key = table_key(asset, video_id)
    if not lake.exists(key):
        raise FileNotFoundError(f"{asset} has not been materialized for video {video_id}: materialize it with "
                                "`detections` (the `ingest` step makes both in one pass)")
    return lake.read_parquet(key)


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
