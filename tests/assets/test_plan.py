"""`fm run`'s plan reads each asset's latest materialization per video from Dagster's event log and keeps only
what freshness needs (fm_assets/cli/run.py: latest_materializations)."""

from dagster import DagsterInstance, DynamicPartitionsDefinition, MaterializeResult, MetadataValue, asset, materialize

from fm_assets.cli.run import Latest, latest_materializations

parts = DynamicPartitionsDefinition(name="plan_test_videos")


@asset(partitions_def=parts, code_version="v7", config_schema={"failed": int, "config_version": str})
def labelled(context) -> MaterializeResult:
    picture = MetadataValue.md("![x](data:image/png;base64," + "A" * 200_000 + ")")
    return MaterializeResult(metadata={"config_version": context.op_config["config_version"],
                                       "failed": context.op_config["failed"], "picture": picture})


def run(instance, partition: str, failed: int, version: str) -> None:
    config = {"ops": {"labelled": {"config": {"failed": failed, "config_version": version}}}}
    assert materialize([labelled], instance=instance, partition_key=partition, run_config=config).success


def test_latest_materialization_per_partition_keeps_provenance_config_and_failures_only():
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("plan_test_videos", ["a", "b", "c"])
        run(instance, "a", 0, "cfg-old")
        run(instance, "a", 0, "cfg-new")  # the later one counts
        run(instance, "b", 2, "cfg-new")
        run(instance, "c", 0, "cfg-new")  # not asked for
        got = latest_materializations(instance, labelled.key, ["a", "b", "missing"])
        assert set(got) == {"a", "b"}
        assert all(isinstance(v, Latest) for v in got.values())
        assert (got["a"].config_version, got["a"].failed) == ("cfg-new", False)
        assert (got["b"].config_version, got["b"].failed) == ("cfg-new", True)
        assert got["a"].provenance.code_version == "v7"
        records = instance.fetch_materializations(labelled.key, limit=10).records
        latest_a = max(r.storage_id for r in records if r.partition_key == "a")
        assert got["a"].storage_id == latest_a and got["b"].storage_id > got["a"].storage_id
        assert not any(isinstance(field, (dict, MetadataValue)) for v in got.values() for field in v)
