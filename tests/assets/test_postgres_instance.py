"""The Postgres instance (FM_DAGSTER_PG_URL) against a real Postgres 15 on 127.0.0.1: fm writes a dagster.yaml that
names the variable (never the password), the URL gets the psycopg2 scheme whatever form it was given in, SQLite stays
the default, and an existing SQLite history moves across with `fm instance migrate`."""

from __future__ import annotations

import itertools

import pytest
import yaml
from dagster import AssetKey

from fm_resources.postgres import PgUrlError, normalise_pg_url, redact
from tests.conftest import run_fm

_db_ids = itertools.count()


def test_the_url_gets_the_psycopg2_scheme():
    assert normalise_pg_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg2://u:p@h:5432/d"
    assert normalise_pg_url(" postgres://u@h/d ") == "postgresql+psycopg2://u@h/d"
    assert normalise_pg_url("postgresql+psycopg2://u@h/d?sslmode=require") == "postgresql+psycopg2://u@h/d?sslmode=require"
    with pytest.raises(PgUrlError, match="psycopg2") as err:
        normalise_pg_url("postgresql+psycopg://u:secret@h/d")  # psycopg 3: dagster-postgres's NOTIFY fails on it
    assert "secret" not in str(err.value)
    with pytest.raises(PgUrlError, match="not a Postgres URL"):
        normalise_pg_url("mysql://u@h/d")
    assert redact("postgresql+psycopg2://u:secret@h/d") == "postgresql+psycopg2://u:***@h/d"


def fresh_database(server) -> str:
    """A new empty database on the test server; its URL with a bare postgresql:// scheme (as users paste it)."""
    import psycopg2

    name = f"fm_test_{next(_db_ids)}"
    conn = psycopg2.connect(host=server["hostname"], port=server["port"], user=server["username"], dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"postgresql://{server['username']}@{server['hostname']}:{server['port']}/{name}"


def label_one_video(instance, tmp_path) -> str:
    """Register a small synthetic video and run `label_videos` for it up to raw_clips, against `instance`."""
    from fm_assets.cli.run import selection_until
    from fm_assets.definitions import build_defs
    from fm_resources.instance import add_video_partitions
    from fm_resources.registry import register_video
    from fm_resources.video import VideoStore
    from tests.conftest import loopback

    [mp4] = loopback().render_videos(tmp_path / "videos", 1)
    defs = build_defs()
    vid = register_video(str(mp4), VideoStore(), defs.resources["lake"]).video_id
    add_video_partitions(instance, [vid])
    res = defs.resolve_job_def("label_videos").execute_in_process(
        partition_key=vid, instance=instance, asset_selection=selection_until("raw_clips"))
    assert res.success
    return vid


def test_fm_writes_a_postgres_instance_when_the_url_is_set(fm_home, postgres_server, monkeypatch, tmp_path):
    from fm_resources.instance import dagster_instance
    from fm_resources.postgres import is_postgres

    url = fresh_database(postgres_server)
    monkeypatch.setenv("FM_DAGSTER_PG_URL", url)  # bare scheme, as pasted
    instance = dagster_instance()
    assert is_postgres(instance)
    text = (fm_home / "dagster" / "dagster.yaml").read_text()
    assert "FM_DAGSTER_PG_URL" in text and url.split("://")[1] not in text  # the variable, not its value
    assert yaml.safe_load(text)["run_retries"]["max_retries"] == 1  # fm's other settings are there too
    vid = label_one_video(instance, tmp_path)
    assert vid in instance.get_materialized_partitions(AssetKey("raw_clips"))
    assert {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in ("gpu", "llm")} == \
        {"gpu": 1, "llm": 4}


def test_sqlite_stays_the_default(fm_home, monkeypatch):
    from fm_resources.instance import dagster_instance
    from fm_resources.postgres import is_postgres

    monkeypatch.delenv("FM_DAGSTER_PG_URL", raising=False)
    instance = dagster_instance()
    assert not is_postgres(instance) and type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert "storage" not in yaml.safe_load((fm_home / "dagster" / "dagster.yaml").read_text())


def test_fm_instance_migrate_moves_a_sqlite_history_to_postgres(fm_home, postgres_server, monkeypatch, tmp_path):
    from fm_resources.instance import InstanceStorageError, dagster_instance
    from fm_resources.postgres import is_postgres

    monkeypatch.delenv("FM_DAGSTER_PG_URL", raising=False)
    sqlite = dagster_instance()
    vid = label_one_video(sqlite, tmp_path)
    sqlite.event_log_storage.set_concurrency_slots("gpu", 3)  # a limit changed in the UI
    runs = {r.run_id: r.status for r in sqlite.get_runs()}
    materialized = sqlite.get_materialized_partitions(AssetKey("raw_clips"))
    sqlite.dispose()

    url = fresh_database(postgres_server)
    monkeypatch.setenv("FM_DAGSTER_PG_URL", url)
    with pytest.raises(InstanceStorageError, match="fm instance migrate"):  # never silently a second history
        dagster_instance()
    out = run_fm("instance", "migrate", home=fm_home, env={"FM_DAGSTER_PG_URL": url})
    assert out.returncode == 0, out.stderr
    assert f"copied {len(runs)} runs" in out.stdout
    pg = dagster_instance()
    assert is_postgres(pg)
    assert {r.run_id: r.status for r in pg.get_runs()} == runs
    assert pg.get_materialized_partitions(AssetKey("raw_clips")) == materialized == {vid}
    assert pg.get_dynamic_partitions("videos") == [vid]
    assert pg.event_log_storage.get_concurrency_info("gpu").slot_count == 3
    assert all(r.start_time and r.end_time for r in pg.get_run_records())
    again = run_fm("instance", "migrate", home=fm_home, env={"FM_DAGSTER_PG_URL": url})
    assert again.returncode == 0 and "already on Postgres" in again.stdout
    assert (fm_home / "dagster" / "history" / "runs.db").exists()  # the SQLite files are kept as a backup


def test_a_celery_worker_keeps_one_instance_with_pooled_connections(fm_home, postgres_server, monkeypatch, tmp_path):
    """A worker process runs hundreds of steps: it builds the instance once and its storages keep a connection,
    instead of Dagster's NullPool (a new connection for every query); a step labels through it as usual."""
    from sqlalchemy.pool import NullPool

    from fm_assets.celery_app import worker_instance
    from fm_resources.instance import dagster_instance

    monkeypatch.setenv("FM_DAGSTER_PG_URL", fresh_database(postgres_server))
    ref = dagster_instance().get_ref()
    instance = worker_instance(ref)
    assert worker_instance(ref) is instance
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    assert all(not isinstance(s._engine.pool, NullPool) for s in storages)
    vid = label_one_video(instance, tmp_path)
    assert vid in instance.get_materialized_partitions(AssetKey("raw_clips"))
