"""The label lake as Dagster's IO manager: one Parquet file per partition, on local disk and on a real S3-protocol
server (moto, 127.0.0.1)."""

import polars as pl
from dagster import AssetExecutionContext, DagsterInstance, DynamicPartitionsDefinition, asset, materialize

from fm_resources.lake import Lake, LakeIOManager
from fm_resources.warehouse import Warehouse


def _partitioned_asset():
    parts = DynamicPartitionsDefinition(name="videos")

    @asset(partitions_def=parts)
    def table(context: AssetExecutionContext) -> pl.DataFrame:
        return pl.DataFrame({"video_id": [context.partition_key], "n": [len(context.partition_key)]})

    return parts, table


def test_io_manager_writes_one_file_per_partition(tmp_path):
    parts, table = _partitioned_asset()
    lake = Lake(root=str(tmp_path / "lake"))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", ["v-aaaaaaaa", "w-bbbbbbbb"])
    for key in ["v-aaaaaaaa", "w-bbbbbbbb"]:
        res = materialize([table], partition_key=key, instance=instance, resources={"io_manager": LakeIOManager(lake=lake)})
        assert res.success
    assert lake.list("table") == ["table/v-aaaaaaaa.parquet", "table/w-bbbbbbbb.parquet"]
    out = Warehouse(lake=lake).connect()
    con_views = [r[0] for r in out.execute("select view_name from duckdb_views() where not internal").fetchall()]
    assert "table" not in con_views  # only assets with a sql/views file get a view


def test_io_manager_on_s3(s3_env):
    s3_env.create_bucket(Bucket="lake2")
    parts, table = _partitioned_asset()
    lake = Lake(root="s3://lake2")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", ["v-aaaaaaaa"])
    res = materialize([table], partition_key="v-aaaaaaaa", instance=instance, resources={"io_manager": LakeIOManager(lake=lake)})
    assert res.success
    assert lake.read_parquet("table/v-aaaaaaaa.parquet")["n"].to_list() == [10]
