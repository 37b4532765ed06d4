"""The video registry in the lake (`_registry/videos/<id>.json`): which source URI and content a video id
stands for. Registering hashes the file and derives its id (fm_assets.labels.ids); every stage looks its
source up here.

A video id stands for content. `_registry/uris/<hash of the uri>.json` remembers which id a source location
held last, with the file's signature when it was hashed (size and mtime, or the S3 ETag): a file listed again
with the same signature keeps its id without being read again (the quick check of rsync and make; a second
`fm run` over 10,000 labelled videos reads none of them, `fm run --force` hashes every file again, and
`ingest` checks the sha256 of what it decodes anyway). When the file at a known location changes, the new
content is registered under its own id and the old id is retired as `stale` (its `videos` row says so; its
other labels move to `_retired/<table>/` and leave the views, checks, splits and exports). A source that is
gone is `source_missing`: its labels stay, marked, and are left out of splits and exports. A file that cannot
be read is registered under an id of its location (`<stem>-<8 hex of the uri's hash>`) with the reason, so it
becomes that video's `error`, never a crash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from fm_assets.labels.ids import make_video_id, registry_key
from fm_resources.lake import Lake
from fm_resources.video import VideoStore, sha256_file

# the per-video tables whose labels a retired (stale) video takes out of the views, besides its `videos` row
LABEL_TABLES = ("raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs")
RETIRED_DIR = "_retired"
GONE_STATUSES = ("stale", "source_missing")  # videos whose labels are not part of the dataset


@dataclass(frozen=True)
class Registered:
    video_id: str
    uri: str
    sha256: str
    size_bytes: int
    new: bool  # first time this content was registered
    error: str | None = None  # the file could not be read: the id stands for its location
    replaced: str | None = None  # the id this location held before (now stale)


def uri_key(uri: str) -> str:
    return f"_registry/uris/{hashlib.sha256(uri.encode()).hexdigest()[:32]}.json"


def register_video(uri: str, store: VideoStore, lake: Lake, signature: str | None = None) -> Registered:
    """Hash the file, derive its id and record id -> uri in the lake's registry (the partition's source). A file
    that cannot be read gets an id of its location and the reason (see the module doc); a location whose content
    changed retires the id it held before. With the listing's `signature`, a file that its location's record
    says was hashed with this same signature is not read again (see the module doc)."""
    name = uri.rsplit("/", 1)[-1]
    previous = lake.read_json(uri_key(uri)) if lake.exists(uri_key(uri)) else None
    hashed = previous or {}  # what this location held when it was last hashed, and with which signature
    if signature is not None and hashed.get("signature") == signature and hashed.get("sha256"):
        digest, size, error = hashed["sha256"], int(hashed["size_bytes"]), None
    else:
        try:
            path = store.fetch(uri)
            digest = sha256_file(path)
            size = path.stat().st_size
            error = None
        except Exception as exc:  # unreadable (permissions), vanished, S3 object gone or unreachable
            digest = hashlib.sha256(f"fm-unreadable\x1f{uri}".encode()).hexdigest()
            size, error = 0, f"cannot read the source: {type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
    video_id = make_video_id(name, digest)
    key = registry_key(video_id)
    record = {"video_id": video_id, "uri": uri, "sha256": None if error else digest, "size_bytes": size}
    if error:
        record["error"] = error
    existing = lake.read_json(key) if lake.exists(key) else None
    if existing is None or existing.get("uri") != uri or existing.get("error") != record.get("error"):
        lake.write_json(key, {**record, "registered_at": datetime.now(UTC).isoformat()})
    replaced = None
    if error is None:
        if previous is not None and previous.get("video_id") not in (None, video_id):
            replaced = previous["video_id"]
            retire_video(lake, replaced, "stale", f"the source {uri} was replaced by new content, labelled as "
                                                  f"{video_id}; these labels are of the old content")
        if previous is None or replaced is not None or (signature is not None
                                                        and previous.get("signature") != signature):
            lake.write_json(uri_key(uri), {"uri": uri, "video_id": video_id, "sha256": digest, "size_bytes": size,
                                           "signature": signature})
    return Registered(video_id, uri, "" if error else digest, size, new=existing is None, error=error,
                      replaced=replaced)


def lookup_video(video_id: str, lake: Lake) -> dict:
    key = registry_key(video_id)
    if not lake.exists(key):
        raise KeyError(f"video {video_id!r} is not registered (no {key} in the lake); register it with `fm run`")
    return lake.read_json(key)


def retire_video(lake: Lake, video_id: str, status: str, reason: str, move: bool | None = None) -> bool:
    """Mark a labelled video `stale` or `source_missing`: its `videos` row gets the status and the reason; with
    `move` (default: for stale) its other labels move to `_retired/<table>/<id>.parquet` (kept, out of the
    views). Every write is atomic and the move copies before it deletes, so a crash leaves the labels in one
    place or both, never none. Returns whether the video had labels."""
    key = f"videos/{video_id}.parquet"
    if not lake.exists(key):
        return False
    videos = lake.read_parquet(key)
    if move if move is not None else status == "stale":
        for table in LABEL_TABLES:
            src = f"{table}/{video_id}.parquet"
            if lake.exists(src):
                lake.write_bytes(f"{RETIRED_DIR}/{src}", lake.read_bytes(src))
                lake.delete(src)
    if not (videos["status"] == status).all():
        lake.write_parquet(key, videos.with_columns(pl.lit(status).alias("status"), pl.lit(reason).alias("error")))
    return True


def missing_sources(lake: Lake, store: VideoStore) -> list[tuple[str, str]]:
    """(video_id, uri) of every registered, labelled, not yet retired video whose local source file is gone (S3
    sources are checked with one HEAD each)."""
    out = []
    for key in lake.list("_registry/videos"):
        if not key.endswith(".json"):
            continue
        rec = lake.read_json(key)
        vid, uri = rec.get("video_id"), rec.get("uri")
        if not vid or not uri or rec.get("error") or not lake.exists(f"videos/{vid}.parquet"):
            continue
        if not store.exists(uri):
            status = lake.read_parquet(f"videos/{vid}.parquet")["status"].to_list()
            if status and status[0] not in GONE_STATUSES:
                out.append((vid, uri))
    return out
