"""The Dagster instance `fm` and its tools run against ($FM_HOME/dagster unless DAGSTER_HOME is set), with the
concurrency pools set up on first use. Any number of `fm` processes may start on one FM_HOME at once: the
instance's first set-up (its SQLite storages and their schema migrations) and the registration of video
partitions happen under a file lock in the instance folder, one process at a time."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from fm_resources.settings import pool_limits, use_dagster_home

LOCK_NAME = ".fm-instance.lock"


@contextlib.contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on the instance folder, held for the block; other processes wait."""
    with open(home / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sqlite_synchronous_normal(dbapi_connection, connection_record) -> None:
    """Dagster's SQLite storages run in WAL mode; there, synchronous=NORMAL keeps every committed event across a
    crash of any process (only a power loss or an OS crash can lose the last ones), and spares the fsync that
    FULL does on each of a run's ~100 commits (a sixth of a small video's run, BENCHMARKS.md)."""
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def sqlite_synchronous_normal() -> None:
    """Every SQLite connection SQLAlchemy opens in this process from now on gets _sqlite_synchronous_normal."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_synchronous_normal):
        event.listen(Engine, "connect", _sqlite_synchronous_normal)


def dagster_instance():
    """fm's Dagster instance, pointed at by DAGSTER_HOME for this process, its storages created and its pools set
    under the instance lock (two processes creating one SQLite history at once break its schema for good)."""
    from dagster import DagsterInstance

    sqlite_synchronous_normal()
    home = use_dagster_home()
    with instance_lock(home):
        instance = DagsterInstance.get()
        keep_sqlite_engines(instance)
        check_storage(instance)
        instance.get_runs_count()  # create every storage now, inside the lock, not lazily outside it
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
        set_pool_limits(instance)
    return instance


def keep_sqlite_engines(instance) -> None:
    """An instance on SQLite keeps its event log's SQLAlchemy engines for this process instead of building one per
    statement (fm_resources/sqlite_events.py)."""
    from fm_resources.sqlite_events import EngineKeepingSqliteEventLogStorage

    EngineKeepingSqliteEventLogStorage.adopt(instance.event_log_storage)


def release_connections(instance) -> None:
    """Close the SQLite connections fm's event log keeps open (nothing for another storage): the instance's files
    are then what they will be when this process has ended."""
    release = getattr(instance.event_log_storage, "release", None)
    if release is not None:
        release()


class InstanceStorageError(RuntimeError):
    """The instance's storage is not the one the environment asks for."""


def check_storage(instance) -> None:
    """FM_DAGSTER_PG_URL set but the instance in DAGSTER_HOME keeps its history in SQLite (its dagster.yaml was
    written before): refuse, rather than silently write to the old history; `fm instance migrate` moves it."""
    from fm_resources.settings import dagster_pg_url

    if dagster_pg_url() is None:
        return
    from fm_resources.postgres import is_postgres

    if not is_postgres(instance):
        raise InstanceStorageError(
            f"FM_DAGSTER_PG_URL is set but the instance in {instance.root_directory} keeps its history in SQLite "
            "(its dagster.yaml predates the variable): run `fm instance migrate` to copy the history to Postgres and "
            "switch the instance over, or unset FM_DAGSTER_PG_URL")


def add_video_partitions(instance, video_ids: list[str]) -> list[str]:
    """Add the video partitions the instance does not have yet (under the instance lock, so two processes adding
    the same video is not an error); returns the ones this call added."""
    with instance_lock(Path(instance.root_directory)):
        known = set(instance.get_dynamic_partitions("videos"))  # one query, not one per video
        missing = [v for v in dict.fromkeys(video_ids) if v not in known]
        if missing:
            instance.add_dynamic_partitions("videos", missing)
    return missing


def set_pool_limits(instance) -> dict[str, int]:
    """Concurrency pools: `gpu` (the detector; FM_GPU_SLOTS, default 1) and `llm` (captions and questions;
    FM_LLM_SLOTS, default 4) get their limits the first time an instance is used; later changes made in the UI
    or with `dagster instance concurrency set` are kept."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    configured = set(storage.get_concurrency_keys())
    for pool, limit in pool_limits().items():
        if pool not in configured:
            storage.set_concurrency_slots(pool, limit)
    return {p: storage.get_concurrency_info(p).slot_count for p in pool_limits()}
