"""splits: a pure function of the video id (ratios honoured, stable as videos are added, copies of one file
together) and its config. The `splits` asset over the lake: tests/assets/test_dataset.py."""

import hashlib

import polars as pl
import pytest

from fm_assets.defs.dataset import SplitsConfig
from fm_assets.labels.ids import make_video_id
from fm_assets.labels.schemas import SPLITS
from fm_assets.labels.splits import assign_splits, bucket, group_key


def ids(n: int, prefix: str = "clip") -> list[str]:
    return [make_video_id(f"{prefix}{i}.mp4", hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()) for i in range(n)]


def videos(video_ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"video_id": video_ids, "status": ["ok"] * len(video_ids)})


def test_ratios_are_honoured_over_many_videos():
    df = assign_splits(videos(ids(4000)))
    share = dict(df.group_by("split").len().with_columns(pl.col("len") / len(df)).iter_rows())
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["val"] - 0.1) < 0.02 and abs(share["test"] - 0.1) < 0.02
    custom = assign_splits(videos(ids(4000)), (0.5, 0.25, 0.25))
    assert abs((custom["split"] == "test").mean() - 0.25) < 0.03
    assert df.columns == list(SPLITS)


def test_existing_videos_keep_their_split_when_videos_are_added():
    first = assign_splits(videos(ids(300)))
    grown = assign_splits(videos(ids(300) + ids(700, prefix="new")))
    assert grown.filter(pl.col("video_id").is_in(first["video_id"].implode())).sort("video_id").equals(first.sort("video_id"))
    assert assign_splits(videos(list(reversed(ids(300))))).equals(first)  # order of arrival does not matter


def test_copies_of_one_file_share_a_split_and_every_clip_follows_its_video():
    digest = hashlib.sha256(b"same bytes").hexdigest()
    a, b = make_video_id("holiday.mp4", digest), make_video_id("copy of holiday.MOV", digest)
    assert a != b and group_key(a) == group_key(b) == digest[:8]
    df = assign_splits(videos([a, b]))
    assert df["split"][0] == df["split"][1]
    assert group_key("not-a-standard-id") == "not-a-standard-id"  # ids without a content hash use the whole id
    assert 0 <= bucket("x") < 1 and bucket("x") == bucket("x") != bucket("y")


def test_ratios_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SplitsConfig(train=0.8, val=0.1, test=0.2)
