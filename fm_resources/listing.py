"""Which files of a local folder are videos to label: the listing `fm run`, the sensor and `fm run`'s quick check
(fm_resources/quickcheck.py) share. Only the standard library: listing a folder needs no decoder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif")


@dataclass
class Listing:
    files: list[InputFile]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, why it could not be listed or read)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why it was passed over)


@dataclass(frozen=True)
class InputFile:
    uri: str  # absolute local path or s3://bucket/key
    size: int
    signature: str  # changes when the file changes (mtime or ETag)


def local_listing(location: str) -> Listing:
    """The video files at a local path: the file itself, or every video below a folder (recursively, symlinked
    folders not entered). A file keeps the name it is listed under (a symlink is not resolved to its target's
    name), so `fm run LINK` and the sensor give it the same id. Hidden files (names starting with '.') inside
    folders are passed over; a file named directly is taken whatever its name. Its signature is its size and
    modification time (rsync's quick check)."""
    root = Path(os.path.abspath(Path(location).expanduser()))
    listing = Listing([])
    if root.is_file():
        candidates = [root]
    elif root.is_dir():
        candidates = []
        for folder, dirs, names in os.walk(root, onerror=lambda e: listing.errors.append(
                (str(e.filename), f"cannot list: {e.strerror or e}"))):
            dirs.sort()
            for name in sorted(names):
                p = Path(folder) / name
                if name.startswith("."):
                    if p.suffix.lower() in VIDEO_EXTENSIONS:
                        listing.skipped.append((str(p), "hidden file (name starts with '.')"))
                elif p.is_file():
                    candidates.append(p)
    else:
        return Listing([], [(str(root), "no such file or folder")])
    for p in candidates:
        if p.suffix.lower() not in VIDEO_EXTENSIONS:
            if p == root:
                listing.skipped.append((str(p), f"not a video file by its extension (known: "
                                                f"{' '.join(VIDEO_EXTENSIONS)})"))
            continue
        try:
            st = p.stat()
        except OSError as exc:  # vanished while listing, a dangling symlink
            listing.errors.append((str(p), f"cannot stat: {exc.strerror or exc}"))
            continue
        listing.files.append(InputFile(str(p), st.st_size, f"{st.st_size}:{st.st_mtime_ns}"))
    return listing
