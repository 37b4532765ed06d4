"""The video registry in the lake (`_registry/videos/<id>.json`): which source URI and content a video id
stands for. Registering hashes the file and derives its id (fm_assets.labels.ids); every stage looks its
source up here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fm_assets.labels.ids import make_video_id, registry_key
from fm_resources.lake import Lake
from fm_resources.video import VideoStore, sha256_file


@dataclass(frozen=True)
class Registered:
    video_id: str
    uri: str
    sha256: str
    size_bytes: int
    new: bool  # first time this content was registered


def register_video(uri: str, store: VideoStore, lake: Lake) -> Registered:
    """Hash the file, derive its id and record id -> uri in the lake's registry (the partition's source)."""
    path = store.fetch(uri)
    digest = sha256_file(path)
    video_id = make_video_id(uri.rsplit("/", 1)[-1], digest)
    key = registry_key(video_id)
    record = {"video_id": video_id, "uri": uri, "sha256": digest, "size_bytes": path.stat().st_size}
    existing = lake.read_json(key) if lake.exists(key) else None
    if existing is None or existing.get("uri") != uri:
        lake.write_json(key, {**record, "registered_at": datetime.now(UTC).isoformat()})
    return Registered(video_id, uri, digest, record["size_bytes"], new=existing is None)


def lookup_video(video_id: str, lake: Lake) -> dict:
    key = registry_key(video_id)
    if not lake.exists(key):
        raise KeyError(f"video {video_id!r} is not registered (no {key} in the lake); register it with `fm run`")
    return lake.read_json(key)
