"""Train / val / test per video.

A video's split is a pure function of its id: the content part of the id (the first 8 hex digits of the file's
sha256) is hashed to a number in [0, 1) and compared with the cumulative ratios. So every clip and question of
a video is in one split, two copies of the same file under different names land in the same split, and adding
videos never moves an existing one (changing the ratios does move the videos near the changed boundaries)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.schemas import SPLITS, frame

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitParams:
    """The shares of videos in each split."""

    train: float = param(0.8, "share of videos in train", ge=0, le=1)
    val: float = param(0.1, "share of videos in val", ge=0, le=1)
    test: float = param(0.1, "share of videos in test", ge=0, le=1)

    def __post_init__(self) -> None:
        check_bounds(self)
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train} + {self.val} + {self.test}")

    @property
    def ratios(self) -> tuple[float, float, float]:
        return self.train, self.val, self.test


def group_key(video_id: str) -> str:
    """What a split is decided on: the content hash in the id (`<stem>-<sha256[:8]>`), else the whole id."""
    tail = video_id.rsplit("-", 1)[-1]
    return tail if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else video_id


def bucket(key: str) -> float:
    """A uniform number in [0, 1) from a string (the first 64 bits of its sha256)."""
    return int.from_bytes(hashlib.sha256(f"fm-split\x1f{key}".encode()).digest()[:8], "big") / 2.0**64


def split_of(b: float, ratios: tuple[float, float, float]) -> str:
    train, val, _ = ratios
    return "train" if b < train else "val" if b < train + val else "test"


def assign_splits(videos: pl.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> pl.DataFrame:
    """One row per video (video_id, status, n_clips, n_questions, n_grounded) -> the splits table."""
    rows = []
    for v in videos.sort("video_id").iter_rows(named=True):
        key = group_key(v["video_id"])
        b = bucket(key)
        rows.append({"video_id": v["video_id"], "split": split_of(b, ratios), "bucket": b, "group_key": key,
                     "status": v.get("status"), "n_clips": v.get("n_clips") or 0,
                     "n_questions": v.get("n_questions") or 0, "n_grounded": v.get("n_grounded") or 0})
    return frame(rows, SPLITS)
