import hashlib

import pytest

from fm_assets.labels.ids import is_video_id, make_video_id, seed_for, slugify
from fm_resources.lake import Lake
from fm_resources.registry import register_video
from fm_resources.video import VideoStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_video_id_is_stem_plus_content_hash():
    digest = sha(b"abc")
    assert make_video_id("/data/My Clip (1).MP4", digest) == f"my-clip-1-{digest[:8]}"
    assert is_video_id(make_video_id("x.mp4", digest))


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.mp4", "..\\..\\evil.mp4", "....mp4", "/.mp4", "ünïcödé 東京.mp4", "a" * 300 + ".mp4", "a,b[c]*.mp4"]
)
def test_video_id_cannot_escape_or_break_partitions(name):
    vid = make_video_id(name, sha(name.encode()))
    assert is_video_id(vid), vid
    assert "/" not in vid and "\\" not in vid and ".." not in vid and "," not in vid
    assert len(vid) <= 57


def test_slugify_never_empty():
    assert slugify("...") == "video"
    assert slugify("---__") == "video"


def test_bad_digest_rejected():
    with pytest.raises(ValueError):
        make_video_id("a.mp4", "not-a-digest")


def test_same_content_same_id_wherever_it_is(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    store = VideoStore()
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "clip.mp4").write_bytes(b"same bytes")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "clip.mp4").write_bytes(b"other bytes")
    r1 = register_video(str(tmp_path / "a" / "clip.mp4"), store, lake)
    r2 = register_video(str(tmp_path / "b" / "clip.mp4"), store, lake)
    r3 = register_video(str(tmp_path / "c" / "clip.mp4"), store, lake)
    assert r1.video_id == r2.video_id != r3.video_id
    assert r1.new and not r2.new and r3.new
    assert lake.read_json(f"_registry/videos/{r3.video_id}.json")["sha256"] == sha(b"other bytes")


def test_seed_for_is_stable_and_sensitive():
    assert seed_for("vid-1", "clips") == seed_for("vid-1", "clips")
    assert seed_for("vid-1", "clips") != seed_for("vid-2", "clips")
    assert 0 <= seed_for("x") < 2**63
