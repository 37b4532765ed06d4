"""A Dagster instance on Postgres (FM_DAGSTER_PG_URL): run history, event log and schedule state that outlive the
machine and that many machines share (daemon, run workers, Celery workers, `fm`).

Dagster's Postgres storage (dagster-postgres) talks to Postgres through SQLAlchemy, and SQLAlchemy 2.1 reads a bare
`postgresql://` URL as psycopg 3, which dagster-postgres does not support (without psycopg 3: "No module named
psycopg"; with it, its `NOTIFY run_events, $1` is a syntax error). The URL must name psycopg2:
`postgresql+psycopg2://`. `normalise_pg_url` turns `postgres://` and `postgresql://` into that and refuses any other
driver, and the storage class fm writes into dagster.yaml (`PostgresStorage`) does the same when Dagster builds the
instance in any process (daemon, run, Celery worker), so a URL copied from a provider's console works as it is.

The dagster.yaml names the variable, not its value (`postgres_url: {env: FM_DAGSTER_PG_URL}`): the password never
lands on disk. `copy_history` takes an existing (SQLite) instance's history across (`fm instance migrate`).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from dagster_postgres import DagsterPostgresStorage

PG_SCHEME = "postgresql+psycopg2"
PG_URL_VARIABLE = "FM_DAGSTER_PG_URL"
_BARE = ("postgres", "postgresql")


class PgUrlError(ValueError):
    """A Postgres URL Dagster's storage cannot use."""


def normalise_pg_url(url: str) -> str:
    """The URL with the psycopg2 scheme: `postgres://` and `postgresql://` become `postgresql+psycopg2://`;
    `postgresql+psycopg2://` is kept; any other scheme or driver is refused (PgUrlError) with the reason."""
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == PG_SCHEME:
        return url
    if scheme in _BARE:
        return urlunsplit(parts._replace(scheme=PG_SCHEME))
    if scheme.startswith("postgresql+"):
        raise PgUrlError(f"{redact(url)}: driver {scheme.split('+', 1)[1]!r} is not supported; Dagster's Postgres "
                         f"storage needs psycopg2: {PG_SCHEME}://USER:PASSWORD@HOST:5432/DB")
    raise PgUrlError(f"{redact(url)!r} is not a Postgres URL; expected {PG_SCHEME}://USER:PASSWORD@HOST:5432/DB")


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def storage_settings() -> dict:
    """The `storage` section of a dagster.yaml on Postgres: fm's PostgresStorage (psycopg2 scheme whatever the
    variable holds), reading the URL from FM_DAGSTER_PG_URL in each process that opens the instance."""
    return {"storage": {"custom": {"module": "fm_resources.postgres", "class": "PostgresStorage",
                                   "config": {"postgres_url": {"env": PG_URL_VARIABLE}}}}}


def is_postgres(instance) -> bool:
    """Whether the instance's run storage is on Postgres."""
    return type(instance.run_storage).__module__.startswith("dagster_postgres")


class PostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose URL is normalised to the psycopg2 scheme in every process that builds the instance
    (see the module's doc); dagster.yaml names it (storage_settings)."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

        return cls(postgres_url=normalise_pg_url(pg_url_from_config(config_value)),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   inst_data=inst_data, token_provider=get_token_provider_from_config(config_value))


def copy_history(src, dst, partition_sets: tuple[str, ...] = ("videos",)) -> dict[str, int]:
    """Copy an instance's history (`src`, e.g. the SQLite one in DAGSTER_HOME) into another (`dst`, Postgres), oldest
    first: every run with its job and execution-plan snapshots, creation time and status, and every event of it
    (storing an event also rebuilds the asset indexes: materializations, partitions, check results, so the UI's
    asset pages and the automation conditions see the same history); the dynamic partitions of `partition_sets`;
    the concurrency pools' limits; sensor and schedule state (cursors, on/off); backfills. Runs already in `dst`
    are skipped, so a copy that stopped half-way can be run again. Not copied: sensor and schedule tick history and
    daemon heartbeats (rebuilt as the daemon runs), events stored outside any run. Returns counts."""
    import datetime as dt

    counts = {"runs": 0, "runs_already_there": 0, "events": 0, "partitions": 0, "pools": 0, "instigators": 0,
              "backfills": 0}
    for record in src.get_run_records(order_by="create_timestamp", ascending=True):
        run = record.dagster_run
        if dst.has_run(run.run_id):
            counts["runs_already_there"] += 1
            continue
        if run.job_snapshot_id and not dst.run_storage.has_job_snapshot(run.job_snapshot_id):
            dst.run_storage.add_job_snapshot(src.get_job_snapshot(run.job_snapshot_id))
        plan_id = run.execution_plan_snapshot_id
        if plan_id and not dst.run_storage.has_execution_plan_snapshot(plan_id):
            dst.run_storage.add_execution_plan_snapshot(src.get_execution_plan_snapshot(plan_id))
        created = record.create_timestamp
        dst.run_storage.add_historical_run(run, created if created.tzinfo else created.replace(tzinfo=dt.UTC))
        for entry in src.all_logs(run.run_id):
            dst.event_log_storage.store_event(entry)
            counts["events"] += 1
            if entry.dagster_event is not None and entry.dagster_event.is_job_event:
                dst.run_storage.handle_run_event(run.run_id, entry.dagster_event,
                                                 dt.datetime.fromtimestamp(entry.timestamp, dt.UTC))
        counts["runs"] += 1
    for name in partition_sets:
        keys = [k for k in src.get_dynamic_partitions(name) if not dst.has_dynamic_partition(name, k)]
        if keys:
            dst.add_dynamic_partitions(name, keys)
        counts["partitions"] += len(keys)
    src_events, dst_events = src.event_log_storage, dst.event_log_storage
    if src_events.supports_global_concurrency_limits and dst_events.supports_global_concurrency_limits:
        for pool in src_events.get_concurrency_keys():
            dst_events.set_concurrency_slots(pool, src_events.get_concurrency_info(pool).slot_count)
            counts["pools"] += 1
    if src.schedule_storage is not None and dst.schedule_storage is not None:
        for state in src.schedule_storage.all_instigator_state():
            if dst.schedule_storage.get_instigator_state(state.instigator_origin_id, state.selector_id):
                dst.schedule_storage.update_instigator_state(state)
            else:
                dst.schedule_storage.add_instigator_state(state)
            counts["instigators"] += 1
    for backfill in src.get_backfills():
        if dst.get_backfill(backfill.backfill_id) is None:
            dst.add_backfill(backfill)
            counts["backfills"] += 1
    return counts


def migrate_to_postgres(home, partition_sets: tuple[str, ...] = ("videos",)) -> dict:
    """Move the instance in `home` (DAGSTER_HOME) from SQLite to the Postgres of FM_DAGSTER_PG_URL: copy its history
    (copy_history), then add the Postgres `storage` section to its dagster.yaml (written atomically; every other
    setting kept). The SQLite files stay where they were, untouched (a backup; delete them when satisfied). Under the
    instance lock; stop `fm ui`, the daemon and other `fm` commands on this FM_HOME first (they keep writing to the
    SQLite files until they restart). Returns what was copied and the paths."""
    import os
    import tempfile
    from pathlib import Path

    import yaml
    from dagster import DagsterInstance

    from fm_resources.instance import instance_lock
    from fm_resources.settings import HEADER, dagster_pg_url

    url = dagster_pg_url()
    if url is None:
        raise PgUrlError("FM_DAGSTER_PG_URL is not set: it names the Postgres database to move the history to")
    home = Path(home)
    cfg_file = home / "dagster.yaml"
    with instance_lock(home):
        cfg = yaml.safe_load(cfg_file.read_text()) or {} if cfg_file.exists() else {}
        target_cfg = {**{k: v for k, v in cfg.items() if k not in ("storage", "run_storage", "event_log_storage",
                                                                    "schedule_storage")}, **storage_settings()}
        src = DagsterInstance.from_config(str(home))
        if is_postgres(src):
            return {"already_on_postgres": True, "url": redact(url)}
        with tempfile.TemporaryDirectory(prefix="fm-migrate-") as tmp:
            (Path(tmp) / "dagster.yaml").write_text(yaml.safe_dump(target_cfg, sort_keys=False))
            with DagsterInstance.from_config(tmp) as dst:
                counts = copy_history(src, dst, partition_sets)
        src.dispose()
        tmp_file = cfg_file.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp_file.write_text(HEADER + yaml.safe_dump(target_cfg, sort_keys=False, default_flow_style=False))
        os.replace(tmp_file, cfg_file)
    return {**counts, "url": redact(url), "dagster_yaml": str(cfg_file), "sqlite_backup": str(home)}
