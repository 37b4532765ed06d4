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
from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
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
from fm_resources.registry import Registered, lookup_video, register_video
from fm_resources.video import VideoStore

PER_VIDEO = AssetSelection.groups("ingest", "perception", "language")
DATASET = AssetSelection.groups("dataset")


def build_dataset_job(lake_wide: Sequence[AssetCheckKey] = ()):
    """The dataset (splits) and its checks, and the checks over the whole lake of the per-video assets
    (`lake_wide`: sql/checks with scope dataset, e.g. the answer letters' balance of every question)."""
    return define_asset_job(
        "build_dataset",
        selection=DATASET | AssetSelection.checks(*lake_wide),
        description="The dataset-level assets (splits) and their checks, over every labelled video, and the "
                    "whole-lake checks of the per-video assets.",
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


def label_videos_job(lake_wide: Sequence[AssetCheckKey] = ()):
    """Every per-video asset of a video partition and its checks, but not the checks over the whole lake
    (`lake_wide`): those run once in `build_dataset`, after the labels changed, not again in every video's run,
    where their cost would grow with the lake (a backfill of N videos would read the lake N times)."""
    return define_asset_job(
        "label_videos",
        selection=PER_VIDEO - AssetSelection.checks(*lake_wide),
        description="All per-video assets of one video partition and their per-video checks.",
        tags={"dagster/max_retries": "1"},
    )


def register_new(
    store: VideoStore, lake: Lake, seen: dict[str, str], limit: "int | None" = None, log=None,
    failures: "list[tuple[str, str]] | None" = None, rehash: bool = False,
) -> tuple[list[Registered], dict[str, str]]:
    """Register every video file at the store's locations whose signature (size+mtime or ETag) is not in
    `seen`; returns the registrations and the updated `seen` map (the sensor's cursor). One bad input never stops
    the others: a location that cannot be listed is logged and skipped (its files stay in `seen`), a file that
    cannot be read is registered as that video's error (registry.register_video). Files gone since the last
    look leave `seen`; a labelled video whose source is gone is marked `source_missing`. A file whose
    registration fails anyway (the lake unreachable after the retries) goes to `failures` (uri, why) and stays
    out of `seen`, so the next look tries it again. A file whose location the registry last hashed with the same
    signature is not read again unless `rehash`."""
    seen = dict(seen)
    out: list[Registered] = []
    listed: set[str] = set()
    failed: list[str] = []
    for location in store.locations():
        try:
            listing = store.listing(location)
        except Exception as exc:  # an S3 outage that outlasted the retries, a folder we may not read
            failed.append(location)
            if log is not None:
                log.warning(f"cannot list {location}: {type(exc).__name__}: {exc}")
            continue
        for path, why in listing.errors:  # what is under it is not gone, just not visible now (an unmounted disk)
            failed.append(path)
            known = any(u == path or u.startswith(path.rstrip("/") + "/") for u in seen)
            if log is not None and known:  # (a watched folder never created, like the default inbox, is quiet)
                log.warning(f"{path}: {why}")
        for f in listing.files:
            listed.add(f.uri)
            if seen.get(f.uri) == f.signature:
                continue
            if limit is not None and len(out) >= limit:
                return out, seen
            try:
                out.append(register_video(f.uri, store, lake, None if rehash else f.signature))
            except Exception as exc:
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
                if failures is not None:
                    failures.append((f.uri, why))
                if log is not None:
                    log.warning(f"cannot register {f.uri}: {why}")
                continue
            seen[f.uri] = f.signature
    gone = [u for u in seen if u not in listed and not any(u == p or u.startswith(p.rstrip("/") + "/") for p in failed)]
    for uri in gone:
        seen.pop(uri)
        mark_missing(uri, store, lake, log)
    return out, seen


def mark_missing(uri: str, store: VideoStore, lake: Lake, log=None) -> str | None:
    """The video last registered at `uri`, marked `source_missing` when it has labels and the file is gone."""
    from fm_resources.registry import retire_video, uri_key

    rec = lake.read_json(uri_key(uri)) if lake.exists(uri_key(uri)) else None
    if rec is None or store.exists(uri):
        return None
    current = lookup_video(rec["video_id"], lake).get("uri")  # the same content may live on elsewhere
    if current and current != uri and store.exists(current):
        return None
    if retire_video(lake, rec["video_id"], "source_missing", f"the source {uri} is gone (deleted or moved); "
                    "its labels are kept, left out of splits and exports"):
        if log is not None:
            log.warning(f"{rec['video_id']}: source gone: {uri}")
        return rec["video_id"]
    return None


@sensor(
    job_name="label_videos",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches FM_INPUTS (folders, s3:// prefixes); adds each new video as a partition and runs it.",
)
def new_videos_sensor(context: SensorEvaluationContext, video_store: VideoStore, lake: Lake) -> SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    registered, seen = register_new(video_store, lake, cursor, limit=200, log=context.log)
    fresh = sorted({r.video_id for r in registered if not context.instance.has_dynamic_partition("videos", r.video_id)})
    if registered:
        context.log.info(f"registered {len(registered)} file(s), {len(fresh)} new video partition(s)")
    return SensorResult(
        run_requests=[RunRequest(partition_key=v, run_key=f"video:{v}") for v in fresh],
        dynamic_partitions_requests=[videos_partitions.build_add_request(fresh)] if fresh else [],
        cursor=json.dumps(seen, sort_keys=True),
    )
