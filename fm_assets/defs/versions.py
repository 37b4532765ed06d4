"""Code versions of the assets (Dagster's `code_version`): a digest of the source files that decide an asset's
rows, so that Dagster's staleness (CachingStaleStatusResolver) says which labels a new version of the code would
change. `fm run` skips a video whose assets are all fresh under the current code and config
(fm_assets/cli/run.py: `plan_videos`).

Every asset's digest covers the pure labeling core (fm_assets/labels, its prompts included), the wiring they
share (stage config classes, partitions, the lake's IO) and the files of its own stage: a fix in the tracker
reruns `tracks` and what follows it (their inputs' data versions change), never `raw_clips` or `detections`.
A change to the CLI, the checks, the deployment code or the settings reruns nothing.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # fm_assets/
RESOURCES = PACKAGE.parent / "fm_resources"

COMMON = (PACKAGE / "labels", PACKAGE / "defs" / "config.py", PACKAGE / "defs" / "partitions.py",
          RESOURCES / "lake.py")
STAGE_FILES: dict[str, tuple[Path, ...]] = {
    "ingest": (PACKAGE / "defs" / "ingest.py", RESOURCES / "video.py", RESOURCES / "registry.py"),
    "detections": (PACKAGE / "defs" / "ingest.py", PACKAGE / "defs" / "perception.py", RESOURCES / "detection",
                   RESOURCES / "video.py"),
    "tracks": (PACKAGE / "defs" / "perception.py", RESOURCES / "trackers.py", RESOURCES / "video.py"),
    "trajectories": (PACKAGE / "defs" / "motion.py",),
    "captions": (PACKAGE / "defs" / "language.py", RESOURCES / "llm.py"),
    "qa_pairs": (PACKAGE / "defs" / "language.py", RESOURCES / "llm.py"),
    "splits": (PACKAGE / "defs" / "dataset.py",),
}
# the multi-asset `ingest` makes these two (and `detections`, whose code is its own stage's)
ASSET_STAGE = {"videos": "ingest", "raw_clips": "ingest"}


def _files(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += [f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"]
        elif p.exists():
            out.append(p)
    return sorted(set(out))


@functools.cache
def code_version(asset: str) -> str:
    """The code version of an asset: 16 hex digits of the sha256 of its files' paths and contents."""
    stage = ASSET_STAGE.get(asset, asset)
    if stage not in STAGE_FILES:
        raise KeyError(f"no code version for asset {asset!r} (fm_assets/defs/versions.py lists the stages)")
    digest = hashlib.sha256(stage.encode())
    for f in _files(COMMON + STAGE_FILES[stage]):
        digest.update(str(f.relative_to(PACKAGE.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def source_digest() -> str:
    """A sha256 of all of fm's code: every file of fm_assets, fm_resources and the SQL folder (the checks and views
    included, FM_SQL_DIR's when set). A change anywhere changes it: `fm run`'s quick check compares it."""
    from fm_resources.settings import sql_dir

    digest = hashlib.sha256()
    for root in (PACKAGE, RESOURCES, sql_dir()):
        for f in _files((root,)):
            digest.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()
