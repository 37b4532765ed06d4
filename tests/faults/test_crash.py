"""kill -9 of `fm run` mid-step, a run that waits for a pool slot held by another, Ctrl-C while waiting, and run
monitoring (the daemon's check of a run whose process died)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, job, op

from tests.conftest import FM, ROOT
from tests.faults.conftest import clean_env, fm, lake_counts, no_traceback, record, same_counts, spawn, statuses, usable


def wait_for_gpu_slot(home: Path, timeout: float = 180) -> str:
    """The run id holding the `gpu` pool's slot (detections running), once one does: read straight from the
    instance's SQLite index (cheap enough to poll every 50 ms on a busy machine)."""
    db = home / "dagster" / "history" / "runs" / "index.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
                    row = con.execute("SELECT run_id FROM concurrency_slots WHERE concurrency_key = 'gpu' "
                                      "AND run_id IS NOT NULL").fetchone()
                if row:
                    return row[0]
            except sqlite3.Error:  # being created by the fm process
                pass
        time.sleep(0.05)
    raise AssertionError("no run took the gpu slot")


def freeze_outside_a_write(proc: subprocess.Popen, home: Path, tries: int = 100) -> None:
    """SIGSTOP proc at a moment it holds no write lock on the instance's SQLite files: a process frozen inside a
    write transaction is another fault (every other writer of that file waits for it), not the one tested here
    (a live run that holds a pool slot and makes no progress)."""
    dbs = sorted((home / "dagster").rglob("*.db"))
    for _ in range(tries):
        proc.send_signal(signal.SIGSTOP)
        try:
            for db in dbs:
                with contextlib.closing(sqlite3.connect(db, timeout=0.5, isolation_level=None)) as con:
                    con.execute("BEGIN IMMEDIATE")
                    con.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # frozen mid-write: let it finish and try again
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    raise AssertionError(f"could not freeze the run outside a write transaction in {tries} tries")


def run_status(home: Path, run_id: str) -> str:
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return instance.get_run_by_id(run_id).status.value


def test_kill_9_mid_detections_then_fm_run_recovers(baseline, fault_videos, tmp_path):
    home = tmp_path / "home"
    proc = spawn("run", str(fault_videos), "-q", home=home)
    run_id = wait_for_gpu_slot(home)
    proc.send_signal(signal.SIGKILL)  # the OOM killer's way: no cleanup at all
    proc.wait(timeout=30)
    assert run_status(home, run_id) == "STARTED"  # what Dagster alone would keep forever
    doctor, _ = fm("doctor", home=home)
    assert doctor.returncode == 1 and "DEAD" in doctor.stdout and "fm doctor --clean" in doctor.stdout
    # the next fm run finds the dead run, marks it failed, frees the gpu slot and labels everything
    again, seconds = fm("run", str(fault_videos), "-q", home=home, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    no_traceback(again)
    assert f"run {run_id}" in again.stderr and "marked failed, its pool slots freed" in again.stderr
    assert "3 of 3 video(s) materialized, 0 failed" in again.stderr
    assert run_status(home, run_id) == "FAILURE"
    assert set(statuses(home / "lake").values()) == {"ok"}
    same_counts(lake_counts(home / "lake"), baseline["counts"], baseline["ids"])
    usable(home, fault_videos / "alpha.mp4")
    record("kill -9 mid-detections", "next `fm run` marks the run failed, frees the gpu slot, labels all 3", seconds)


def test_a_blocked_run_says_why_and_ctrl_c_stops_it_at_once(baseline, fault_videos, tmp_path):
    home = tmp_path / "home"
    holder = spawn("run", str(fault_videos / "alpha.mp4"), "-q", home=home)
    holder_run = wait_for_gpu_slot(home)
    freeze_outside_a_write(holder, home)  # alive, holding the only gpu slot, making no progress
    try:
        log = tmp_path / "waiter.err"
        with open(log, "w") as err_file:
            waiter = subprocess.Popen([FM, "run", str(fault_videos / "bravo.mp4"), "-q"], stdout=subprocess.DEVNULL,
                                      stderr=err_file, text=True, env=clean_env(home), cwd=ROOT)
        deadline, err = time.monotonic() + 90, ""
        while time.monotonic() < deadline and "waiting for a slot of pool 'gpu'" not in err and waiter.poll() is None:
            time.sleep(0.5)
            err = log.read_text()  # printed within WATCH_EVERY_S of the step blocking
        assert "waiting for a slot of pool 'gpu'" in err and holder_run[:8] in err and "alive" in err, err
        started = time.monotonic()
        waiter.send_signal(signal.SIGINT)
        waiter.wait(timeout=20)
        stopped_in = time.monotonic() - started
        err = log.read_text()
        assert waiter.returncode == 130 and "interrupted" in err, err
        assert stopped_in < 5, stopped_in
        assert "Traceback" not in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.send_signal(signal.SIGCONT)
        holder.wait(timeout=30)
    again, seconds = fm("run", str(fault_videos / "alpha.mp4"), str(fault_videos / "bravo.mp4"), "-q", home=home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 video(s) materialized" in again.stderr
    ids = [baseline["by_name"]["alpha"], baseline["by_name"]["bravo"]]
    same_counts(lake_counts(home / "lake"), baseline["counts"], ids)
    record("run blocked on a pool + Ctrl-C", f"says who holds the slot; Ctrl-C exits 130 in {stopped_in:.1f} s",
           seconds)


def test_run_monitoring_marks_a_dead_worker_failed(tmp_path, monkeypatch):
    """The daemon's run monitoring (on in the dagster.yaml fm writes) asks FmRunLauncher whether a run's process
    lives: one whose pid is gone is marked failed."""
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    from fm_resources.instance import dagster_instance
    from fm_resources.runs import FmRunLauncher

    monkeypatch.setenv("FM_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = dagster_instance()
    assert isinstance(instance.run_launcher, FmRunLauncher)
    assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
    dead = subprocess.Popen(["true"])
    dead.wait()

    @op
    def noop():
        return None

    @job
    def j():
        noop()

    def started_run(pid: int, since: float):
        run = instance.create_run_for_job(j, tags={"fm/pid": str(pid), "fm/host": socket.gethostname(),
                                                   "fm/started": str(since)})
        instance.handle_new_event(_started(run))
        return instance.get_run_records(filters=RunsFilter(run_ids=[run.run_id]))[0]

    gone = started_run(dead.pid, time.time() - 5)
    assert gone.dagster_run.status == DagsterRunStatus.STARTED
    monitor_started_run(instance, None, gone, logging.getLogger("test"))
    assert instance.get_run_by_id(gone.dagster_run.run_id).status == DagsterRunStatus.FAILURE
    alive = started_run(os.getpid(), time.time())  # a live process is left alone
    monitor_started_run(instance, None, alive, logging.getLogger("test"))
    assert instance.get_run_by_id(alive.dagster_run.run_id).status == DagsterRunStatus.STARTED


def _started(run):
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)
    return EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id=run.run_id,
                         timestamp=time.time(), dagster_event=event)
