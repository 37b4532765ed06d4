"""The `splits` asset over the lake: one split per video (failed videos too), with its clip and question counts."""

import hashlib

import polars as pl
from dagster import DagsterInstance, materialize

from fm_assets.defs.dataset import splits
from fm_assets.labels.ids import make_video_id
from fm_assets.labels.schemas import VIDEOS, frame
from fm_assets.labels.splits import assign_splits
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.warehouse import Warehouse


def ids(n: int, prefix: str = "clip") -> list[str]:
    return [make_video_id(f"{prefix}{i}.mp4", hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()) for i in range(n)]


def videos(video_ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"video_id": video_ids, "status": ["ok"] * len(video_ids)})


def test_splits_asset_reads_the_lake(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    vids = ids(5)
    for i, v in enumerate(vids):
        lake.write_parquet(f"videos/{v}.parquet", frame([{"video_id": v, "status": "ok" if i else "error"}], VIDEOS))
        lake.write_parquet(f"raw_clips/{v}.parquet", pl.DataFrame({"video_id": [v, v], "kept": [True, i > 2]}))
        lake.write_parquet(f"qa_pairs/{v}.parquet", pl.DataFrame(
            {"video_id": [v] * 3, "kept": [True, True, False], "grounded": [False, True, False]}))
    res = materialize([splits], instance=DagsterInstance.ephemeral(),
                      resources={"warehouse": Warehouse(lake=lake), "io_manager": LakeIOManager(lake=lake)},
                      run_config={"ops": {"splits": {"config": {"train": 0.6, "val": 0.2, "test": 0.2}}}})
    assert res.success
    df = lake.read_parquet("splits/all.parquet")
    assert df.sort("video_id")["split"].to_list() == assign_splits(videos(vids), (0.6, 0.2, 0.2)).sort("video_id")["split"].to_list()
    row = df.filter(pl.col("video_id") == vids[4]).row(0, named=True)
    assert (row["n_clips"], row["n_questions"], row["n_grounded"], row["status"]) == (2, 1, 1, "ok")
    assert df.filter(pl.col("video_id") == vids[0])["status"][0] == "error"  # failed videos get a split too
    (mat,) = res.asset_materializations_for_node("splits")
    assert mat.metadata["videos"].value == 5
