"""Stage 4: the dataset over all videos -> `splits` (train / val / test per video).

A video's split is a pure function of its id: the content part of the id (the first 8 hex digits of the file's
sha256) is hashed to a number in [0, 1) and compared with the cumulative ratios. So every clip and question of
a video is in one split, two copies of the same file under different names land in the same split, and adding
videos never moves an existing one (changing the ratios does move the videos near the changed boundaries)."""

import hashlib

import polars as pl
from dagster import AssetExecutionContext, AutomationCondition, Config, MetadataValue, asset
from pydantic import Field, model_validator

from fm_assets.schemas import SPLITS, frame
from fm_resources.warehouse import Warehouse

SPLIT_NAMES = ("train", "val", "test")


class SplitsConfig(Config):
    train: float = Field(0.8, ge=0, le=1, description="share of videos in train")
    val: float = Field(0.1, ge=0, le=1, description="share of videos in val")
    test: float = Field(0.1, ge=0, le=1, description="share of videos in test")

    @model_validator(mode="after")
    def _sums_to_one(self):
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train} + {self.val} + {self.test}")
        return self


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


VIDEO_COUNTS = """
SELECT v.video_id, v.status,
       coalesce(c.n_clips, 0) AS n_clips, coalesce(q.n_questions, 0) AS n_questions,
       coalesce(q.n_grounded, 0) AS n_grounded
FROM videos v
LEFT JOIN (SELECT video_id, count(*) FILTER (WHERE kept) AS n_clips FROM raw_clips GROUP BY 1) c USING (video_id)
LEFT JOIN (SELECT video_id, count(*) FILTER (WHERE kept AND NOT grounded) AS n_questions,
                  count(*) FILTER (WHERE kept AND grounded) AS n_grounded
           FROM qa_pairs GROUP BY 1) q USING (video_id)
"""


@asset(group_name="dataset", deps=["videos", "raw_clips", "qa_pairs"],
       automation_condition=AutomationCondition.eager(),
       description="Train / val / test per video, from a hash of the video id: stable as videos are added, "
                   "every clip of a video in one split, copies of one file together.")
def splits(context: AssetExecutionContext, config: SplitsConfig, warehouse: Warehouse) -> pl.DataFrame:
    tables = set(warehouse.tables())
    if not {"videos", "raw_clips", "qa_pairs"} <= tables:
        videos = pl.DataFrame(schema={"video_id": pl.String})
    else:
        videos = warehouse.query(VIDEO_COUNTS)
    df = assign_splits(videos, (config.train, config.val, config.test))
    counts = df.group_by("split").agg(pl.len().alias("videos"), pl.col("n_questions").sum().alias("questions"),
                                      pl.col("n_grounded").sum().alias("grounded"))
    summary = {r["split"]: r for r in counts.iter_rows(named=True)}
    context.add_output_metadata({
        "videos": len(df),
        **{f"{name}_videos": int(summary.get(name, {}).get("videos", 0)) for name in SPLIT_NAMES},
        **{f"{name}_questions": int(summary.get(name, {}).get("questions", 0)) for name in SPLIT_NAMES},
        "ratios": MetadataValue.json({"train": config.train, "val": config.val, "test": config.test}),
    })
    return df
