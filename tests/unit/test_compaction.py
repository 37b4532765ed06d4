"""Lake compaction (Warehouse.compact): whole-lake views read a few large parts and stay exactly the lake's current
per-video files, whatever was rewritten, added or deleted since. `fm compact`, `fm db` and the nightly `compact_lake`
job: tests/e2e/test_compaction.py."""


import duckdb
import polars as pl
import pytest

from fm_resources.lake import Lake
from fm_resources.warehouse import COMPACT_DIR, SOURCE, Warehouse, named_tables, temporary
from tests.helpers import compaction_lake as _lake
from tests.helpers import detection_rows as _video


def _truth(lake: Lake, table: str) -> list[tuple]:
    """The rows of the table's current per-video files, read without DuckDB views."""
    frames = [lake.read_parquet(k) for k in lake.list(table)]
    return sorted(pl.concat(frames, how="diagonal_relaxed").rows()) if frames else []


def _view(wh: Warehouse, table: str, columns: list[str]) -> list[tuple]:
    with wh.connect() as con:
        return sorted(con.sql(f"select {', '.join(columns)} from {table}").fetchall())


def test_compaction_keeps_every_row_in_few_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake(tmp_path / "lake")
    wh = Warehouse(lake=lake)
    before = _view(wh, "detections", ["video_id", "frame_idx", "score"])
    report = wh.compact()
    assert set(report) == {"detections", "qa_pairs"}
    assert {k: v for k, v in report["detections"].items() if k != "seconds"} == {
        "files": 6, "changed_files": 6, "parts": 1, "rows": 21, "compacted": True}
    manifest = lake.read_json(f"{COMPACT_DIR}/detections/manifest.json")
    assert manifest["sources"] == lake.stamps("detections") and len(manifest["parts"]) == 1
    assert _view(wh, "detections", ["video_id", "frame_idx", "score"]) == before == _truth(lake, "detections")
    with wh.connect() as con:  # the view reads the part, not the six files, and hides the bookkeeping column
        view = con.sql("select sql from duckdb_views() where view_name = 'detections'").fetchall()[0][0]
        assert "part-0000.parquet" in view and "v0.parquet" not in view
        assert SOURCE not in con.sql("select * from detections").columns
    # Nothing changed: a second compaction writes nothing.
    again = wh.compact()
    assert not again["detections"]["compacted"] and again["detections"]["changed_files"] == 0
    assert lake.read_json(f"{COMPACT_DIR}/detections/manifest.json") == manifest


def test_views_follow_files_rewritten_added_and_deleted_after_compaction(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake(tmp_path / "lake")
    wh = Warehouse(lake=lake)
    wh.compact()
    lake.write_parquet("detections/v1.parquet", _video("v1", 1).with_columns(pl.lit(0.9).alias("score")))  # relabelled
    lake.delete("detections/v2.parquet")  # removed
    lake.write_parquet("detections/v9.parquet", _video("v9", 2, note=["new", "new"]))  # new, with a new column
    cols = ["video_id", "frame_idx", "score", "note"]
    got = _view(wh, "detections", cols)
    assert got == _truth(lake, "detections")
    assert ("v1", 0, 0.9, None) in got and not [r for r in got if r[0] == "v2"] and ("v9", 1, 0.5, "new") in got
    assert len([r for r in got if r[0] == "v1"]) == 1  # the old v1 rows in the part are gone
    # The next compaction folds them in; the generation before it is kept for connections opened earlier.
    old = lake.read_json(f"{COMPACT_DIR}/detections/manifest.json")
    report = wh.compact(["detections"])
    assert set(report) == {"detections"} and report["detections"]["changed_files"] == 3
    assert _view(wh, "detections", cols) == got
    new = lake.read_json(f"{COMPACT_DIR}/detections/manifest.json")
    generations = {k.split("/")[2] for k in lake.list(f"{COMPACT_DIR}/detections") if k.count("/") == 3}
    assert generations == {old["generation"], new["generation"]}
    wh.compact(["detections"], min_changed=1)  # unchanged: nothing dropped
    lake.write_parquet("detections/v3.parquet", _video("v3", 1))
    wh.compact(["detections"])  # a third generation: the first one goes
    generations = {k.split("/")[2] for k in lake.list(f"{COMPACT_DIR}/detections") if k.count("/") == 3}
    assert old["generation"] not in generations and len(generations) == 2
    assert _view(wh, "detections", cols) == _truth(lake, "detections")


def test_min_changed_leaves_small_changes_to_the_views(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake(tmp_path / "lake", n_videos=4)
    wh = Warehouse(lake=lake)
    assert not wh.compact(min_changed=5)["detections"]["compacted"]  # 4 files, never compacted
    assert not lake.exists(f"{COMPACT_DIR}/detections/manifest.json")
    assert wh.compact(min_changed=4)["detections"]["compacted"]
    lake.write_parquet("detections/v0.parquet", _video("v0", 3))
    small = wh.compact(min_changed=2)["detections"]
    assert small["changed_files"] == 1 and not small["compacted"]
    assert _view(wh, "detections", ["video_id", "frame_idx", "score"]) == _truth(lake, "detections")
    with pytest.raises(ValueError, match="splits"):
        wh.compact(["splits"])  # one file already: not a per-video table


def test_per_partition_connections_ignore_the_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake(tmp_path / "lake")
    wh = Warehouse(lake=lake)
    wh.compact()
    lake.write_parquet("detections/v4.parquet", _video("v4", 2))
    with wh.connect(partitions=["v4"]) as con:
        assert con.sql("select video_id, count(*) from detections group by 1").fetchall() == [("v4", 2)]


def test_named_tables_and_only():
    assert named_tables("select * from qa_pairs q join splits s using (video_id) -- tracks") == {
        "qa_pairs", "splits", "tracks"}
    assert named_tables("select 1") == set()


def test_connect_only_opens_the_named_views(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    wh = Warehouse(lake=_lake(tmp_path / "lake"))
    with wh.connect(only={"qa_pairs"}) as con:
        assert {r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()} == {"qa_pairs"}
        with pytest.raises(duckdb.CatalogException):
            con.sql("select * from detections")


def test_compaction_on_s3(s3_env, tmp_path, monkeypatch):
    s3_env.create_bucket(Bucket="compact")
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake("s3://compact/lake")
    wh = Warehouse(lake=lake)
    report = wh.compact()
    assert report["detections"]["parts"] == 1 and report["detections"]["rows"] == 21
    keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="compact", Prefix="lake/_compact/")["Contents"]]
    assert "lake/_compact/detections/manifest.json" in keys and any(k.endswith("part-0000.parquet") for k in keys)
    assert lake.read_json(f"{COMPACT_DIR}/detections/manifest.json")["sources"] == lake.stamps("detections")
    lake.write_parquet("detections/v0.parquet", _video("v0", 4))  # a new ETag
    assert _view(wh, "detections", ["video_id", "frame_idx", "score"]) == _truth(lake, "detections")


def test_shared_connections_keep_their_views_and_read_files_anew(tmp_path, monkeypatch):
    """run_check's connections (shared=True) share one in-memory database per process: each sees only its own
    (TEMP) views, and a file rewritten between two of them is read anew, compacted or not."""
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    lake = _lake(tmp_path / "lake")
    wh = Warehouse(lake=lake)
    wh.compact(["detections"])
    with wh.connect(only={"qa_pairs"}, shared=True) as a, wh.connect(only={"detections"}, shared=True) as b:
        assert {r[0] for r in a.sql("select view_name from duckdb_views() where not internal").fetchall()} == {"qa_pairs"}
        assert b.sql("select count(*) from detections").fetchall() == [(21,)]
        with pytest.raises(duckdb.CatalogException):
            a.sql("select * from detections")
    with wh.connect(only={"detections"}) as private:  # a connection of its own, as before
        assert private.sql("select count(*) from detections").fetchall() == [(21,)]
    for score in (0.7, 0.8):  # same size, new contents
        lake.write_parquet("detections/v1.parquet", _video("v1", 2).with_columns(pl.lit(score).alias("score")))
        with wh.connect(only={"detections"}, shared=True) as con:
            assert con.sql("select score from detections where video_id = 'v1'").fetchall() == [(score,), (score,)]
    with pytest.raises(ValueError, match="CREATE"):
        temporary("-- create view x\nselect 1")
