"""`fm run`'s quick check: a run over a folder whose labels Dagster found up to date, repeated while nothing at all
has changed, answers without loading Dagster.

Whether a video is up to date is Dagster's call (fm_assets/cli/run.py `plan_videos`: code versions, data
provenance, config versions, the last run's outcome). Loading Dagster, the asset graph and the instance to ask it
costs 1.5-2 s on a laptop, which is the whole of a second `fm run` over an unchanged folder. So when a run ends
with Dagster's plan finding nothing left to do (checked again after the run, its result kept only if the
instance did not change while it was checked), `fm run` writes down that answer beside the instance, with
everything the answer depends on:

- the situation: a digest of fm's code (every file of fm_assets, fm_resources and the SQL folder), Dagster's
  version, the FM_* and DAGSTER_* environment, the command (paths, --until, the run config, -q) and the input files' listing (path,
  size, modification time: the same quick check the registry makes before hashing a file);
- the instance's state: the path, size, modification time and inode of every file of the instance directory
  (its SQLite run, event-log and schedule storages; not `storage/`, the compute logs), and of the lake's
  registry and `videos` table. Every run, event, partition, wipe or daemon heartbeat written to the instance
  changes it; reading does not.

The next `fm run` with the same situation over the same instance state prints what that run printed (the
videos' table and closing line) and exits; anything different (a file touched, a stage's code or config, a run
started from the UI, a sensor tick) goes through Dagster as before, and `--force` never takes this path. It
applies only where every one of those is local and cheap to read: local inputs and lake and the instance on
SQLite (not Postgres); and it answers only while fm.duckdb is there (a full run writes it again).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fm_resources.listing import local_listing
from fm_resources.settings import dagster_pg_url, environment_digest, fm_home, instance_dir, lake_root

MEMO = "up-to-date.json"  # in FM_HOME
FORMAT = 1
# top-level dagster.yaml keys that move the instance's history out of DAGSTER_HOME's SQLite files
STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")


@dataclass
class Memo:
    """What an up-to-date `fm run` printed: its videos in order and its summary table (Arrow IPC)."""
    videos: list[str]
    table: bytes | None

    def frame(self):
        """The summary table as a polars DataFrame (None when the run printed none)."""
        if self.table is None:
            return None
        import polars as pl

        return pl.read_ipc(io.BytesIO(self.table))


@dataclass
class QuickCheck:
    situation: str  # digest of code, environment, command and input listing, taken before the run
    home: Path  # FM_HOME (the memo, fm.duckdb)
    instance: Path  # the Dagster instance directory
    lake: Path  # the local label lake
    settled: str | None = field(default=None)  # the instance state at which Dagster's plan found nothing to do

    @classmethod
    def begin(cls, paths: list[str], code: str, until: str | None, run_config: dict | None,
              quiet: bool) -> QuickCheck | None:
        """The quick check of a run about to start, or None where it does not apply (an S3 input or lake, the
        instance on Postgres)."""
        if any(p.startswith("s3://") for p in [*paths, lake_root()]):
            return None
        try:
            if dagster_pg_url() is not None:
                return None
        except ValueError:  # a URL fm refuses: the run says why
            return None
        listings = []
        for p in paths:
            listing = local_listing(p)
            listings.append([os.path.abspath(p), [(f.uri, f.signature) for f in listing.files],
                             listing.errors, listing.skipped])
        situation = json.dumps({"format": FORMAT, "code": code, "dagster": _dagster_version(),
                                "environment": environment_digest(),
                                "until": until, "run_config": run_config, "quiet": quiet, "inputs": listings},
                               sort_keys=True, default=str)
        return cls(hashlib.sha256(situation.encode()).hexdigest(), fm_home(), instance_dir(), Path(lake_root()))

    def instance_state(self) -> str | None:
        """A digest of the path, size, modification time and inode of every file of the instance directory but
        its compute logs (`storage/`), and of the lake's registry and `videos` table (the ids and statuses a run
        reports); None when there is no instance yet or it keeps its history elsewhere."""
        try:
            if not _sqlite_instance(self.instance / "dagster.yaml"):
                return None
        except OSError:
            return None
        entries: list[tuple[str, int, int, int]] = []
        for root in (self.instance, self.lake / "_registry", self.lake / "videos"):
            for folder, dirs, names in os.walk(root):
                if folder == str(self.instance) and "storage" in dirs:
                    dirs.remove("storage")
                for name in names:
                    path = os.path.join(folder, name)
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:  # a SQLite journal that went while listing: the state is moving
                        entries.append((path, -1, 0, 0))
                        continue
                    entries.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
        return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()

    def settle(self, nothing_to_do, release=lambda: None) -> bool:
        """Ask `nothing_to_do()` (Dagster's plan, after the run) and keep the instance's state when it says so and
        the instance did not change while it was asked. `release()` closes what the process holds open on the
        instance's files (fm's event log keeps its SQLite connections), before each look at them: the state kept
        is the one the files keep once this process has ended."""
        release()
        before = self.instance_state()
        if before is not None and nothing_to_do():
            release()
            if self.instance_state() == before:
                self.settled = before
        return self.settled is not None

    def remember(self, videos: list[str], table) -> None:
        """Write down what this settled run printed: its videos and its summary table (a polars DataFrame or None),
        atomically; nothing when it did not settle."""
        if self.settled is None:
            return
        data = None
        if table is not None:
            buf = io.BytesIO()
            table.write_ipc(buf)
            data = base64.b64encode(buf.getvalue()).decode()
        memo = {"format": FORMAT, "situation": self.situation, "instance": self.settled, "videos": videos,
                "table": data}
        path = self.home / MEMO
        tmp = path.with_name(f".{MEMO}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)

    def recall(self) -> Memo | None:
        """What the last settled run printed, when its situation is this run's and the instance has not changed
        since; None otherwise (also for a memo that cannot be read)."""
        if not (self.home / "fm.duckdb").is_file():  # a full run writes it again
            return None
        try:
            memo = json.loads((self.home / MEMO).read_text())
            if not isinstance(memo, dict) or memo.get("format") != FORMAT or memo.get("situation") != self.situation:
                return None
            if memo.get("instance") is None or memo.get("instance") != self.instance_state():
                return None
            table = memo.get("table")
            return Memo(list(memo["videos"]), None if table is None else base64.b64decode(table))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _dagster_version() -> str | None:
    """The installed Dagster's version file, read without importing Dagster (an upgrade may need its storage
    migrated: Dagster says so, the quick check must not answer for it)."""
    import importlib.util

    spec = importlib.util.find_spec("dagster")
    if spec is None or spec.origin is None:
        return None
    try:
        return Path(spec.origin).with_name("version.py").read_text()
    except OSError:
        return None


def _sqlite_instance(dagster_yaml: Path) -> bool:
    """The instance keeps its history in SQLite files under its directory: dagster.yaml exists and names no
    storage of its own (Postgres after `fm instance migrate`)."""
    for line in dagster_yaml.read_text().splitlines():
        if line[:1].isalpha() and line.split(":", 1)[0].strip() in STORAGE_KEYS:
            return False
    return True
