"""Backfills: a batch of video partitions in ONE run (BackfillPolicy.multi_run) writes each video's own rows and
metadata; the nightly automation requests exactly the missing partitions at its cron tick; runs are retried."""

import datetime

import polars as pl
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    define_asset_job,
    evaluate_automation_conditions,
)

from fm_assets.definitions import defs
from fm_assets.defs.checks import sql_checks
from fm_assets.defs.ingest import ingest
from fm_assets.defs.language import captions, qa_pairs
from fm_assets.defs.motion import trajectories
from fm_assets.defs.perception import tracks
from fm_assets.synthetic import render_scene, scene_by_name
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.registry import register_video
from fm_resources.settings import backfill_batch, backfill_cron, dagster_home
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore
from fm_resources.warehouse import Warehouse

PER_VIDEO = [ingest, tracks, trajectories, captions, qa_pairs]


def test_every_per_video_asset_backfills_in_batches():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys() - {AssetKey("splits")}:
        policy = graph.get(key).backfill_policy
        assert policy.max_partitions_per_run == backfill_batch()  # multi-run, a batch of videos per run
    assert next(s for s in defs.sensors if s.name == "nightly_backfill").emit_backfills


def test_a_batch_of_videos_in_one_run_keeps_each_videos_rows_and_metadata(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    instance = DagsterInstance.ephemeral()
    ids = []
    for name in ("left_right", "back_and_forth", "ordered_pair"):
        mp4 = render_scene(scene_by_name(name), tmp_path).mp4
        ids.append(register_video(str(mp4), VideoStore(), lake).video_id)
    instance.add_dynamic_partitions("videos", ids)
    checks = [c for c in sql_checks() if all(k.asset_key.path[-1] != "splits" for k in c.check_keys)]
    local = Definitions(
        assets=PER_VIDEO, asset_checks=[c for c in checks if not {k.name for k in c.check_keys} &
                                        {"qa_answer_balance", "qa_category_mix"}],
        jobs=[define_asset_job("batch", selection=PER_VIDEO)],
        resources={"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                   "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource(),
                   "warehouse": Warehouse(lake=lake)})
    res = local.resolve_job_def("batch").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": ids[0],
                                 "dagster/asset_partition_range_end": ids[-1]})
    assert res.success
    for asset in ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs"):
        for vid in ids:
            df = lake.read_parquet(f"{asset}/{vid}.parquet")
            assert set(df["video_id"].unique()) <= {vid}, (asset, vid)  # only its own rows
    directions = {vid: sorted(lake.read_parquet(f"trajectories/{vid}.parquet").filter(pl.col("kept"))["direction"])
                  for vid in ids}
    assert directions[ids[0]] == ["left", "right"] and directions[ids[0]] != directions[ids[1]]
    # one materialization per partition, each with its own metadata
    mats = [e for e in res.get_asset_materialization_events() if e.asset_key == AssetKey("trajectories")]
    meta = {e.partition: e.materialization.metadata for e in mats}
    assert set(meta) == set(ids)
    assert meta[ids[0]]["directions"].value != meta[ids[1]]["directions"].value
    # per-partition checks ran over the batch
    evaluations = res.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    stages = pl.concat([lake.read_parquet(k) for k in lake.list("stage_runs")])
    assert set(stages["video_id"]) == set(ids) and (stages["seconds"] > 0).all()


def test_nightly_backfill_requests_missing_partitions_at_its_cron_tick(tmp_path):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", ["a-00000001", "b-00000002"])
    assert backfill_cron() == "0 3 * * *"
    before = datetime.datetime(2026, 11, 30, 2, 50, tzinfo=datetime.UTC)
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=before)
    assert first.total_requested == 0  # nothing between ticks
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                           evaluation_time=before + datetime.timedelta(minutes=15))
    per_video = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k != AssetKey("splits")]
    for key in per_video:
        assert after.get_requested_partitions(key) == {"a-00000001", "b-00000002"}
    assert not after.get_requested_partitions(AssetKey("splits"))
    later = evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor,
                                           evaluation_time=before + datetime.timedelta(minutes=30))
    assert later.total_requested == 0  # once per tick


def test_the_instance_retries_failed_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    instance = DagsterInstance.from_config(str(dagster_home()))
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    job = defs.resolve_job_def("label_videos")
    assert job.tags["dagster/max_retries"] == "1"


def test_concurrency_pools_gpu_and_llm(tmp_path, monkeypatch):
    from fm_resources.instance import dagster_instance, set_pool_limits

    graph = defs.resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys()}
    assert pools["detections"] == {"gpu"} and pools["captions"] == pools["qa_pairs"] == {"llm"}
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("FM_LLM_SLOTS", "8")
    instance = dagster_instance()
    assert set_pool_limits(instance) == {"gpu": 1, "llm": 8}
    instance.event_log_storage.set_concurrency_slots("gpu", 2)  # a change made in the UI is kept
    assert set_pool_limits(instance)["gpu"] == 2


def test_of_video_gives_one_videos_rows_without_copying_a_single_videos_table():
    import polars as pl

    from fm_assets.defs.partitions import of_video

    one = pl.DataFrame({"video_id": ["a", "a"], "n": [1, 2]})
    assert of_video(one, "a") is one  # a long video's detections are not copied
    assert of_video(one, "b").is_empty()
    batch = pl.DataFrame({"video_id": ["a", "b", None], "n": [1, 2, 3]})
    assert of_video(batch, "b")["n"].to_list() == [2]
    assert of_video(pl.DataFrame({"video_id": [None, "a"], "n": [1, 2]}), "a")["n"].to_list() == [2]
