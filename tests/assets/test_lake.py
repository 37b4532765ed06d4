"""The label lake as Dagster's IO manager: one Parquet file per partition, on local disk and on a real S3-protocol
server (moto, 127.0.0.1)."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, DagsterInstance, DynamicPartitionsDefinition, asset, materialize

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


def _lazy_batch(lake: Lake, keys: list[str]):
    """An asset that returns a LazyFrame over a Parquet file of rows for `keys` (as `ingest` returns the detections
    it spilled), materialized for those partitions in one run (a batch) with the lake's IO manager."""
    parts = DynamicPartitionsDefinition(name="videos")

    @asset(partitions_def=parts)
    def spilled(context: AssetExecutionContext) -> pl.LazyFrame:
        spill = lake.local_path("spill.parquet") if not lake.remote else None
        df = pl.DataFrame({"video_id": [k for k in context.partition_keys for _ in range(3)],
                           "n": list(range(3 * len(context.partition_keys)))})
        if spill is None:
            return df.lazy()
        spill.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(spill)
        return pl.scan_parquet(spill)

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", keys)
    return materialize([spilled], instance=instance, resources={"io_manager": LakeIOManager(lake=lake)},
                       tags={"dagster/asset_partition_range_start": keys[0],
                             "dagster/asset_partition_range_end": keys[-1]})


def test_a_lazy_table_is_streamed_into_one_file_per_partition(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    res = _lazy_batch(lake, ["v-aaaaaaaa", "w-bbbbbbbb"])
    assert res.success
    assert lake.read_parquet("spilled/v-aaaaaaaa.parquet")["n"].to_list() == [0, 1, 2]
    assert lake.read_parquet("spilled/w-bbbbbbbb.parquet")["n"].to_list() == [3, 4, 5]
    [mat] = [m for m in res.asset_materializations_for_node("spilled") if m.partition == "w-bbbbbbbb"]
    assert mat.metadata["rows"].value == 6 and mat.metadata["partitions"].value == 2
    assert lake.read_parquet("stage_runs/w-bbbbbbbb__spilled.parquet")["rows"].to_list() == [3]
    assert not [p for p in (tmp_path / "lake" / "spilled").iterdir() if p.name.startswith(".")]  # no temp left


def test_a_lazy_table_on_s3(s3_env):
    s3_env.create_bucket(Bucket="lake3")
    lake = Lake(root="s3://lake3")
    assert _lazy_batch(lake, ["v-aaaaaaaa"]).success
    assert lake.read_parquet("spilled/v-aaaaaaaa.parquet")["n"].to_list() == [0, 1, 2]


def _table_then_reader(lake: Lake):
    """`table` (columns video_id, n) of one partition, then `reader`, whose input names the columns n, gone and
    video_id, materialized in one run with the lake's IO manager: (result, the columns `reader` got, `table`,
    instance)."""
    parts, table = _partitioned_asset()
    seen: dict = {}

    @asset(partitions_def=parts, ins={"table": AssetIn(metadata={"columns": ["n", "gone", "video_id"]})})
    def reader(table: pl.DataFrame) -> pl.DataFrame:
        seen["columns"] = table.columns
        return table

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", ["v-aaaaaaaa"])
    res = materialize([table, reader], partition_key="v-aaaaaaaa", instance=instance,
                      resources={"io_manager": LakeIOManager(lake=lake)})
    return res, seen.get("columns"), table, instance


def test_an_input_naming_columns_reads_only_those_the_table_has(tmp_path):
    # `tracks` reads `detections` without its masks: AssetIn(metadata={"columns": [...]}), as Dagster's database IO
    # managers take it; a column the file lacks (a table written before it existed) is passed over
    lake = Lake(root=str(tmp_path / "lake"))
    res, columns, _, _ = _table_then_reader(lake)
    assert res.success and columns == ["video_id", "n"]  # the file's order
    assert lake.read_parquet("table/v-aaaaaaaa.parquet", ["n"]).columns == ["n"]
    assert lake.read_parquet("table/v-aaaaaaaa.parquet").columns == ["video_id", "n"]


def test_an_input_naming_columns_on_s3(s3_env):
    s3_env.create_bucket(Bucket="lake3")
    res, columns, _, _ = _table_then_reader(Lake(root="s3://lake3"))
    assert res.success and columns == ["video_id", "n"]


def test_a_run_in_process_keeps_no_copy_of_a_stored_table(tmp_path):
    # execute_in_process (how `fm run` runs a video) keeps each output for its result; the lake's IO manager drops
    # that copy once the table is stored, so a long video's stage tables are not all held until the run ends
    import pytest
    from dagster import DagsterInvariantViolationError, mem_io_manager

    lake = Lake(root=str(tmp_path / "lake"))
    res, columns, table, instance = _table_then_reader(lake)
    assert res.success and columns == ["video_id", "n"]  # the next step read it from the lake
    for name in ("table", "reader"):
        with pytest.raises(DagsterInvariantViolationError):
            res.asset_value(name)
    assert lake.read_parquet("reader/v-aaaaaaaa.parquet")["n"].to_list() == [10]
    # without the lake's IO manager the capture is Dagster's own, untouched
    kept = materialize([table], partition_key="v-aaaaaaaa", instance=instance, resources={"io_manager": mem_io_manager})
    assert kept.asset_value("table")["n"].to_list() == [10]
