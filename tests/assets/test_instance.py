"""fm's Dagster instance: created under the instance lock, and adding video partitions that exist is not an error."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

from fm_resources.instance import LOCK_NAME, add_video_partitions, dagster_instance, instance_lock


def test_adding_existing_partitions_is_not_an_error(fm_home):
    instance = dagster_instance()
    assert add_video_partitions(instance, ["a-00000001", "b-00000002", "a-00000001"]) == ["a-00000001", "b-00000002"]
    assert add_video_partitions(instance, ["b-00000002", "c-00000003"]) == ["c-00000003"]
    assert sorted(instance.get_dynamic_partitions("videos")) == ["a-00000001", "b-00000002", "c-00000003"]


def test_the_instance_lock_is_exclusive(fm_home):
    home = dagster_instance().root_directory
    order = []

    def other():
        with instance_lock(Path(home)):
            order.append("other")

    with instance_lock(Path(home)):
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.3)
        order.append("holder")  # the other thread is still waiting for the lock
    t.join(timeout=10)
    assert order == ["holder", "other"]
    with open(f"{home}/{LOCK_NAME}") as fh:  # released: a non-blocking lock succeeds
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_sqlite_history_commits_without_an_fsync_each_time_and_keeps_what_it_wrote(fm_home):
    """WAL with synchronous=NORMAL on every storage connection of fm's instance; events written through it are
    there for a new process (a new instance object reading the same files)."""
    import subprocess
    import sys

    from sqlalchemy import text

    instance = dagster_instance()
    with instance.run_storage.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL (FULL is 2)
    with instance.event_log_storage.index_connection() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
    add_video_partitions(instance, ["d-00000004"])
    out = subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                          "print(DagsterInstance.get().get_dynamic_partitions('videos'))"],
                         capture_output=True, text=True, timeout=120)
    assert "d-00000004" in out.stdout, out.stderr[-2000:]


def test_the_event_log_keeps_one_engine_per_shard_and_a_new_process_reads_every_event(fm_home):
    """fm's instance stores events through one SQLAlchemy engine per SQLite file (the index and the last runs'
    shards), not one per statement; at most MAX_ENGINES are kept, the others disposed; what it wrote is there for
    another process, which reads the files with Dagster's own storage class."""
    import subprocess
    import sys

    from dagster import AssetKey, asset, materialize

    from fm_resources.sqlite_events import MAX_ENGINES, EngineKeepingSqliteEventLogStorage

    instance = dagster_instance()
    storage = instance.event_log_storage
    assert type(storage) is EngineKeepingSqliteEventLogStorage

    @asset
    def numbers() -> int:
        return 1

    assert materialize([numbers], instance=instance).success
    index = storage._engines["index"]
    assert materialize([numbers], instance=instance).success
    assert storage._engines["index"] is index  # the same engine for the second run's events
    kept = set(storage._engines)
    assert {"index", *[r.run_id for r in instance.get_runs()]} == kept
    for _ in range(MAX_ENGINES):
        assert materialize([numbers], instance=instance).success
    runs = [r.run_id for r in instance.get_runs()]  # newest first
    assert len(storage._engines) == MAX_ENGINES and "index" in storage._engines
    assert set(storage._engines) <= {"index", *runs[:MAX_ENGINES]}  # the oldest runs' engines went
    out = subprocess.run([sys.executable, "-c", "from dagster import AssetKey, DagsterInstance; i = DagsterInstance.get(); "
                          "print(type(i.event_log_storage).__name__, "
                          "len(i.fetch_materializations(AssetKey('numbers'), limit=100).records))"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["SqliteEventLogStorage", str(MAX_ENGINES + 2)], out.stderr[-2000:]
    assert len(instance.fetch_materializations(AssetKey("numbers"), limit=100).records) == MAX_ENGINES + 2
    instance.dispose()
    assert not storage._engines


def test_the_event_log_keeps_its_connections_and_a_watcher_sees_each_event_as_it_is_stored(fm_home):
    """fm's event log opens one SQLite connection per shard and keeps it across statements and runs (Dagster's
    class opens one per statement); yet a run's shard file still changes with every event, so Dagster's own
    storage class, watching it as the UI does for a live run (watchdog on `<run_id>.db`), is told of each event
    while the writer's connection is still open; `release` closes the connections and the WAL goes."""
    import os

    from dagster import EventLogEntry
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from sqlalchemy import event
    from sqlalchemy.pool import QueuePool

    instance = dagster_instance()
    storage = instance.event_log_storage
    opened: list[str] = []  # the connections fm's storage opens (its pools; Dagster's class opens through NullPool)

    def count(dbapi_connection, _record):
        opened.append(dbapi_connection.execute("PRAGMA database_list").fetchall()[0][2])

    def entry(run_id: str, i: int) -> EventLogEntry:
        return EventLogEntry(error_info=None, level=20, user_message=f"message {i}", run_id=run_id,
                             timestamp=time.time(), step_key=None, job_name="watched", dagster_event=None)

    run_id = "0e9a2d5c-1b7f-4c1e-9f3a-6d2b8c4e7a10"
    storage.store_event(entry(run_id, 0))  # the shard exists before it is watched
    watcher = SqliteEventLogStorage(storage._base_dir)  # Dagster's class, another reader of the same files
    seen: list[str] = []
    watcher.watch(run_id, None, lambda e, _cursor: seen.append(e.user_message))
    event.listen(QueuePool, "connect", count)
    try:
        time.sleep(0.5)  # the observer thread is up
        for i in range(1, 6):
            storage.store_event(entry(run_id, i))
            deadline = time.monotonic() + 10
            while f"message {i}" not in seen and time.monotonic() < deadline:
                time.sleep(0.02)
            assert f"message {i}" in seen, (i, seen)  # told before the next event is stored
        for _ in range(20):
            assert instance.has_dynamic_partition("videos", "d-00000001") is False
    finally:
        event.remove(QueuePool, "connect", count)
        watcher.end_watch(run_id, watcher._watchers[run_id] and next(iter(watcher._watchers[run_id])))
        watcher.dispose()
    assert len(opened) <= 1, opened  # 25 statements: at most the index's connection was new
    shard = Path(storage.path_for_shard(run_id))
    assert Path(f"{shard}-wal").exists()  # its connection is still open
    storage.release()
    assert not Path(f"{shard}-wal").exists() and not Path(f"{shard}-shm").exists()
    event.listen(QueuePool, "connect", count)
    try:
        opened.clear()
        storage.store_event(entry(run_id, 6))
        storage.store_event(entry(run_id, 7))
    finally:
        event.remove(QueuePool, "connect", count)
    assert opened == [str(shard)]  # released: the next statement opens one again, and it is kept
    storage.release()
    assert [e.user_message for e in watcher.get_logs_for_run(run_id)] == [f"message {i}" for i in range(8)]
    assert os.path.getsize(shard) > 0


def test_a_forked_child_neither_uses_nor_closes_the_parents_connections(fm_home):
    """After os.fork the child's event log opens its own connections; the parent's stay open and usable (closing
    an SQLite connection in the child could checkpoint or delete a WAL the parent is using)."""
    import os

    from fm_resources.sqlite_events import _PARENTS

    instance = dagster_instance()
    storage = instance.event_log_storage
    add_video_partitions(instance, ["d-00000005"])
    parents = dict(storage._engines)
    assert "index" in parents
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only
        ok = (not storage._engines and all(any(e is p for p in _PARENTS) for e in parents.values())
              and storage.has_dynamic_partition("videos", "d-00000005")
              and storage._engines["index"] is not parents["index"])
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage._engines["index"] is parents["index"]
    add_video_partitions(instance, ["d-00000006"])  # the parent's kept connection still works
    assert set(instance.get_dynamic_partitions("videos")) >= {"d-00000005", "d-00000006"}
