"""MOTChallenge: one text file per video (<video_id>.txt), frames 1-based over the source video's frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from fm_assets.export.common import (
    write_manifest,
)
from fm_assets.labels.tracking import mot_text
from fm_resources.lake import Lake


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
                      "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return write_manifest(out, "mot", files, interpolated=interpolate)
