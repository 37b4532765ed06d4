"""Identifiers and seeds: a video's id from its name and content, and the seeds that make every random choice
reproducible from the video id."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

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


def registry_key(video_id: str) -> str:
    return f"_registry/videos/{video_id}.json"
