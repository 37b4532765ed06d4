"""DuckDB over the label lake: one view per asset from sql/views/<asset>.sql, and the sql/ files as queries."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
from dagster import ConfigurableResource

from fm_resources.lake import Lake

SQL_DIR = Path(os.environ.get("FM_SQL_DIR", Path(__file__).resolve().parents[1] / "sql"))


def sql_file(relpath: str) -> str:
    return (SQL_DIR / relpath).read_text()


class Warehouse(ConfigurableResource):
    """Opens DuckDB with a view per materialized asset (an S3 lake is mirrored locally first)."""

    lake: Lake
    database: str = ":memory:"

    def tables(self) -> list[str]:
        return sorted(p.stem for p in (SQL_DIR / "views").glob("*.sql") if self.lake.list(p.stem))

    def connect(self, read_only_lake: bool = True) -> duckdb.DuckDBPyConnection:
        names = self.tables()
        root = self.lake.mirror(names)
        con = duckdb.connect(self.database)
        con.execute("SET enable_progress_bar = false")
        quoted = str(root).replace("'", "''")
        for name in names:
            con.execute(sql_file(f"views/{name}.sql").replace("{lake}", quoted))
        return con

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect() as con:
            rel = con.sql(sql, params=params) if params else con.sql(sql)
            return rel.pl() if rel is not None else pl.DataFrame()
