"""Video partitions: one dynamic partition per source video, keyed by a stable, readable, safe video id."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath

import polars as pl
from dagster import BackfillPolicy, BetaWarning, DynamicPartitionsDefinition

from fm_assets.schemas import frame
from fm_resources.lake import Lake
from fm_resources.settings import backfill_batch
from fm_resources.video import VideoStore, sha256_file

videos_partitions = DynamicPartitionsDefinition(name="videos")

# Backfills run batches of videos per run (one run start per batch, not per video); every per-video asset
# computes each partition of its batch separately (for_each_video) and the lake keeps one file per video.
# `backfill_policy` on @asset is marked beta in Dagster 1.13; we depend on it knowingly (pinned <1.14).
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=backfill_batch())

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}-[0-9a-f]{8}$")


def slugify(stem: str, max_len: int = 40) -> str:
    """Lowercase ASCII letters, digits, '-' and '_' only; never empty, never a path component like '..'."""
    text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-_")
    return text[:max_len].rstrip("-_") or "video"


def make_video_id(filename: str, sha256: str) -> str:
    """`<sanitized file stem>-<first 8 hex digits of the content sha256>`: the same bytes get the same id
    wherever they are stored; two files with the same name but different content get different ids."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{slugify(PurePosixPath(filename.replace(chr(92), '/')).stem)}-{sha256[:8]}"


def is_video_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def seed_for(*parts: object) -> int:
    """A 63-bit seed from any values (video id, question text, ...): the same input, the same randomness."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Registered:
    video_id: str
    uri: str
    sha256: str
    size_bytes: int
    new: bool  # first time this content was registered


def registry_key(video_id: str) -> str:
    return f"_registry/videos/{video_id}.json"


def register_video(uri: str, store: VideoStore, lake: Lake) -> Registered:
    """Hash the file, derive its id and record id -> uri in the lake's registry (the partition's source)."""
    path = store.fetch(uri)
    digest = sha256_file(path)
    video_id = make_video_id(uri.rsplit("/", 1)[-1], digest)
    key = registry_key(video_id)
    record = {"video_id": video_id, "uri": uri, "sha256": digest, "size_bytes": path.stat().st_size}
    existing = lake.read_json(key) if lake.exists(key) else None
    if existing is None or existing.get("uri") != uri:
        lake.write_json(key, {**record, "registered_at": datetime.now(timezone.utc).isoformat()})
    return Registered(video_id, uri, digest, record["size_bytes"], new=existing is None)


def lookup_video(video_id: str, lake: Lake) -> dict:
    key = registry_key(video_id)
    if not lake.exists(key):
        raise KeyError(f"video {video_id!r} is not registered (no {key} in the lake); register it with `fm run`")
    return lake.read_json(key)


def for_each_video(context, compute, schema: dict, asset_key: str | None = None):
    """Run `compute(video_id) -> (rows DataFrame, metadata)` for each video partition of this run: one, or a
    batch when a backfill runs several partitions per run (BackfillPolicy.multi_run). Each partition's
    materialization gets its own metadata; the rows of all of them are returned (the IO manager writes one
    file per video)."""
    parts = []
    for video_id in context.partition_keys:
        df, metadata = compute(video_id)
        context.add_asset_metadata(metadata, partition_key=video_id, **({"asset_key": asset_key} if asset_key else {}))
        parts.append(df)
    return pl.concat(parts, how="vertical") if parts else frame([], schema)


def of_video(df, video_id: str):
    """The rows of one video from an input that may hold a batch of videos."""
    return df.filter(pl.col("video_id") == video_id) if "video_id" in df.columns else df
