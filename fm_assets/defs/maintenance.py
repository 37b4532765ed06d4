"""Lake upkeep: compaction of the per-video tables, so whole-lake queries (the dataset checks, sql/reports,
`fm sql`, the `fm db` file) open a few large Parquet parts instead of one file per video and table.

The per-video files stay the source of truth (each partition's run rewrites its own file); the compacted parts
are a read-side copy that the warehouse's views combine with whatever changed since (fm_resources.warehouse).
`compact_lake` runs nightly at FM_COMPACT_CRON (default 04:00, after the 03:00 backfill); `fm compact` runs it
by hand, and `fm run` / `fm db` run it when enough files changed (FM_COMPACT_MIN_CHANGED, default 256)."""

from dagster import Config, DefaultScheduleStatus, OpExecutionContext, ScheduleDefinition, job, op
from pydantic import Field

from fm_resources.warehouse import Warehouse


class CompactConfig(Config):
    tables: list[str] = Field(default_factory=list, description="per-video tables to compact (empty: all)")
    min_changed: int = Field(1, ge=1, description="compact a table only when at least this many of its files "
                                                  "are new, rewritten or deleted since its last compaction")


def report_lines(report: dict[str, dict]) -> list[str]:
    return [f"{name}: {r['files']} files ({r['changed_files']} changed) -> "
            + (f"{r['parts']} part(s), {r['rows']} rows in {r['seconds']:.2f} s" if r["compacted"] else "left as it is")
            for name, r in report.items()]


@op(description="Rewrite the lake's per-video tables into a few Parquet parts (Warehouse.compact).")
def compact_tables(context: OpExecutionContext, config: CompactConfig, warehouse: Warehouse) -> None:
    report = warehouse.compact(config.tables or None, min_changed=config.min_changed)
    for line in report_lines(report):
        context.log.info(line)


@job(description="Compact the label lake's per-video tables for fast whole-lake checks, reports and SQL.")
def compact_lake():
    compact_tables()


def compact_schedule(cron: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="nightly_compaction",
        job=compact_lake,
        cron_schedule=cron,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"At {cron} (FM_COMPACT_CRON): compact every per-video table that changed.",
    )
