"""Bad and unusual input (tests/conftest.py bad_files): each file gets a clear error or a recorded skip (videos.status
/ error and the Dagster materialization), and the other videos still materialize. `fm run` on the folder:
tests/e2e/test_bad_input.py."""

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from tests.helpers import ingest_files


@pytest.fixture(scope="module")
def ingested(bad_files, tmp_path_factory):
    paths, _ = bad_files
    instance = DagsterInstance.ephemeral()
    results, videos, clips = ingest_files(list(paths.values()), tmp_path_factory.mktemp("lake"), instance=instance)
    rows = {r["uri"].rsplit("/", 1)[-1].removesuffix(".mp4"): r for r in videos.to_dicts()}
    return instance, results, rows, clips


def test_every_partition_materializes(ingested, bad_files):
    _, results, rows, _ = ingested
    assert set(rows) == set(bad_files[0])
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


def test_variable_frame_rate_uses_presentation_times(ingested, bad_files):
    _, vfr_times = bad_files
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
