"""The new-videos sensor on a local folder and on an S3 prefix (moto server on 127.0.0.1)."""

import json

from dagster import DagsterInstance, build_sensor_context

from fm_assets.defs.automation import new_videos_sensor
from fm_resources.lake import Lake
from fm_resources.video import VideoStore
from tests import media


def evaluate(instance, store, lake, cursor=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources={"video_store": store, "lake": lake})
    result = new_videos_sensor(ctx)
    for req in result.dynamic_partitions_requests:  # what the daemon does with the request
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def test_local_folder(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    media.small_mp4(inbox / "a.mp4", n_frames=10)
    (inbox / "sub").mkdir()
    media.small_mp4(inbox / "sub" / "b.mov", n_frames=12)
    (inbox / "notes.txt").write_text("not a video")
    instance = DagsterInstance.ephemeral()
    store, lake = VideoStore(inputs=[str(inbox)]), Lake(root=str(tmp_path / "lake"))

    first = evaluate(instance, store, lake)
    keys = sorted(r.partition_key for r in first.run_requests)
    assert len(keys) == 2 and keys[0].startswith("a-") and keys[1].startswith("b-")
    assert sorted(instance.get_dynamic_partitions("videos")) == keys
    assert all(lake.exists(f"_registry/videos/{k}.json") for k in keys)

    again = evaluate(instance, store, lake, cursor=first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []

    media.small_mp4(inbox / "c.mp4", n_frames=14)
    (inbox / "copy").mkdir()
    (inbox / "copy" / "a.mp4").write_bytes((inbox / "a.mp4").read_bytes())  # same file elsewhere: same id
    third = evaluate(instance, store, lake, cursor=again.cursor)
    assert [r.partition_key[:2] for r in third.run_requests] == ["c-"]
    assert len(json.loads(third.cursor)) == 4


def test_s3_prefix(s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FM_HOME", str(tmp_path / "home"))
    s3_env.create_bucket(Bucket="raw")
    src = media.small_mp4(tmp_path / "clip.mp4", n_frames=10)
    s3_env.upload_file(str(src), "raw", "incoming/clip.mp4")
    s3_env.put_object(Bucket="raw", Key="incoming/readme.txt", Body=b"x")
    s3_env.put_object(Bucket="raw", Key="elsewhere/other.mp4", Body=b"x")
    instance = DagsterInstance.ephemeral()
    store, lake = VideoStore(inputs=["s3://raw/incoming"]), Lake(root=str(tmp_path / "lake"))
    result = evaluate(instance, store, lake)
    assert [r.partition_key[:5] for r in result.run_requests] == ["clip-"]
    reg = lake.read_json(f"_registry/videos/{result.run_requests[0].partition_key}.json")
    assert reg["uri"] == "s3://raw/incoming/clip.mp4"
    assert store.fetch(reg["uri"]).read_bytes() == src.read_bytes()  # downloaded into the cache
    assert evaluate(instance, store, lake, cursor=result.cursor).run_requests == []
