"""The video registry's quick check: a file listed again with the signature (size + mtime, or ETag) it was
hashed with keeps its id without being read; a changed signature, new content or `rehash` reads it again."""

import os

import pytest

from fm_assets.defs.automation import register_new
from fm_resources import registry
from fm_resources.lake import Lake
from fm_resources.video import VideoStore
from tests import media


@pytest.fixture
def hashed(monkeypatch):
    """The paths registry.sha256_file was called on, in order."""
    calls: list[str] = []
    real = registry.sha256_file

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(registry, "sha256_file", counting)
    return calls


def listed(store: VideoStore, path) -> str:
    return next(f.signature for f in store.listing(str(path)).files)


def test_an_unchanged_file_is_not_read_again(tmp_path, hashed):
    clip = media.small_mp4(tmp_path / "in" / "clip.mp4", n_frames=10)
    store, lake = VideoStore(), Lake(root=str(tmp_path / "lake"))
    first = registry.register_video(str(clip), store, lake, listed(store, clip))
    assert first.new and hashed == [str(clip)]

    again = registry.register_video(str(clip), store, lake, listed(store, clip))
    assert hashed == [str(clip)]  # not read
    assert (again.video_id, again.sha256, again.size_bytes, again.new) == (first.video_id, first.sha256,
                                                                           first.size_bytes, False)

    os.utime(clip, ns=(os.stat(clip).st_atime_ns, os.stat(clip).st_mtime_ns + 1_000_000_000))  # touched
    touched = registry.register_video(str(clip), store, lake, listed(store, clip))
    assert len(hashed) == 2 and touched.video_id == first.video_id and touched.replaced is None
    registry.register_video(str(clip), store, lake, listed(store, clip))
    assert len(hashed) == 2  # the new signature was recorded

    registry.register_video(str(clip), store, lake)  # no signature (fm run --force): always hashed
    assert len(hashed) == 3


def test_new_content_of_the_same_size_at_the_same_path_is_a_new_video(tmp_path, hashed):
    clip = media.small_mp4(tmp_path / "in" / "clip.mp4", n_frames=10)
    store, lake = VideoStore(), Lake(root=str(tmp_path / "lake"))
    old = registry.register_video(str(clip), store, lake, listed(store, clip))
    data = bytearray(clip.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    stamp = os.stat(clip).st_mtime_ns
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))
    new = registry.register_video(str(clip), store, lake, listed(store, clip))
    assert new.size_bytes == old.size_bytes and new.video_id != old.video_id and new.replaced == old.video_id
    assert lake.read_json(registry.uri_key(str(clip)))["video_id"] == new.video_id


def test_register_new_reads_only_what_changed_unless_rehash(tmp_path, hashed):
    inbox = tmp_path / "in"
    a = media.small_mp4(inbox / "a.mp4", n_frames=10)
    b = media.small_mp4(inbox / "b.mp4", n_frames=12)
    store, lake = VideoStore(inputs=[str(inbox)]), Lake(root=str(tmp_path / "lake"))
    first, _ = register_new(store, lake, {})
    assert sorted(hashed) == sorted([str(a), str(b)])
    hashed.clear()

    second, _ = register_new(store, lake, {})  # `fm run` passes no cursor: every file is listed again
    assert hashed == [] and [r.video_id for r in second] == [r.video_id for r in first]
    assert not any(r.new for r in second)

    media.small_mp4(b, n_frames=14)  # b rewritten
    third, _ = register_new(store, lake, {})
    assert hashed == [str(b)] and third[0].video_id == first[0].video_id and third[1].replaced == first[1].video_id
    hashed.clear()

    register_new(store, lake, {}, rehash=True)
    assert sorted(hashed) == sorted([str(a), str(b)])
