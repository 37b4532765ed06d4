"""Bad and unusual input: each file gets a clear error or a recorded skip (videos.status / error and the
Dagster materialization), the other videos still materialize, and nothing is half-written."""

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from tests import media
from tests.conftest import run_fm
from tests.helpers import ingest_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inbox")
    good = media.small_mp4(d / "good.mp4", n_frames=100)
    vfr, vfr_times = media.variable_frame_rate(d / "vfr.mp4", n_frames=120)
    return {
        "good": good,
        "zero": media.zero_byte(d / "zero.mp4"),
        "truncated": media.truncated_mp4(d / "truncated.mp4"),
        "text": media.text_as_mp4(d / "text.mp4"),
        "audio": media.audio_only(d / "audio.mp4"),
        "single": media.single_frame(d / "single.mp4"),
        "vfr": vfr,
        "rotated": media.rotated(d / "rotated.mp4", degrees=90, width=320, height=240, n_frames=75),
        "uhd": media.uhd_4k(d / "uhd.mp4"),
    }, vfr_times


@pytest.fixture(scope="module")
def ingested(files, tmp_path_factory):
    paths, _ = files
    instance = DagsterInstance.ephemeral()
    results, videos, clips = ingest_files(list(paths.values()), tmp_path_factory.mktemp("lake"), instance=instance)
    rows = {r["uri"].rsplit("/", 1)[-1].removesuffix(".mp4"): r for r in videos.to_dicts()}
    return instance, results, rows, clips


def test_every_partition_materializes(ingested, files):
    _, results, rows, _ = ingested
    assert set(rows) == set(files[0])
    assert all(res.success for _, res in results.values())


@pytest.mark.parametrize(
    "name, status, words",
    [
        ("zero", "error", "empty file"),
        ("truncated", "error", "not a readable video"),
        ("text", "error", "not a readable video"),
        ("audio", "skipped", "no video stream"),
        ("single", "skipped", "no usable clip"),
    ],
)
def test_bad_file_is_recorded(ingested, name, status, words):
    instance, results, rows, clips = ingested
    row = rows[name]
    assert row["status"] == status and words in row["error"], row
    assert clips.filter(pl.col("video_id") == row["video_id"]).filter(pl.col("kept")).is_empty()
    # the status is in the Dagster materialization too, for the UI
    records = instance.fetch_materializations(AssetKey("videos"), limit=100).records
    meta = [r.asset_materialization.metadata for r in records if r.partition_key == row["video_id"]][0]
    assert meta["status"].value == status and words in meta["error"].value


def test_good_neighbours_are_ok(ingested):
    _, _, rows, clips = ingested
    for name in ("good", "vfr", "rotated", "uhd"):
        assert rows[name]["status"] == "ok", rows[name]
        assert not clips.filter((pl.col("video_id") == rows[name]["video_id"]) & pl.col("kept")).is_empty()


def test_variable_frame_rate_uses_presentation_times(ingested, files):
    _, vfr_times = files
    _, _, rows, clips = ingested
    row = rows["vfr"]
    assert row["vfr"] is True and row["n_frames"] == len(vfr_times)
    c = clips.filter(pl.col("video_id") == row["video_id"]).sort("start_s")
    assert c["start_s"][0] == pytest.approx(vfr_times[0])
    assert c["end_s"][-1] == pytest.approx(vfr_times[-1] + (vfr_times[-1] - vfr_times[-2]), abs=0.05)
    # the duration comes from timestamps, not from frame count / nominal rate
    assert row["duration_s"] == pytest.approx(vfr_times[-1] - vfr_times[0] + 0.05, abs=0.03)


def test_rotation_is_recorded_and_size_is_as_displayed(ingested):
    _, _, rows, _ = ingested
    row = rows["rotated"]
    assert row["rotation"] in (90, 270)
    assert (row["width"], row["height"]) == (240, 320)


def test_4k_is_processed(ingested):
    _, _, rows, _ = ingested
    assert (rows["uhd"]["width"], rows["uhd"]["height"]) == (3840, 2160)


def test_fm_run_on_a_folder_of_bad_files_keeps_going(files, fm_home):
    paths, _ = files
    folder = paths["good"].parent
    proc = run_fm("run", str(folder), "--until", "raw_clips", home=fm_home)
    assert proc.returncode == 0, proc.stderr
    assert "9 of 9 video(s) materialized" in proc.stderr
    out = run_fm("sql", "--format", "csv", "select status, count(*) n from videos group by 1 order by 1", home=fm_home)
    assert out.stdout.splitlines() == ["status,n", "error,3", "ok,4", "skipped,2"]
    leftovers = [p for p in (fm_home / "lake").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
