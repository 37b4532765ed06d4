"""DuckDB over the label lake: one view per asset from sql/views/<asset>.sql, and the sql/ files as queries."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
from dagster import ConfigurableResource

from fm_resources.lake import Lake
from fm_resources.settings import fm_home

SQL_DIR = Path(os.environ.get("FM_SQL_DIR", Path(__file__).resolve().parents[1] / "sql"))


def sql_file(relpath: str) -> str:
    return (SQL_DIR / relpath).read_text()


def view_sql(name: str, source: "str | list[str]") -> str:
    """sql/views/<name>.sql with its `{files}` placeholder replaced by a glob or a list of Parquet files."""
    def lit(path: str) -> str:
        return "'" + str(path).replace("'", "''") + "'"

    files = lit(source) if isinstance(source, str) else "[" + ", ".join(lit(p) for p in source) + "]"
    return sql_file(f"views/{name}.sql").replace("{files}", files)


def view_files(name: str) -> str:
    """The lake files a view reads, relative to the lake root: `<name>/*.parquet` unless the view file says
    otherwise in a `-- files: <glob>` line (e.g. the LLM call log under _cache/llm)."""
    for line in sql_file(f"views/{name}.sql").splitlines():
        if line.startswith("-- files:"):
            return line.split(":", 1)[1].strip()
    return f"{name}/*.parquet"


def files_prefix(glob: str) -> str:
    return glob.split("*", 1)[0].rstrip("/")


class Warehouse(ConfigurableResource):
    """Opens DuckDB with a view per materialized asset (an S3 lake is mirrored locally first)."""

    lake: Lake
    database: str = ":memory:"

    def tables(self) -> list[str]:
        return sorted(p.stem for p in (SQL_DIR / "views").glob("*.sql")
                      if self.lake.has_files(files_prefix(view_files(p.stem))))

    def connect(self, partitions: list[str] | None = None, database: str | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table in the lake; with `partitions`, the per-video tables
        show only those videos' files (what a per-partition check looks at). Logs (views whose files are JSON,
        like llm_calls) exist even when empty, so reports over them always run."""
        names = self.tables()
        if partitions is not None:  # only the per-video tables (their files for these videos) and splits
            names = [n for n in names if n == "splits" or view_files(n) == f"{n}/*.parquet"]
        root = self.lake.mirror([files_prefix(view_files(n)) for n in names])
        con = duckdb.connect(database or self.database)
        con.execute("SET enable_progress_bar = false")
        for name in names:
            source = f"{root}/{view_files(name)}"
            if partitions is not None and name != "splits":
                files = [p for p in (root / name / f"{k}.parquet" for k in partitions) if p.exists()]
                if not files:
                    continue
                source = [str(p) for p in files]
            con.execute(view_sql(name, source))
        for p in sorted((SQL_DIR / "views").glob("*.sql")) if partitions is None else ():
            if p.stem not in names and view_files(p.stem).endswith(".json"):
                empty = fm_home() / "cache" / "empty.json"
                if not empty.exists():
                    empty.parent.mkdir(parents=True, exist_ok=True)
                    empty.write_text("")
                con.execute(view_sql(p.stem, str(empty)))
        return con

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect() as con:
            rel = con.sql(sql, params=params) if params else con.sql(sql)
            return rel.pl() if rel is not None else pl.DataFrame()
