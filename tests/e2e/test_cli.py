"""End to end through the real `fm` command (subprocesses, an isolated FM_HOME each)."""

import pytest

from fm_assets.synthetic import render_scene, scene_by_name
from tests.conftest import run_fm


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    for name in ("left_right", "shot_cut", "camera_pan"):
        render_scene(scene_by_name(name), d)
    return d


def sql_csv(home, query):
    proc = run_fm("sql", "--format", "csv", query, home=home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_run_clips_synthetic_scenes_as_their_truth_says(scenes, fm_home):
    proc = run_fm("run", str(scenes), "--until", "raw_clips", home=fm_home)
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 video(s) materialized" in proc.stderr
    rows = sql_csv(fm_home, "select split_part(video_id, '-', 1) v, start_s, end_s, kept, drop_reason "
                            "from raw_clips order by video_id, start_s").splitlines()
    assert rows == [
        "v,start_s,end_s,kept,drop_reason",
        "camera_pan,0.0,8.0,false,camera_motion",  # the background pans at 40 px/s
        "left_right,0.0,8.0,true,",
        "shot_cut,0.0,4.0,true,",  # the scene has a hard cut at 4.0 s
        "shot_cut,4.0,8.0,true,",
    ]


def _runs(home):
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert len(instance.get_dynamic_partitions("videos")) == 3
        runs = instance.get_runs()
        assert all(r.is_success for r in runs)
        return sorted(r.job_name for r in runs)


def _check_evaluations(home) -> dict[str, set[str]]:
    """{job: the names of the checks its runs evaluated}."""
    from dagster import DagsterEventType, DagsterInstance

    out: dict[str, set[str]] = {}
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        for run in instance.get_runs():
            names = out.setdefault(run.job_name, set())
            for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
                names.add(e.dagster_event.asset_check_evaluation_data.check_name)
    return out


def _materializations(home) -> dict[str, int]:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return {a: len(instance.fetch_materializations(AssetKey(a), limit=1000).records)
                for a in ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs",
                          "splits")}


def test_rerun_skips_what_is_up_to_date_and_force_gives_identical_tables(scenes, fm_home):
    query = "select * exclude (analysed_s) from videos order by video_id"
    clips_query = "select * exclude (thumbnail) from raw_clips order by clip_id"
    assert run_fm("run", str(scenes), "-q", home=fm_home).returncode == 0
    first = sql_csv(fm_home, query), sql_csv(fm_home, clips_query)
    assert _runs(fm_home) == ["build_dataset"] + ["label_videos"] * 3  # a run per video, then the dataset
    # the checks over the whole lake run once, with the dataset, not in each video's run
    checks = _check_evaluations(fm_home)
    lake_wide = {"qa_answer_balance", "qa_category_mix", "splits_leakage"}
    assert checks["build_dataset"] == lake_wide
    assert not checks["label_videos"] & lake_wide and {"qa_well_formed", "videos_source_identity"} <= checks["label_videos"]
    again = run_fm("run", str(scenes), "-q", home=fm_home)
    assert again.returncode == 0 and "(3 up to date, skipped; --force relabels)" in again.stderr, again.stderr
    assert _runs(fm_home) == ["build_dataset"] + ["label_videos"] * 3  # nothing ran
    assert run_fm("run", str(scenes), "-q", "--force", home=fm_home).returncode == 0
    assert (sql_csv(fm_home, query), sql_csv(fm_home, clips_query)) == first
    assert _runs(fm_home) == ["build_dataset"] * 2 + ["label_videos"] * 6


def test_a_changed_stage_config_reruns_that_stage_and_what_follows(scenes, fm_home, tmp_path):
    assert run_fm("run", str(scenes), "-q", home=fm_home).returncode == 0
    before = _materializations(fm_home)
    assert before == {**dict.fromkeys(before, 3), "splits": 1}
    config = tmp_path / "traj.yaml"
    config.write_text("ops:\n  trajectories:\n    config:\n      smooth_s: 0.6\n")
    proc = run_fm("run", str(scenes), "-q", "--config", str(config), home=fm_home)
    assert proc.returncode == 0 and "up to date" not in proc.stderr, proc.stderr
    after = _materializations(fm_home)
    rerun = {a for a in after if after[a] > before[a]}
    assert rerun == {"trajectories", "captions", "qa_pairs", "splits"}, after
    assert all(after[a] == before[a] + 3 for a in ("trajectories", "captions", "qa_pairs"))
    same = run_fm("run", str(scenes), "-q", "--config", str(config), home=fm_home)
    assert "(3 up to date, skipped" in same.stderr and _materializations(fm_home) == after


def test_sql_errors_and_formats(scenes, fm_home):
    assert run_fm("run", str(scenes / "left_right.mp4"), "-q", "--until", "raw_clips", home=fm_home).returncode == 0
    bad = run_fm("sql", "select nope from raw_clips", home=fm_home)
    assert bad.returncode != 0 and "Binder Error" in bad.stderr and 'nope' in bad.stderr
    missing = run_fm("sql", "select * from detections", home=fm_home)
    assert missing.returncode != 0 and "tables with data: raw_clips, stage_runs, videos" in missing.stderr
    js = run_fm("sql", "--format", "json", "select count(*) as n from raw_clips", home=fm_home)
    assert js.returncode == 0 and '"n": 1' in js.stdout
    table = run_fm("sql", "select video_id, status from videos", home=fm_home)
    assert "left_right-" in table.stdout and "1 row(s)" in table.stdout
    f = fm_home / "q.sql"
    f.write_text("select count(*) as clips from raw_clips where kept")
    assert run_fm("sql", "-f", str(f), "--format", "csv", home=fm_home).stdout == "clips\n1\n"


def test_run_rejects_unknown_asset_and_missing_path(scenes, fm_home):
    bad_asset = run_fm("run", str(scenes), "--until", "nonsense", home=fm_home)
    assert bad_asset.returncode != 0 and "not a per-video asset" in bad_asset.stderr
    missing = run_fm("run", str(scenes / "nope.mp4"), home=fm_home)
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_demo(fm_home):
    proc = run_fm("demo", home=fm_home)
    assert proc.returncode == 0, proc.stderr
    assert "7 of 7 video(s) materialized" in proc.stdout
    assert "tracks" in proc.stdout
    assert str(fm_home / "lake") in proc.stdout.replace("\n", "")
    assert "back_and_forth-" in proc.stdout
