"""The whole graph at a glance.

    source video --(sensor / `fm run`)--> videos, raw_clips --> detections --> tracks
        --> trajectories --> captions --> qa_pairs                                     [partitioned by video]
    (videos, raw_clips and detections are one step, `ingest`: one decode pass per video)
        --> splits                                                                     [the dataset]

Checks: one per file in sql/checks, attached to its asset (per video partition, or over the whole dataset);
ERROR checks block the assets downstream of a bad partition.
Code versions (defs/versions.py): a digest of the files that decide each asset's rows; `fm run` skips a video
whose assets are fresh under the current code and config.
Automation: `new_videos_sensor` labels new files as they arrive; `nightly_backfill` launches one backfill of
every missing or failed partition at FM_BACKFILL_CRON (batches of FM_BACKFILL_BATCH videos per run) and
refreshes `splits` after new labels; `nightly_compaction` (job `compact_lake`) rewrites the per-video tables
into a few Parquet parts at FM_COMPACT_CRON for fast whole-lake checks and SQL.

Resources: `lake` (Parquet label lake, local or S3), `io_manager` (the lake as Dagster IO), `video_store`
(input folders / S3 prefixes, decoding), `detector` (motion or mmdet), `tracker` (mmdet ByteTrack / OC-SORT),
`llm` (litellm: any model string, cache in the lake, retries; `template` = offline writer),
`warehouse` (DuckDB views over the lake).
"""

from dagster import Definitions, map_asset_specs

from fm_assets.defs.automation import (
    backfill_condition,
    build_dataset_job,
    dataset_condition,
    label_videos_job,
    new_videos_sensor,
    nightly_backfill,
)
from fm_assets.defs.checks import lake_wide_checks, sql_checks
from fm_assets.defs.dataset import splits
from fm_assets.defs.ingest import ingest
from fm_assets.defs.language import captions, qa_pairs
from fm_assets.defs.maintenance import compact_lake, compact_schedule
from fm_assets.defs.motion import trajectories
from fm_assets.defs.partitions import backfill_policy
from fm_assets.defs.perception import tracks
from fm_assets.defs.versions import code_version
from fm_resources import cluster, settings
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore
from fm_resources.warehouse import Warehouse


def build_defs() -> Definitions:
    """The code location, with the settings of this environment (fm_resources.settings) read now."""
    lake = Lake(root=settings.lake_root())
    nightly = backfill_condition(settings.backfill_cron())
    per_video = [
        a.with_attributes(backfill_policy=backfill_policy(settings.backfill_batch()))
        for a in map_asset_specs(lambda spec: spec.replace_attributes(
            automation_condition=nightly, code_version=code_version(spec.key.path[-1])),
            [ingest, tracks, trajectories, captions, qa_pairs])
    ]
    dataset = map_asset_specs(lambda spec: spec.replace_attributes(
        automation_condition=dataset_condition, code_version=code_version(spec.key.path[-1])), [splits])
    lake_wide = lake_wide_checks()  # run by build_dataset, left out of each video's run

    # Runs execute their steps in the run's own process: a step process per asset and check costs a Python start
    # and an import of this code location each (seconds), far more than most steps compute
    # (bench/dagster_overhead.py). Parallelism comes from runs (a backfill's batches, the sensor's runs) and the
    # concurrency pools. Across machines (FM_EXECUTOR=celery or k8s, fm_resources/cluster.py) each step runs where
    # its op tags say (fm_assets/defs/placement.py: `ingest`, which detects, on a GPU).
    return Definitions(
        assets=[*per_video, *dataset],
        executor=cluster.executor_def(settings.executor_kind()),
        asset_checks=sql_checks(),
        jobs=[label_videos_job(lake_wide), build_dataset_job(lake_wide), compact_lake],
        sensors=[new_videos_sensor, nightly_backfill(settings.backfill_cron())],
        schedules=[compact_schedule(settings.compact_cron())],
        resources={
            "lake": lake,
            "io_manager": LakeIOManager(lake=lake),
            "video_store": VideoStore(),
            "detector": DetectorResource(),
            "tracker": TrackerResource(),
            "llm": LLMResource(model=settings.llm_model()),
            "warehouse": Warehouse(lake=lake),
        },
    )


defs = build_defs()
