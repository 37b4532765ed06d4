"""How work gets started: the job over a video's assets, the sensor that registers new videos, and the
registration + in-process execution that `fm run` uses (the same code path as the sensor)."""


import json

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from fm_assets.partitions import Registered, register_video, videos_partitions
from fm_resources.lake import Lake
from fm_resources.video import VideoStore

PER_VIDEO = AssetSelection.groups("ingest", "perception", "language")

label_videos_job = define_asset_job(
    "label_videos",
    selection=PER_VIDEO,
    description="All per-video assets of one video partition.",
    tags={"dagster/max_retries": "1"},
)


def register_new(
    store: VideoStore, lake: Lake, seen: dict[str, str], limit: "int | None" = None
) -> tuple[list[Registered], dict[str, str]]:
    """Register every video file at the store's locations whose signature (size+mtime or ETag) is not in
    `seen`; returns the registrations and the updated `seen` map (the sensor's cursor)."""
    seen = dict(seen)
    out: list[Registered] = []
    for location in store.locations():
        for f in store.scan(location):
            if seen.get(f.uri) == f.signature:
                continue
            if limit is not None and len(out) >= limit:
                return out, seen
            out.append(register_video(f.uri, store, lake))
            seen[f.uri] = f.signature
    return out, seen


@sensor(
    job=label_videos_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches FM_INPUTS (folders, s3:// prefixes); adds each new video as a partition and runs it.",
)
def new_videos_sensor(context: SensorEvaluationContext, video_store: VideoStore, lake: Lake) -> SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    registered, seen = register_new(video_store, lake, cursor, limit=200)
    fresh = sorted({r.video_id for r in registered if not context.instance.has_dynamic_partition("videos", r.video_id)})
    if registered:
        context.log.info(f"registered {len(registered)} file(s), {len(fresh)} new video partition(s)")
    return SensorResult(
        run_requests=[RunRequest(partition_key=v, run_key=f"video:{v}") for v in fresh],
        dynamic_partitions_requests=[videos_partitions.build_add_request(fresh)] if fresh else [],
        cursor=json.dumps(seen, sort_keys=True),
    )
