"""`fm instance`: where the Dagster instance keeps its history (SQLite in FM_HOME, or Postgres with FM_DAGSTER_PG_URL),
and `fm instance migrate`, which moves an existing SQLite history to Postgres."""

from __future__ import annotations

from fm_assets.cli.console import console


def add_parser(sub) -> None:
    p = sub.add_parser("instance", help="the Dagster instance: where its history is (info), move it to Postgres "
                                        "(migrate)")
    what = p.add_subparsers(dest="what", required=True)
    info = what.add_parser("info", help="storage (SQLite or Postgres), runs, executor")
    info.set_defaults(func=cmd_info)
    migrate = what.add_parser("migrate", help="copy the SQLite history of FM_HOME's instance to the Postgres of "
                                              "FM_DAGSTER_PG_URL and switch the instance over")
    migrate.set_defaults(func=cmd_migrate)


def _partition_sets() -> tuple[str, ...]:
    from dagster import DynamicPartitionsDefinition

    from fm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    names = {graph.get(k).partitions_def.name for k in graph.get_all_asset_keys()
             if isinstance(graph.get(k).partitions_def, DynamicPartitionsDefinition)}
    return tuple(sorted(names))


def cmd_info(args) -> int:
    from fm_resources import settings
    from fm_resources.instance import dagster_instance
    from fm_resources.postgres import is_postgres, redact

    instance = dagster_instance()
    url = settings.dagster_pg_url()
    storage = f"Postgres {redact(url)}" if is_postgres(instance) and url else "SQLite"
    console().print(f"instance   {instance.root_directory}")
    console().print(f"storage    {storage}")
    console().print(f"runs       {instance.get_runs_count()}")
    console().print(f"executor   {settings.executor_kind()}")
    return 0


def cmd_migrate(args) -> int:
    from fm_resources.postgres import migrate_to_postgres
    from fm_resources.settings import dagster_home

    result = migrate_to_postgres(dagster_home(), _partition_sets())
    if result.get("already_on_postgres"):
        console().print(f"the instance is already on Postgres ({result['url']}): nothing to do")
        return 0
    console().print(f"copied {result['runs']} runs ({result['events']} events; {result['runs_already_there']} were "
                  f"there already), {result['partitions']} partitions, {result['pools']} pool limits, "
                  f"{result['instigators']} sensor/schedule states, {result['backfills']} backfills to "
                  f"{result['url']}")
    console().print(f"{result['dagster_yaml']} now keeps the history in Postgres; the SQLite files in "
                  f"{result['sqlite_backup']} are kept as a backup (delete them when satisfied)")
    return 0
