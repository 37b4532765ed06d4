"""How work gets started: the job over a video's assets, the sensor that registers new videos (on by default),
the nightly backfill of missing or failed partitions, and the dataset refresh.

The backfill is declarative: at each tick of FM_BACKFILL_CRON the per-video assets whose partition is missing
or whose last run failed are requested, and the automation sensor emits ONE backfill for all of them, which
Dagster runs in batches of FM_BACKFILL_BATCH videos per run (BackfillPolicy.multi_run on every per-video
asset). A Dagster schedule cannot launch a backfill through the public API; an automation sensor on a cron tick
can, so that is what `nightly_backfill` is. Runs are retried once (run_retries in the instance's dagster.yaml
and the job's dagster/max_retries tag).

Latency of a backfill: Dagster's backfill daemon looks at backfills every 30 s (hard-coded in Dagster 1.13; its
first look at a backfill submits all of its runs, a later one marks it completed), so a backfill waits up to
30 s for its first run and up to 30 s after its last. The run queue (dagster.yaml, fm_resources.settings) starts
at most one run per CPU (FM_MAX_CONCURRENT_RUNS) and looks for queued runs every second: the batches run side by
side on all cores, each next one within about a second of a free slot, instead of every batch at once."""

import json

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from fm_assets.defs.partitions import videos_partitions
from fm_resources.lake import Lake
from fm_resources.registry import Registered, register_video
from fm_resources.video import VideoStore

PER_VIDEO = AssetSelection.groups("ingest", "perception", "language")
DATASET = AssetSelection.groups("dataset")

build_dataset_job = define_asset_job(
    "build_dataset",
    selection=DATASET,
    description="The dataset-level assets (splits) and their checks, over every labelled video.",
)


def backfill_condition(cron: str) -> AutomationCondition:
    """Per-video assets: at each tick of `cron`, every partition that is missing or whose latest run failed,
    unless it is being computed right now (e.g. a run the new-videos sensor started)."""
    return (
        AutomationCondition.cron_tick_passed(cron)
        & (AutomationCondition.missing() | AutomationCondition.execution_failed())
        & ~AutomationCondition.in_progress()
    ).with_label(f"missing or failed at {cron}")


# The dataset (splits): recomputed after any video's labels change, once nothing upstream is still running.
dataset_condition = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("after new labels")


def nightly_backfill(cron: str) -> AutomationConditionSensorDefinition:
    """The automation sensor that evaluates the conditions and emits ONE backfill of what they request."""
    return AutomationConditionSensorDefinition(
        "nightly_backfill",
        target=PER_VIDEO | DATASET,
        default_status=DefaultSensorStatus.RUNNING,
        emit_backfills=True,
        minimum_interval_seconds=60,
        description=f"At {cron} (FM_BACKFILL_CRON): one backfill of every missing or failed video partition, "
                    "run in multi-run batches; refreshes splits after new labels.",
    )


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
