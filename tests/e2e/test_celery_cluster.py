"""The cluster you can run here (deploy/celery/): on 127.0.0.1, Postgres (initdb in a temp folder), Redis, a moto S3
server for the lake and the inputs, the Dagster daemon and two Celery workers, `gpu` (queue gpu: the `ingest` step, which detects) and
`cpu` (queue dagster: every other step), each with its own empty scratch folder, sharing only Postgres, Redis and S3.

1. A backfill of 12 video partitions finishes with every asset and check; the event log shows `ingest` (scan + detections) ran
   on the gpu worker only (and nothing else did); the lake on S3 equals a local in-process run of the same videos.
2. kill -9 of a worker mid-run: the step fails, the run fails and is retried (run_retries), a new worker completes it;
   the lake is again equal to the local run: nothing half-written or duplicated.
3. A step whose queue has no worker fails after FM_CELERY_NO_WORKER_TIMEOUT_S with an error naming the queue.

The servers must start under CI=true (the test fails otherwise); elsewhere a missing one skips with the reason."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import in_ci, loopback

N_VIDEOS = 12
BATCH = 6  # two runs of 6 videos: both run at once (max_concurrent_runs = 2 on 2 cores)
NO_WORKER_TIMEOUT_S = 20
# Columns that legitimately differ between the cluster and the local run: where the source was read from, and
# wall-clock timings. Everything else (every label) must be equal; paths into the lake are compared from the root.
VOLATILE = {"videos": {"uri", "analysed_s"}}
IN_LAKE_PATHS = {"raw_clips": {"thumbnail": "thumbnails/"}}


lb = loopback()


@pytest.fixture(scope="module")
def loop(tmp_path_factory, s3_server):
    """The running cluster, the 12 videos registered as partitions, and the local reference lake."""
    base = tmp_path_factory.mktemp("loopback")
    mp = pytest.MonkeyPatch()
    try:
        with lb.cluster(base, s3_url=s3_server) as c:
            for k, v in c.base_env(base / "observer").items():  # this process observes through the same instance
                mp.setenv(k, v)
            ids, local_root = _prepare(c, base)
            c.start_daemon(base / "daemon", FM_BACKFILL_BATCH=str(BATCH),
                           FM_CELERY_NO_WORKER_TIMEOUT_S=str(NO_WORKER_TIMEOUT_S))
            c.start_worker("gpu", ["gpu"], base / "worker-gpu")
            c.start_worker("cpu", ["dagster"], base / "worker-cpu", concurrency=2)
            yield c, ids, local_root
    except lb.Unavailable as exc:
        if in_ci():
            pytest.fail(f"the loopback cluster could not start under CI: {exc}")
        pytest.skip(f"the loopback cluster could not start: {exc}")
    finally:
        mp.undo()


def _prepare(c, base: Path) -> tuple[list[str], Path]:
    """Render the videos, put them in the inputs bucket, register them in the S3 lake and as partitions of the
    Postgres instance; label the same files locally in-process (the reference)."""
    from dagster import DagsterInstance, materialize

    from fm_assets.defs.ingest import ingest
    from fm_assets.defs.language import captions, qa_pairs
    from fm_assets.defs.motion import trajectories
    from fm_assets.defs.perception import tracks
    from fm_resources.detection.resource import DetectorResource
    from fm_resources.instance import dagster_instance
    from fm_resources.lake import Lake, LakeIOManager
    from fm_resources.llm import LLMResource
    from fm_resources.registry import register_video
    from fm_resources.trackers import TrackerResource
    from fm_resources.video import VideoStore

    videos = lb.render_videos(base / "videos", N_VIDEOS)
    s3 = c.s3_client()
    for p in videos:
        s3.upload_file(str(p), lb.INPUT_BUCKET, f"inbox/{p.name}")
    lake = Lake(root=f"s3://{lb.LAKE_BUCKET}/lake")
    ids = [register_video(f"s3://{lb.INPUT_BUCKET}/inbox/{p.name}", VideoStore(), lake).video_id for p in videos]
    instance = dagster_instance()  # fm's own set-up: Postgres storage, pools
    instance.add_dynamic_partitions("videos", ids)

    local_root = base / "local-lake"
    local = Lake(root=str(local_root))
    ephemeral = DagsterInstance.ephemeral()
    resources = {"lake": local, "io_manager": LakeIOManager(lake=local), "video_store": VideoStore(),
                 "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource()}
    for p in videos:
        vid = register_video(str(p), VideoStore(), local).video_id
        ephemeral.add_dynamic_partitions("videos", [vid])
        assert materialize([ingest, tracks, trajectories, captions, qa_pairs], partition_key=vid,
                           instance=ephemeral, resources=resources).success
    assert sorted(local.list("videos")) and len(local.list("videos")) == N_VIDEOS
    return ids, local_root


# -- comparing lakes ---------------------------------------------------------------------------------------------------
def _table(lake, name: str) -> pl.DataFrame:
    keys = sorted(lake.list(name))
    df = pl.concat([lake.read_parquet(k) for k in keys], how="vertical_relaxed")
    df = df.drop([c for c in VOLATILE.get(name, ()) if c in df.columns])
    for column, folder in IN_LAKE_PATHS.get(name, {}).items():
        df = df.with_columns(pl.col(column).str.replace(f"^.*?/{folder}", folder))
    flat = [c for c, t in df.schema.items() if not t.is_nested()]
    return df.sort(flat)


def _checksum(df: pl.DataFrame) -> str:
    return hashlib.sha256(df.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def lake_summary(lake) -> dict[str, tuple[int, int, str]]:
    """{table: (files, rows, checksum of the sorted rows)}."""
    out = {}
    for name in lb.PER_VIDEO_TABLES:
        df = _table(lake, name)
        out[name] = (len(lake.list(name)), len(df), _checksum(df))
    return out


def assert_lake_equals_local(local_root: Path) -> dict:
    from fm_resources.lake import Lake

    s3_lake, local = Lake(root=f"s3://{lb.LAKE_BUCKET}/lake"), Lake(root=str(local_root))
    for name in lb.PER_VIDEO_TABLES:
        a, b = _table(s3_lake, name), _table(local, name)
        assert a.columns == b.columns, name
        diff = [c for c in a.columns if not a[c].equals(b[c])] if a.shape == b.shape else ["shape"]
        assert not diff, f"{name}: columns differ between the S3 lake and the local run: {diff}"
    summary = lake_summary(s3_lake)
    assert summary == lake_summary(local)
    assert all(files == N_VIDEOS for files, _, _ in summary.values()), summary
    return summary


def s3_leftovers(c) -> list[str]:
    """Objects in the lake bucket that are not finished files (temporary or partial uploads)."""
    s3 = c.s3_client()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=lb.LAKE_BUCKET)
            for o in page.get("Contents", [])]
    return [k for k in keys if k.endswith(".tmp") or "/." in k]


# -- the event log -----------------------------------------------------------------------------------------------------
def step_hosts(instance, run_ids: list[str]) -> dict[str, set[str]]:
    """{step key: the Celery workers that executed it}, from the runs' engine events."""
    out: dict[str, set[str]] = {}
    for run_id in run_ids:
        for e in instance.all_logs(run_id):
            ev = e.dagster_event
            if ev is None or ev.event_type_value != "ENGINE_EVENT" or not e.step_key:
                continue
            worker = ev.engine_event_data.metadata.get("Celery worker") if ev.engine_event_data else None
            if worker is not None:
                out.setdefault(e.step_key, set()).add(worker.value)
    return out


def steps_running_on(instance, run_id: str, worker: str) -> list[str]:
    """The steps of a run that `worker` started and that have not ended yet."""
    started, ended = set(), set()
    for e in instance.all_logs(run_id):
        ev = e.dagster_event
        if ev is None or not e.step_key:
            continue
        if ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended.add(e.step_key)
        elif ev.event_type_value == "ENGINE_EVENT" and ev.engine_event_data:
            host = ev.engine_event_data.metadata.get("Celery worker")
            if host is not None and host.value == worker:
                started.add(e.step_key)
    return sorted(started - ended)


def run_error_text(instance, run_id: str) -> str:
    texts = []
    for e in instance.all_logs(run_id):
        ev = e.dagster_event
        data = getattr(ev, "event_specific_data", None) if ev else None
        err = getattr(data, "error", None)
        if err is not None:
            texts.append(err.to_string())
        if e.user_message:
            texts.append(e.user_message)
    return "\n".join(texts)


def test_backfill_on_two_workers_matches_a_local_run(loop):
    from dagster import DagsterInstance, DagsterRunStatus

    c, ids, local_root = loop
    instance = DagsterInstance.get()
    started = time.time()
    backfill_id = lb.launch_backfill(instance, ids)
    bf = lb.wait_backfill(instance, backfill_id, ids, timeout_s=420, daemon=c.daemon)
    elapsed = time.time() - started
    runs = lb.backfill_runs(instance, backfill_id)
    assert bf.status.value == "COMPLETED_SUCCESS", (bf.status, [r.status for r in runs])
    assert len(runs) == N_VIDEOS // BATCH and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert not lb.missing(instance, ids, bf.backfill_timestamp)  # every asset of every video
    # every check of every video ran and passed (the WARN dataset checks are not per-video)
    from fm_assets.definitions import defs

    check_keys = [k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.path[-1] != "splits"]
    evaluations = [e for r in runs for e in instance.all_logs(r.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    evaluated = {(e.dagster_event.asset_check_evaluation_data.asset_check_key, e.dagster_event.partition)
                 for e in evaluations}
    per_video = {k for k in check_keys if k.name not in ("qa_answer_balance", "qa_category_mix")}
    assert {k for k, _ in evaluated} >= per_video
    assert all(e.dagster_event.asset_check_evaluation_data.passed for e in evaluations
               if e.dagster_event.asset_check_evaluation_data.severity.value == "ERROR")
    # where the steps ran
    hosts = step_hosts(instance, [r.run_id for r in runs])
    assert hosts["ingest"] == {"gpu@loopback"}, hosts  # the step that detects
    assert all(h == {"cpu@loopback"} for step, h in hosts.items() if step != "ingest"), hosts
    assert {"ingest", "tracks", "trajectories", "captions", "qa_pairs"} <= set(hosts)
    # the lake on S3 is the local run's
    summary = assert_lake_equals_local(local_root)
    assert not s3_leftovers(c)
    print(f"\nbackfill of {N_VIDEOS} videos on the loopback cluster: {elapsed:.0f} s; lake {summary}")


def test_a_worker_killed_mid_run_is_retried_and_the_lake_stays_whole(loop):
    from dagster import DagsterInstance, DagsterRunStatus

    c, ids, local_root = loop
    instance = DagsterInstance.get()
    ids = ids[:BATCH]  # one run of 6 videos is enough to kill a worker under; the lake keeps all 12
    backfill_id = lb.launch_backfill(instance, ids)
    # wait until `tracks` (the longest step on the cpu worker: it imports mmdet and tracks 6 videos; a check step can
    # end before the kill lands) is executing there, then kill the worker (and its pool process) with SIGKILL
    deadline = time.time() + 180
    victim_step = None
    while time.time() < deadline and victim_step is None:
        for run in lb.backfill_runs(instance, backfill_id):
            running = [s for s in steps_running_on(instance, run.run_id, "cpu@loopback") if s == "tracks"]
            if running:
                victim_step = running[0]
                break
        time.sleep(0.2)
    assert victim_step, "no step reached the cpu worker"
    c.kill_worker("cpu")
    c.start_worker("cpu2", ["dagster"], c.base / "worker-cpu2", concurrency=2)  # a new machine, an empty scratch folder
    bf = lb.wait_backfill(instance, backfill_id, ids, timeout_s=480, daemon=c.daemon, until_runs_done=True)
    runs = lb.backfill_runs(instance, backfill_id)
    failed = [r for r in runs if r.status == DagsterRunStatus.FAILURE]
    assert failed, "the run whose worker was killed did not fail"
    assert any("stopped answering" in run_error_text(instance, r.run_id) for r in failed)
    left = lb.missing(instance, ids, bf.backfill_timestamp)
    if left:  # not completed by the automatic retry (run_retries): re-launch what is missing
        relaunch = lb.launch_backfill(instance, sorted(set().union(*left.values())))
        lb.wait_backfill(instance, relaunch, ids, timeout_s=300, daemon=c.daemon, until_runs_done=True)
    else:
        retried = [r for r in runs if r.tags.get("dagster/parent_run_id")]
        assert retried and all(r.status == DagsterRunStatus.SUCCESS for r in retried)
    assert not lb.missing(instance, ids, bf.backfill_timestamp)
    assert_lake_equals_local(local_root)
    assert not s3_leftovers(c)


def test_a_step_whose_queue_has_no_worker_fails_with_a_clear_error(loop):
    from dagster import DagsterInstance, DagsterRunStatus

    c, ids, _ = loop
    instance = DagsterInstance.get()
    c.stop_worker("gpu")
    started = time.time()
    backfill_id = lb.launch_backfill(instance, ids[:1], tags={"dagster/max_retries": "0"})
    deadline = time.time() + 240
    runs = []
    while time.time() < deadline:
        runs = lb.backfill_runs(instance, backfill_id)
        if runs and all(r.is_finished for r in runs):
            break
        time.sleep(1)
    assert runs and all(r.is_finished for r in runs), "the run waited for ever"
    assert runs[0].status == DagsterRunStatus.FAILURE
    text = run_error_text(instance, runs[0].run_id)
    assert 'no Celery worker consumes queue "gpu"' in text and 'step "ingest"' in text, text[-2000:]
    assert time.time() - started < NO_WORKER_TIMEOUT_S + 150
