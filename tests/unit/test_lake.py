"""The label lake on local disk and on a real S3-protocol server (moto, 127.0.0.1). Its Dagster IO manager:
tests/assets/test_lake.py."""

import os

import polars as pl
import pytest

from fm_resources.lake import Lake
from fm_resources.warehouse import Warehouse


def test_local_roundtrip_and_listing(tmp_path):
    lake = Lake(root=str(tmp_path))
    df = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    lake.write_parquet("t/v1.parquet", df)
    lake.write_json("_registry/videos/v1.json", {"k": 1})
    assert lake.read_parquet("t/v1.parquet").equals(df)
    assert lake.list("t") == ["t/v1.parquet"]
    assert lake.read_json("_registry/videos/v1.json") == {"k": 1}
    assert lake.exists("t/v1.parquet") and not lake.exists("t/v2.parquet")


@pytest.mark.parametrize("key", ["../x.parquet", "/../../etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    with pytest.raises(ValueError):
        Lake(root=str(tmp_path)).write_bytes(key, b"x")


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    lake = Lake(root=str(tmp_path))
    lake.write_bytes("t/a.bin", b"old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        lake.write_bytes("t/a.bin", b"new")
    monkeypatch.undo()
    assert lake.read_bytes("t/a.bin") == b"old"
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["a.bin"]


def test_a_failed_sink_of_a_lazy_table_leaves_the_old_file_and_no_temp(tmp_path):
    """A LazyFrame is streamed into a temporary file and renamed over the table: a query that fails part way (a
    spilled file gone) leaves the table as it was."""
    lake = Lake(root=str(tmp_path / "lake"))
    lake.write_parquet("t/a.parquet", pl.DataFrame({"n": [1]}))
    good = tmp_path / "part-0.parquet"
    pl.DataFrame({"n": [2, 3]}).write_parquet(good)
    lake.write_parquet("t/a.parquet", pl.scan_parquet(good))
    assert lake.read_parquet("t/a.parquet")["n"].to_list() == [2, 3]
    with pytest.raises(FileNotFoundError):
        lake.write_parquet("t/a.parquet", pl.scan_parquet([good, tmp_path / "part-1.parquet"]))
    assert lake.read_parquet("t/a.parquet")["n"].to_list() == [2, 3]
    assert sorted(p.name for p in (tmp_path / "lake" / "t").iterdir()) == ["a.parquet"]


def test_s3_lake_roundtrip_list_mirror_and_views(s3_env, tmp_path, monkeypatch):
    s3_env.create_bucket(Bucket="labels")
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = Lake(root="s3://labels/prefix/lake")
    df = pl.DataFrame({"video_id": ["v1", "v1"], "clip_id": ["v1-000", "v1-001"], "kept": [True, False]})
    lake.write_parquet("raw_clips/v1.parquet", df)
    lake.write_parquet("raw_clips/v2.parquet", df.with_columns(pl.lit("v2").alias("video_id")))
    assert lake.list("raw_clips") == ["raw_clips/v1.parquet", "raw_clips/v2.parquet"]
    assert lake.read_parquet("raw_clips/v1.parquet").equals(df)
    keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="labels")["Contents"]]
    assert "prefix/lake/raw_clips/v1.parquet" in keys
    wh = Warehouse(lake=lake)
    assert wh.query("select video_id, count(*) n from raw_clips group by 1 order by 1").to_dicts() == [
        {"video_id": "v1", "n": 2}, {"video_id": "v2", "n": 2}]
    lake.delete("raw_clips/v2.parquet")  # the mirror follows deletions
    assert wh.query("select count(distinct video_id) n from raw_clips").item() == 1
    assert lake.has_files("raw_clips") and not lake.has_files("tracks") and not lake.has_files("raw_clip")
    with wh.connect(partitions=["v1"]) as con:  # a per-partition check sees only its videos' files
        assert con.sql("select distinct video_id from raw_clips").fetchall() == [("v1",)]


def test_partition_views_read_only_those_videos(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    for v in ("a", "b", "c"):
        lake.write_parquet(f"qa_pairs/{v}.parquet", pl.DataFrame({"video_id": [v], "n": [1]}))
    lake.write_parquet("stage_runs/a__qa_pairs.parquet", pl.DataFrame({"asset": ["qa_pairs"]}))
    assert lake.has_files("qa_pairs") and not lake.has_files("tracks")
    wh = Warehouse(lake=lake)
    with wh.connect(partitions=["a", "c", "missing"]) as con:
        assert sorted(r[0] for r in con.sql("select video_id from qa_pairs").fetchall()) == ["a", "c"]
        views = {r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()}
        assert views == {"qa_pairs"}  # no lake-wide logs (stage_runs, llm_calls) in a per-partition connection
    with wh.connect() as con:
        assert con.sql("select count(*) from qa_pairs").fetchall() == [(3,)]
        assert {"qa_pairs", "stage_runs", "llm_calls"} <= {
            r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()}


def test_s3_per_partition_connections_fetch_only_their_videos(s3_env, tmp_path, monkeypatch):
    s3_env.create_bucket(Bucket="perpart")
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = Lake(root="s3://perpart/lake")
    for v in ("v1", "v2", "v3"):
        lake.write_parquet(f"qa_pairs/{v}.parquet", pl.DataFrame({"video_id": [v], "n": [1]}))
    wh = Warehouse(lake=lake)
    mirror = tmp_path / "home" / "cache" / "lake-mirror"
    with wh.connect(partitions=["v1", "v9"]) as con:
        assert con.sql("select video_id from qa_pairs").fetchall() == [("v1",)]
    assert sorted(p.name for p in (mirror / "qa_pairs").iterdir()) == ["v1.parquet"]  # not the whole table
    lake.write_parquet("qa_pairs/v1.parquet", pl.DataFrame({"video_id": ["v1", "v1"], "n": [2, 3]}))  # relabelled
    with wh.connect(partitions=["v1"]) as con:
        assert con.sql("select sum(n) from qa_pairs").fetchall() == [(5,)]
    lake.delete("qa_pairs/v1.parquet")
    with wh.connect(partitions=["v1"]) as con:
        assert con.sql("select count(*) from duckdb_views() where view_name = 'qa_pairs'").fetchall() == [(0,)]
    assert not (mirror / "qa_pairs" / "v1.parquet").exists()
