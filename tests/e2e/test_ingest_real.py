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


# The shot cuts of bikes.mp4 (250 frames, 25 fps), marked BY EYE on the decoded frames (PyAV, frame index = decode
# order from 0): the first frame of each new shot, with what changes there. A frame-by-frame look at the whole clip
# found no other cut (no dissolve either): the white van that sweeps across the taxi shot (frames ~95-105) and the
# refocus from the man to the traffic (frames ~42-50) are continuous.
BIKES_CUTS = {
    30: "top-down view of a grey road with a white lane and a red car at the right edge -> a man in a suit on a "
        "bicycle between rows of cars, shallow focus",
    76: "close-up of a taxi's roof sign ('TAXI') -> the back of a dark taxi, a cyclist in a helmet beside it",
    137: "the taxi with the cyclist -> a wide shot through a green diagonal-braced railing onto a square with "
         "parked cars and a row of houses",
    187: "the railing and the square -> street level: legs of a walker in black trousers passing a bicycle parked "
         "against a wall, two bollards",
    242: "the parked bicycle and bollards -> an out-of-focus close-up of bicycle wheels behind a tree trunk",
}
CUT_TOLERANCE = 1  # frames: a cut found one frame early or late still marks the same boundary


def test_bikes_is_cut_at_its_shot_boundaries(ingested):
    _, results, videos, clips = ingested
    vid = results["bikes.mp4"][0]
    n_frames = videos.filter(pl.col("video_id") == vid)["n_frames"].item()
    bikes = clips.filter(pl.col("video_id") == vid).sort("start_frame")
    shots = (bikes.group_by("shot_idx").agg(start=pl.col("start_frame").min(), end=pl.col("end_frame").max())
             .sort("shot_idx"))
    # The code's cuts (the first frame of each shot after the first) against the cuts marked by eye: each mark is
    # found within the tolerance, and there is no cut without a mark nor a mark without a cut.
    found = shots["start"].to_list()[1:]
    marked = sorted(BIKES_CUTS)
    assert len(found) == len(marked), f"cuts found at {found}, marked by eye at {marked}"
    for got, want in zip(found, marked):
        assert abs(got - want) <= CUT_TOLERANCE, f"cuts found at {found}, marked by eye at {marked}"
    # The shots tile the video: the first starts at frame 0, each next one where the previous ends, the last ends
    # at the video's last frame; the shot indices count up from 0.
    assert shots["shot_idx"].to_list() == list(range(len(shots)))
    assert shots["start"][0] == 0 and shots["end"][-1] == n_frames
    assert shots["start"].to_list()[1:] == shots["end"].to_list()[:-1]
    # Within each shot the clips tile it contiguously: no gap, no overlap, none empty, none outside the shot.
    for shot_clips in bikes.partition_by("shot_idx"):
        shot_clips = shot_clips.sort("start_frame")
        shot_idx = shot_clips["shot_idx"][0]
        starts, ends = shot_clips["start_frame"].to_list(), shot_clips["end_frame"].to_list()
        bounds = shots.filter(pl.col("shot_idx") == shot_idx).row(0, named=True)
        assert starts[0] == bounds["start"] and ends[-1] == bounds["end"], (shot_idx, starts, ends)
        assert starts[1:] == ends[:-1], (shot_idx, starts, ends)
        assert all(s < e for s, e in zip(starts, ends)), (shot_idx, starts, ends)
        assert (shot_clips["n_frames"] == shot_clips["end_frame"] - shot_clips["start_frame"]).all()
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
