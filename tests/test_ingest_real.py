"""videos + raw_clips on real footage from ../shared/data."""

import polars as pl
import pytest

from tests.conftest import needs_shared, shared_video
from tests.helpers import ingest_files

pytestmark = needs_shared

NAMES = ["TUD-Campus.mp4", "bikes.mp4", "box.mp4", "car-detection.mp4"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    results, videos, clips = ingest_files([shared_video(n) for n in NAMES], lake)
    return lake, results, videos, clips


def test_every_video_materializes_with_probe_facts(ingested):
    _, results, videos, _ = ingested
    assert all(r.success for _, r in results.values())
    v = {row["video_id"].split("-")[0]: row for row in videos.to_dicts()}
    tud = videos.filter(pl.col("video_id").str.starts_with("tud-campus")).row(0, named=True)
    assert tud["status"] == "ok" and tud["n_frames"] == 71 and tud["fps"] == pytest.approx(25.0)
    assert (tud["width"], tud["height"], tud["codec"]) == (640, 480, "mpeg4")
    assert tud["duration_s"] == pytest.approx(71 / 25, abs=1e-6)
    box = videos.filter(pl.col("video_id").str.starts_with("box")).row(0, named=True)
    assert box["n_frames"] == 455  # the README: 456 declared, 455 decode
    assert v["bikes"]["n_shots"] == 6


def test_bikes_is_cut_at_its_shot_boundaries(ingested):
    _, results, _, clips = ingested
    bikes = clips.filter(pl.col("video_id") == results["bikes.mp4"][0]).sort("start_s")
    # cut frames found by content change on the real clip: 30, 76, 137, 187, 242 (25 fps)
    assert sorted(set(bikes["start_frame"].to_list()) - {0}) == [30, 76, 137, 187, 242]
    for shot in bikes.group_by("shot_idx").agg(pl.col("start_frame").min(), pl.col("end_frame").max()).iter_rows():
        pass
    dropped = bikes.filter(~pl.col("kept"))
    assert set(dropped["drop_reason"].to_list()) <= {"short_shot", "camera_motion"}
    assert (bikes.filter(pl.col("drop_reason") == "short_shot")["end_s"] - bikes.filter(pl.col("drop_reason") == "short_shot")["start_s"]).max() < 2.0


def test_clip_lengths(ingested):
    _, _, _, clips = ingested
    kept = clips.filter(pl.col("kept") | (pl.col("drop_reason") == "camera_motion"))
    length = kept["end_s"] - kept["start_s"]
    assert length.max() <= 10.0 + 1e-6
    assert length.min() >= 2.0 - 1e-6
    long_videos = clips.filter(pl.col("video_id").str.starts_with("car-detection"))
    assert ((long_videos["end_s"] - long_videos["start_s"]) >= 5.0 - 1e-6).all()


def test_moving_camera_scores_clearly_higher_than_static_cameras(ingested):
    _, _, _, clips = ingested
    by = clips.group_by(pl.col("video_id").str.split("-").list.first().alias("v")).agg(pl.col("camera_motion").max())
    m = dict(by.iter_rows())
    assert m["bikes"] > 10 * max(m["tud"], m["car"], 0.005)
    assert m["tud"] < 0.05 and m["car"] < 0.05 and m["box"] < 0.05


def test_thumbnails_written(ingested):
    lake, _, _, clips = ingested
    for path in clips["thumbnail"].to_list():
        assert path and open(path, "rb").read(3) == b"\xff\xd8\xff"


def test_same_input_same_tables(ingested, tmp_path):
    _, _, videos, clips = ingested
    _, videos2, clips2 = ingest_files([shared_video(n) for n in NAMES], tmp_path)
    drop = ["analysed_s"]
    assert videos.drop(drop).sort("video_id").equals(videos2.drop(drop).sort("video_id"))
    assert clips.drop("thumbnail").sort("clip_id").equals(clips2.drop("thumbnail").sort("clip_id"))
