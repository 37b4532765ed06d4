"""Label-quality checks: one SQL file each in sql/checks, run by DuckDB, attached to their asset as Dagster asset
checks. A check's query returns the offending rows; no rows = pass. The checks of one asset (and scope) run in one
step (a multi-asset check that can run any subset of them): a video's run has 6 check steps, not 15 (each step
costs a run Dagster's events and bookkeeping, which is most of the run of a short video). The checks over the
whole lake of a per-video asset run in `build_dataset`, not in every video's run (`lake_wide_checks`).

Each file starts with a header:
    -- asset: qa_pairs          the asset the check belongs to
    -- severity: ERROR          ERROR = hard violation, blocking (downstream assets do not materialize);
                                WARN = reported, not blocking
    -- scope: partition         partition = the videos of the run only; dataset = the whole lake
    -- severity_setting: FM_X   optional: an environment variable that may set the severity (WARN or ERROR)
    -- <description lines>
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PreviewWarning,
    multi_asset_check,
)

from fm_assets.defs.partitions import videos_partitions
from fm_resources.settings import check_severity
from fm_resources.warehouse import Warehouse, named_tables, sql_dir

SAMPLE_ROWS = 20

# Per-partition asset checks are a preview feature of Dagster 1.13 (pinned <1.14); they are what lets a check
# judge, and block, exactly the videos of its run, so we use them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)


@dataclass(frozen=True)
class SqlCheck:
    name: str
    asset: str
    severity: str  # ERROR | WARN
    scope: str  # partition | dataset
    description: str
    sql: str
    path: Path

    @property
    def blocking(self) -> bool:
        return self.severity == "ERROR"


def parse_check(path: Path) -> SqlCheck:
    header: dict[str, str] = {}
    notes: list[str] = []
    sql = path.read_text()
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        key, sep, value = text.partition(":")
        if sep and key in ("asset", "severity", "scope", "severity_setting") and not notes:
            header[key] = value.strip()
        else:
            notes.append(text)
    missing = {"asset", "severity", "scope"} - set(header)
    if missing:
        raise ValueError(f"{path}: header lacks {sorted(missing)} (see fm_assets/defs/checks.py)")
    if header.get("severity_setting"):  # e.g. FM_TEXT_CHECK_SEVERITY=ERROR makes the check blocking
        header["severity"] = check_severity(header["severity_setting"], header["severity"])
    if header["severity"] not in ("ERROR", "WARN") or header["scope"] not in ("partition", "dataset"):
        raise ValueError(f"{path}: severity must be ERROR or WARN and scope partition or dataset, got {header}")
    return SqlCheck(name=path.stem, asset=header["asset"], severity=header["severity"], scope=header["scope"],
                    description=" ".join(notes), sql=sql, path=path)


class ChecksMissing(RuntimeError):
    """The checks folder is missing or empty: the graph would load with no quality checks at all."""


def load_checks(folder: Path | None = None) -> list[SqlCheck]:
    """Every check of the checks folder (default: the packaged sql/checks); an error when there are none."""
    folder = folder or sql_dir() / "checks"
    files = sorted(folder.glob("*.sql")) if folder.is_dir() else []
    if not files:
        raise ChecksMissing(f"no quality checks: {folder} {'has no .sql files' if folder.is_dir() else 'does not exist'}"
                            " (sql/ ships inside the package as fm_sql; FM_SQL_DIR overrides it)")
    return [parse_check(p) for p in files]


def offending_rows(con: duckdb.DuckDBPyConnection, check: SqlCheck) -> pl.DataFrame:
    return con.sql(check.sql).pl()


def _cell(value) -> str:
    text = str(value)
    return (text[:60] + "...") if len(text) > 63 else text


def markdown_table(df: pl.DataFrame, limit: int = SAMPLE_ROWS) -> str:
    if df.is_empty():
        return "_no offending rows_"
    head = df.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in head.iter_rows()]
    if len(df) > limit:
        lines.append(f"\n_{len(df) - limit} more row(s)_")
    return "\n".join(lines)


def result_for(check: SqlCheck, rows: pl.DataFrame) -> AssetCheckResult:
    """Pass when no rows; otherwise the count, the videos involved and the first rows, to say which labels."""
    metadata = {"offending_rows": len(rows), "sql": MetadataValue.path(f"sql/{check.path.parent.name}/{check.path.name}")}
    if len(rows):
        if "video_id" in rows.columns:
            videos = rows["video_id"].drop_nulls().unique().sort().to_list()
            metadata["videos"] = MetadataValue.json(videos[:50])
        metadata["rows"] = MetadataValue.md(markdown_table(rows))
    return AssetCheckResult(
        passed=rows.is_empty(),
        asset_key=check.asset,
        check_name=check.name,
        severity=AssetCheckSeverity.ERROR if check.severity == "ERROR" else AssetCheckSeverity.WARN,
        metadata=metadata,
        description=None if rows.is_empty() else f"{len(rows)} offending row(s)",
    )


def run_check(check: SqlCheck, warehouse: Warehouse, partitions: list[str] | None = None) -> pl.DataFrame:
    """The offending rows of one check over the lake (or only the given video partitions), through a connection to
    the process's shared in-memory database (a check only reads)."""
    with warehouse.connect(partitions=partitions, only=named_tables(check.sql), shared=True) as con:
        return offending_rows(con, check)


def build_asset_checks(checks: list[SqlCheck]) -> AssetChecksDefinition:
    """One step for the checks of one asset and scope; any subset of them can run (the UI runs one alone). Every
    selected check is evaluated even when one of them cannot run; the step then fails with that error, after the
    others' results are recorded. A failed blocking (ERROR) check stops the assets downstream, as on its own."""
    asset, scope = checks[0].asset, checks[0].scope
    partitioned = scope == "partition" and asset != "splits"
    specs = [AssetCheckSpec(c.name, asset=c.asset, blocking=c.blocking, description=c.description,
                            partitions_def=videos_partitions if partitioned else None,
                            metadata={"severity": c.severity, "scope": c.scope}) for c in checks]
    by_name = {c.name: c for c in checks}
    # a per-video asset's dataset checks get their own name beside its per-video ones; splits has only these
    name = f"{asset}_checks" if partitioned or asset == "splits" else f"{asset}_dataset_checks"

    @multi_asset_check(name=name, specs=specs, can_subset=True,
                       description=f"The {scope} checks of {asset}: " + ", ".join(by_name))
    def _checks(context: AssetCheckExecutionContext, warehouse: Warehouse):
        partitions = list(context.partition_keys) if partitioned else None
        errors = []
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            try:
                rows = run_check(by_name[key.name], warehouse, partitions)
            except Exception as exc:
                errors.append((key.name, exc))
                continue
            yield result_for(by_name[key.name], rows)
        if errors:
            first, exc = errors[0]
            raise RuntimeError(f"check {first} could not run: {type(exc).__name__}: {exc}"
                               + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from exc

    return _checks


def lake_wide_checks() -> list[AssetCheckKey]:
    """The checks over the whole lake that belong to a per-video asset (scope dataset; splits' own run with
    splits): the `build_dataset` job runs them, not every video's run (fm_assets/defs/automation.py)."""
    return [AssetCheckKey(AssetKey(c.asset), c.name) for c in load_checks()
            if c.scope == "dataset" and c.asset != "splits"]


def sql_checks() -> list[AssetChecksDefinition]:
    """The checks of sql/checks, one Dagster asset check per file, grouped in one step per asset and scope."""
    groups: dict[tuple[str, str], list[SqlCheck]] = {}
    for c in load_checks():
        groups.setdefault((c.asset, c.scope), []).append(c)
    return [build_asset_checks(group) for group in groups.values()]
