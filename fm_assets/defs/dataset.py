"""Stage 4: the dataset over all videos -> `splits` (train / val / test per video).

A video's split is a pure function of its id: the content part of the id (the first 8 hex digits of the file's
sha256) is hashed to a number in [0, 1) and compared with the cumulative ratios. So every clip and question of
a video is in one split, two copies of the same file under different names land in the same split, and adding
videos never moves an existing one (changing the ratios does move the videos near the changed boundaries)."""

import polars as pl
from dagster import AssetExecutionContext, AutomationCondition, MetadataValue, asset

from fm_assets.defs.config import config_class
from fm_assets.labels.splits import SPLIT_NAMES, SplitParams, assign_splits
from fm_resources.warehouse import Warehouse

SplitsConfig = config_class(SplitParams, "SplitsConfig")

VIDEO_COUNTS = """
SELECT v.video_id, v.status,
       coalesce(c.n_clips, 0) AS n_clips, coalesce(q.n_questions, 0) AS n_questions,
       coalesce(q.n_grounded, 0) AS n_grounded
FROM videos v
LEFT JOIN (SELECT video_id, count(*) FILTER (WHERE kept) AS n_clips FROM raw_clips GROUP BY 1) c USING (video_id)
LEFT JOIN (SELECT video_id, count(*) FILTER (WHERE kept AND NOT grounded) AS n_questions,
                  count(*) FILTER (WHERE kept AND grounded) AS n_grounded
           FROM qa_pairs GROUP BY 1) q USING (video_id)
WHERE v.status IS NULL OR v.status NOT IN ('stale', 'source_missing')  -- retired videos are not in the dataset
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
    df = assign_splits(videos, config.to_params().ratios)
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
