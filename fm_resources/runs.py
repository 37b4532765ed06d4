"""Dead runs and pool slots: which process a run lives in, whether it is still alive, and cleaning up after one
that was killed (kill -9, the OOM killer, a power cut) so it stops holding the `gpu` / `llm` pool slots.

A run `fm run` executes in its own process carries tags naming that process (`fm/pid`, `fm/host`, `fm/started`);
a run Dagster's run launcher starts logs "Started process for run (pid: N)". A run whose process is gone (or
whose pid now belongs to a newer process) is dead: `reap_dead_runs` marks it failed and frees its slots. `fm run`
does this before it starts, `fm doctor` on demand, and the run monitoring daemon of `fm ui` (through
`FmRunLauncher.check_run_worker_health`) every `poll_interval_seconds`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import DefaultRunLauncher

PID_TAG, HOST_TAG, STARTED_TAG = "fm/pid", "fm/host", "fm/started"
ACTIVE = ("STARTING", "STARTED", "CANCELING")


def process_tags() -> dict[str, str]:
    """The tags that tie a run to this process (see module doc)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), STARTED_TAG: f"{time.time():.3f}"}


def process_started_at(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None when there is no such live process (a zombie counts
    as dead). Linux /proc; elsewhere a signal-0 probe gives "alive since the epoch"."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0.0
        return 0.0
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Worker:
    pid: int
    host: str | None  # None: the run launcher's worker, on this machine
    since: float  # the run's process existed at this time

    def alive(self) -> bool | None:
        """True / False, or None when it cannot be told from here (another host)."""
        if self.host is not None and self.host != socket.gethostname():
            return None
        started = process_started_at(self.pid)
        return started is not None and started <= self.since + 2.0  # a newer process with a reused pid: dead


def run_worker(instance, run) -> Worker | None:
    """The process a run executes in, from fm's tags or the launcher's "Started process" event; None if unknown."""
    tags = run.tags or {}
    if PID_TAG in tags:
        try:
            return Worker(int(tags[PID_TAG]), tags.get(HOST_TAG), float(tags.get(STARTED_TAG, "0")))
        except ValueError:
            return None
    from dagster import DagsterEventType

    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records:
        event = record.event_log_entry
        data = event.dagster_event.event_specific_data if event.dagster_event else None
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if pid is not None:
            try:
                return Worker(int(getattr(pid, "value", pid)), None, float(event.timestamp))
            except (TypeError, ValueError):
                return None
    return None


def active_runs(instance) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus[s] for s in ACTIVE]
    return [r.dagster_run for r in instance.get_run_records(filters=RunsFilter(statuses=statuses))]


def dead_runs(instance) -> list[tuple[Any, Worker]]:
    """Runs in progress whose process is gone."""
    out = []
    for run in active_runs(instance):
        worker = run_worker(instance, run)
        if worker is not None and worker.alive() is False:
            out.append((run, worker))
    return out


def dead_message(worker: Worker) -> str:
    return (f"the run's process (pid {worker.pid}) is gone: killed (kill -9, out of memory) or crashed; "
            "marked failed by fm and its pool slots freed")


def free_finished_slots(instance) -> int:
    """Free the pool slots still held by runs that have finished (or are unknown); returns how many runs."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    freed = 0
    for run_id in storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            freed += 1
    return freed


def reap_dead_runs(instance) -> list[dict]:
    """Mark every run whose process is gone failed (canceled when it was being canceled), free the pool slots of
    finished runs; returns what was done, one dict per run."""
    done = []
    for run, worker in dead_runs(instance):
        if run.status.value == "CANCELING":
            instance.report_run_canceled(run, dead_message(worker))
        else:
            instance.report_run_failed(run, dead_message(worker))
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        done.append({"run_id": run.run_id, "pid": worker.pid, "status": run.status.value,
                     "partition": (run.tags or {}).get("dagster/partition")})
    free_finished_slots(instance)
    return done


def pool_holders(instance, pools: list[str]) -> dict[str, dict]:
    """Per pool: its limit, the (run_id, step_key) holding its slots and those waiting for one."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    out = {}
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        out[pool] = {"limit": info.slot_count,
                     "held": [(c.run_id, c.step_key) for c in info.claimed_slots],
                     "waiting": [(p.run_id, p.step_key) for p in info.pending_steps if p.assigned_timestamp is None]}
    return out


def blocked_message(instance, run_id: str, pools: list[str]) -> str | None:
    """Why a run waits, in one line (the pool, its limit, the runs holding it and whether their process is
    alive), or None when none of its steps waits for a pool slot."""
    for pool, info in pool_holders(instance, pools).items():
        mine = [step for rid, step in info["waiting"] if rid == run_id]
        if not mine:
            continue
        holders = []
        for rid, step in info["held"]:
            run = instance.get_run_by_id(rid)
            worker = run_worker(instance, run) if run is not None else None
            state = ("status unknown" if run is None else run.status.value.lower()
                     + ("" if worker is None else f", pid {worker.pid} " + {True: "alive", False: "GONE",
                                                                          None: "on another host"}[worker.alive()]))
            holders.append(f"run {rid[:8]} step {step} ({state})")
        return (f"waiting for a slot of pool {pool!r} (limit {info['limit']}) for {', '.join(mine)}; held by "
                f"{'; '.join(holders) or 'nobody (being assigned)'}. Ctrl-C stops; `fm doctor` shows and cleans dead runs")
    return None


class FmRunLauncher(DefaultRunLauncher):
    """Dagster's default run launcher that can tell whether a run's process is alive, so run monitoring (enabled
    in the dagster.yaml fm writes) marks the runs of killed processes failed instead of leaving them STARTED and
    holding their pool slots forever."""

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run):
        from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

        worker = run_worker(self._instance, run)
        alive = worker.alive() if worker is not None else None
        if alive is False and worker is not None:
            return CheckRunHealthResult(WorkerStatus.FAILED, dead_message(worker))
        if alive is None:  # no process known yet, or another host: not ours to judge
            return CheckRunHealthResult(WorkerStatus.RUNNING, "process unknown")
        return CheckRunHealthResult(WorkerStatus.RUNNING)
