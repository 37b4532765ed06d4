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
