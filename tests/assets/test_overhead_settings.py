"""The instance settings that cut Dagster's overhead of a backfill (dagster.yaml): the run queue starts at most as many
runs as there are CPUs and looks for queued runs every second; new instances get them, instances fm made earlier get
them added where they lack them, nothing a user set is changed, and a dagster.yaml fm did not write is left alone."""

import os

import pytest
import yaml
from dagster import DagsterInstance

from fm_resources.settings import (
    DEQUEUE_INTERVAL_S,
    HEADER,
    dagster_home,
    ensure_instance_settings,
    max_concurrent_runs,
)

# what dagster_home() wrote before these settings existed
OLD_DAGSTER_YAML = ("telemetry:\n  enabled: false\n"
                    "concurrency:\n  pools:\n    default_limit: 4\n"
                    "run_retries:\n  enabled: true\n  max_retries: 1\n")


@pytest.fixture
def dhome(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("FM_MAX_CONCURRENT_RUNS", raising=False)
    return tmp_path / "dagster"


def run_queue(home) -> tuple[int, int]:
    """(max_concurrent_runs, dequeue_interval_seconds) as Dagster reads them from the instance."""
    instance = DagsterInstance.from_config(str(home))
    return (instance.get_concurrency_config().run_queue_config.max_concurrent_runs,
            instance.run_coordinator.dequeue_interval_seconds)


def test_a_new_instance_starts_runs_up_to_the_cpus_and_dequeues_every_second(dhome):
    home = dagster_home()
    assert (home / "dagster.yaml").read_text().startswith(HEADER)
    cpus = len(os.sched_getaffinity(0))
    assert run_queue(home) == (cpus, DEQUEUE_INTERVAL_S) == (max_concurrent_runs(), 1)
    instance = DagsterInstance.from_config(str(home))
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1  # unchanged
    assert not instance.telemetry_enabled
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
    # no `backfills:` block: the backfill daemon already runs its iterations in threads without one, and
    # num_submit_workers only serves job backfills, not the asset backfill nightly_backfill emits
    assert instance.get_backfill_settings() == {}


def test_fm_max_concurrent_runs(dhome, monkeypatch):
    monkeypatch.setenv("FM_MAX_CONCURRENT_RUNS", "3")
    assert run_queue(dagster_home())[0] == 3
    monkeypatch.setenv("FM_MAX_CONCURRENT_RUNS", "-1")
    assert max_concurrent_runs() == -1  # Dagster's "no limit"


def test_an_existing_instance_gets_the_missing_settings_and_keeps_everything_else(dhome):
    dhome.mkdir(parents=True)
    cfg = dhome / "dagster.yaml"
    cfg.write_text("# my instance\n" + OLD_DAGSTER_YAML + "retention:\n  schedule:\n    purge_after_days: 90  # keep\n")
    home = dagster_home()
    text = cfg.read_text()
    assert text.startswith(HEADER)
    data = yaml.safe_load(text)
    assert data["retention"] == {"schedule": {"purge_after_days": 90}}  # every value kept
    assert data["run_retries"] == {"enabled": True, "max_retries": 1}
    assert data["concurrency"]["pools"] == {"default_limit": 4}
    assert run_queue(home) == (max_concurrent_runs(), DEQUEUE_INTERVAL_S)
    assert DagsterInstance.from_config(str(home)).run_retries_enabled
    before = cfg.stat().st_mtime_ns
    assert ensure_instance_settings(cfg) == []  # once: nothing left to add, the file is not rewritten
    assert cfg.stat().st_mtime_ns == before and cfg.read_text() == text


def test_values_a_user_set_are_kept(dhome):
    dhome.mkdir(parents=True)
    cfg = dhome / "dagster.yaml"
    cfg.write_text(OLD_DAGSTER_YAML.replace("concurrency:\n", "concurrency:\n  runs:\n    max_concurrent_runs: 7\n")
                   + "run_queue:\n  dequeue_interval_seconds: 3\n"
                   + "run_monitoring:\n  enabled: false\n"  # a user's choices, kept as they are
                   + "run_launcher:\n  module: dagster\n  class: DefaultRunLauncher\n")
    text = cfg.read_text()
    assert run_queue(dagster_home()) == (7, 3)
    assert cfg.read_text() == text


@pytest.mark.parametrize("extra, expect", [
    # run limits the older way (run_queue.max_concurrent_runs, no `concurrency`): Dagster refuses both at once
    ("run_queue:\n  max_concurrent_runs: 5\n", (5, DEQUEUE_INTERVAL_S)),
    # a run coordinator of its own: Dagster refuses run_queue beside it
    ("run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
     "  config:\n    max_concurrent_runs: 6\n    dequeue_interval_seconds: 2\n", (6, 2)),
])
def test_settings_that_would_conflict_are_not_added(dhome, extra, expect):
    dhome.mkdir(parents=True)
    (dhome / "dagster.yaml").write_text(HEADER + "telemetry:\n  enabled: false\n" + extra)
    assert run_queue(dagster_home()) == expect  # the instance loads: no conflicting key was added


def test_a_flow_style_file_is_rewritten_whole(dhome):
    dhome.mkdir(parents=True)
    cfg = dhome / "dagster.yaml"
    cfg.write_text("{telemetry: {enabled: false}, concurrency: {pools: {default_limit: 4}}, run_retries: {max_retries: 1}}\n")
    assert run_queue(dagster_home()) == (max_concurrent_runs(), DEQUEUE_INTERVAL_S)
    assert yaml.safe_load(cfg.read_text())["concurrency"]["pools"] == {"default_limit": 4}


def test_a_file_that_is_not_a_mapping_is_left_alone(dhome):
    dhome.mkdir(parents=True)
    cfg = dhome / "dagster.yaml"
    cfg.write_text("- not\n- a mapping\n")
    dagster_home()
    assert cfg.read_text() == "- not\n- a mapping\n"


def test_a_dagster_yaml_fm_did_not_write_is_left_alone(dhome):
    dhome.mkdir(parents=True)
    cfg = dhome / "dagster.yaml"
    cfg.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n")  # the user's own DAGSTER_HOME
    assert run_queue(dagster_home()) == (10, 5)  # Dagster's defaults: untouched
    assert cfg.read_text() == "telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n"
