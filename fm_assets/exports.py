"""Exports of the label lake to other tools' formats. Each export writes its files atomically and a
manifest.json with counts and sha256 sums."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from fm_assets.tracking import mot_text
from fm_resources.lake import Lake


def write_manifest(out: Path, fmt: str, files: list[dict], **extra) -> dict:
    manifest = {"format": fmt, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "n_files": len(files), "files": files, **extra}
    Lake(root=str(out)).write_json("manifest.json", manifest)
    return manifest


def export_mot(tracks: pl.DataFrame, video_ids: list[str], out: Path, interpolate: bool = True) -> dict:
    """One MOTChallenge text file per video (<video_id>.txt), frames 1-based over the source video's frames."""
    out.mkdir(parents=True, exist_ok=True)
    lake = Lake(root=str(out))
    files = []
    for vid in sorted(video_ids):
        text = mot_text(tracks.filter(pl.col("video_id") == vid), interpolate=interpolate)
        data = text.encode()
        lake.write_bytes(f"{vid}.txt", data)
        files.append({"path": f"{vid}.txt", "video_id": vid, "lines": text.count("\n"),
                      "ids": len({line.split(",")[1] for line in text.splitlines()}),
                      "sha256": hashlib.sha256(data).hexdigest()})
    return write_manifest(out, "mot", files, interpolated=interpolate)


def manifest_summary(manifest: dict) -> str:
    return json.dumps({k: v for k, v in manifest.items() if k != "files"})
