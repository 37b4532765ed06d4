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
