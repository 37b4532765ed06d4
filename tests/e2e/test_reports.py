"""The dataset end to end through the real `fm` command: `fm run` labels, checks and splits; the reports in
sql/reports run with `fm sql -f`; a bad query fails cleanly without touching the lake; `fm db` writes a DuckDB
file with the views."""

import os
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from fm_assets.defs.checks import load_checks
from fm_assets.labels.splits import assign_splits
from fm_assets.synthetic import render_scene, scene_by_name
from tests.conftest import ROOT, run_fm

REPORTS = sorted((ROOT / "sql" / "reports").glob("*.sql"))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    scenes = tmp_path_factory.mktemp("scenes")
    for name in ("left_right", "ordered_pair"):
        render_scene(scene_by_name(name), scenes)
    home = tmp_path_factory.mktemp("fm_home")
    proc = run_fm("run", str(scenes), "-q", home=home)
    assert proc.returncode == 0, proc.stderr
    return home


def csv(home: Path, *args: str) -> pl.DataFrame:
    proc = run_fm("sql", "--format", "csv", *args, home=home)
    assert proc.returncode == 0, proc.stderr
    return pl.read_csv(proc.stdout.encode())


def lake_snapshot(home: Path) -> dict:
    lake = home / "lake"
    return {str(p.relative_to(lake)): (p.stat().st_size, p.stat().st_mtime_ns) for p in lake.rglob("*") if p.is_file()}


def test_run_builds_splits_over_every_video(labelled):
    df = csv(labelled, "select * from splits order by video_id")
    videos = csv(labelled, "select video_id, status from videos order by video_id")
    assert df["video_id"].to_list() == videos["video_id"].to_list()
    assert df["split"].to_list() == assign_splits(videos)["split"].to_list()
    assert (df["n_questions"] > 0).all()


def test_every_check_ran_per_partition_and_passed(labelled, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(labelled / "dagster"))
    instance = DagsterInstance.get()
    ids = csv(labelled, "select video_id from videos")["video_id"].to_list()
    from fm_assets.definitions import defs

    keys = {k.name: k for k in defs.resolve_asset_graph().asset_check_keys}
    for check in load_checks():
        history = instance.event_log_storage.get_asset_check_execution_history(keys[check.name], limit=10)
        assert history, check.name
        assert {r.status.value for r in history} == {"SUCCEEDED"}, check.name
        evaluations = [r.event.dagster_event.event_specific_data for r in history if r.event]
        assert all(e.passed for e in evaluations), check.name
        if check.scope == "partition" and check.asset != "splits":
            assert {r.partition for r in history} == set(ids), check.name
    assert instance.get_latest_materialization_event(AssetKey("splits")) is not None


@pytest.mark.parametrize("report", REPORTS, ids=[p.stem for p in REPORTS])
def test_reports_run(labelled, report):
    df = csv(labelled, "-f", str(report))
    assert df.width >= 3
    if report.stem == "labels_per_video":
        assert df.height == 2 and set(df["split"]) <= {"train", "val", "test"}
    if report.stem == "labels_per_category":
        assert df["questions"].sum() == int(csv(labelled, "select count(*) n from qa_pairs where kept")["n"][0])
    if report.stem == "stage_seconds":
        assert set(df["asset"]) == {"videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs"}
        assert (df["videos"] == 2).all() and (df["total_s"] > 0).all()
    if report.stem == "llm_usage":
        assert df.filter(pl.col("what") == "captions")["model"].to_list() == ["template"]


def test_a_bad_query_prints_duckdbs_message_and_leaves_the_lake_alone(labelled, tmp_path):
    before = lake_snapshot(labelled)
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT video_id, count(* FROM qa_pairs GROUP BY 1")
    proc = run_fm("sql", "-f", str(bad), home=labelled)
    assert proc.returncode != 0 and "Parser Error" in proc.stderr and proc.stdout == ""
    proc = run_fm("sql", "select no_such_column from splits", home=labelled)
    assert proc.returncode != 0 and "Binder Error" in proc.stderr and "no_such_column" in proc.stderr
    assert lake_snapshot(labelled) == before


def test_db_file_holds_the_views_for_other_clients(labelled, tmp_path):
    out = tmp_path / "labels.duckdb"
    proc = run_fm("db", "--out", str(out), home=labelled)
    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(out), read_only=True) as con:
        views = {r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()}
        assert {"videos", "qa_pairs", "splits", "stage_runs"} <= views
        n = con.sql("select count(*) from qa_pairs join splits using (video_id)").fetchall()[0][0]
    assert n == int(csv(labelled, "select count(*) n from qa_pairs")["n"][0]) > 0
    assert (labelled / "fm.duckdb").exists() and os.path.getsize(labelled / "fm.duckdb") > 0  # fm run wrote one
