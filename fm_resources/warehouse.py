"""DuckDB over the label lake: one view per asset from sql/views/<asset>.sql, the sql/ files as queries, and
the compaction of the per-video tables for whole-lake queries."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from dagster import ConfigurableResource

from fm_resources.lake import Lake
from fm_resources.settings import fm_home, sql_dir

COMPACT_DIR = "_compact"  # <lake>/_compact/<table>/: compacted parts of the per-video tables (Warehouse.compact)
SOURCE = "_fm_source"  # the column of a compacted part naming the lake file each row came from
ROW_GROUPS_PER_PART = 8  # DuckDB writes row groups of 122,880 rows: about 1M rows per part
_manifests: dict[str, tuple[tuple[int, int, int], dict]] = {}  # path -> (inode, size, mtime_ns), parsed manifest
_shared: dict[int, duckdb.DuckDBPyConnection] = {}  # pid -> the process's shared in-memory database (shared_connection)
_shared_lock = threading.Lock()


def _new_lock_in_child() -> None:  # a lock held by another thread at fork time would never be released in the child
    global _shared_lock
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def sql_file(relpath: str) -> str:
    return (sql_dir() / relpath).read_text()


def lit(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def files_sql(source: str | list[str]) -> str:
    """A glob or a list of files as a DuckDB literal."""
    return lit(source) if isinstance(source, str) else "[" + ", ".join(lit(p) for p in source) + "]"


def parquet_sql(source: str | list[str]) -> str:
    return f"read_parquet({files_sql(source)}, union_by_name = true)"


def compacted_sql(parts: list[str], stale: list[str], fresh: list[str]) -> str:
    """The rows of a compacted table: its parts without the rows of files that changed or went away since the
    compaction, plus the files written since (new, or rewritten by a later materialization)."""
    # NOT IN over a subquery: DuckDB plans it as a hash anti-join. A constant NOT IN list (DuckDB 2.0.1) halves the
    # time of a plain scan with 100 stale files, but it grows with the list (slower from ~400 files) and, pushed
    # into the Parquet scan next to a join's filters, made qa_grounded_targets take 2.7 s instead of 0.7 s.
    where = f" WHERE {SOURCE} NOT IN (SELECT unnest([{', '.join(lit(k) for k in stale)}]))" if stale else ""
    rel = f"SELECT * EXCLUDE ({SOURCE}) FROM {parquet_sql(parts)}{where}"
    if fresh:
        rel += f" UNION ALL BY NAME SELECT * FROM {parquet_sql(fresh)}"
    return f"({rel})"


def view_sql(name: str, source: str | list[str], relation: str | None = None) -> str:
    """sql/views/<name>.sql with its placeholder filled: `{parquet}` by the relation over the table's Parquet
    files (`read_parquet(files, union_by_name = true)`, or `relation` when the table is compacted), `{files}`
    by a glob or a list of files (for the JSON logs)."""
    return (sql_file(f"views/{name}.sql").replace("{parquet}", relation or parquet_sql(source))
            .replace("{files}", files_sql(source)))


def shared_connection() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's shared in-memory DuckDB database (a forked child makes its own).
    Opening a new database costs about 15 ms (DuckDB registers its built-in functions anew); a connection to an
    open one, nothing. Objects created through it are visible to the other connections, except TEMP ones: the
    warehouse creates its views there as TEMP views. Nothing read is kept from one connection to the next: the
    database's file caches (file contents, Parquet metadata) are off, so a file rewritten in between is read anew."""
    with _shared_lock:
        db = _shared.get(os.getpid())
        if db is None:  # (after a fork, the parent's database is left alone: neither used nor closed here)
            db = duckdb.connect(":memory:")
            for setting in ("enable_external_file_cache", "parquet_metadata_cache"):
                with contextlib.suppress(duckdb.Error):  # settings of DuckDB 1.3+ / 0.9+: absent ones are off anyway
                    db.execute(f"SET GLOBAL {setting} = false")
            _shared[os.getpid()] = db
        return db.cursor()


def temporary(sql: str) -> str:
    """A sql/views file's statement, creating a TEMP view instead (visible to its own connection only)."""
    out, n = re.subn(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?VIEW\b", "CREATE OR REPLACE TEMP VIEW", sql, count=1,
                     flags=re.IGNORECASE | re.MULTILINE)
    if n != 1:
        raise ValueError(f"a view file must start a line with CREATE [OR REPLACE] VIEW: {sql[:200]!r}")
    return out


def view_files(name: str) -> str:
    """The lake files a view reads, relative to the lake root: `<name>/*.parquet` unless the view file says
    otherwise in a `-- files: <glob>` line (e.g. the LLM call log under _cache/llm)."""
    for line in sql_file(f"views/{name}.sql").splitlines():
        if line.startswith("-- files:"):
            return line.split(":", 1)[1].strip()
    return f"{name}/*.parquet"


def files_prefix(glob: str) -> str:
    return glob.split("*", 1)[0].rstrip("/")


def named_tables(sql: str) -> set[str]:
    """The lake views a query mentions (every sql/views name that occurs in it as a word)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql.lower()))
    return {p.stem for p in (sql_dir() / "views").glob("*.sql")} & words


def per_video_table(name: str) -> bool:
    """Tables stored as one Parquet file per video partition (what compaction rewrites)."""
    return name != "splits" and view_files(name) == f"{name}/*.parquet"


@contextlib.contextmanager
def compaction_lock() -> Iterator[None]:
    """One compaction at a time per FM_HOME (an flock on $FM_HOME/.fm-compact.lock): two `fm run` compacting at
    once would each delete the other's new generation while its manifest names it. The second one waits, then
    finds the tables compacted (nothing changed since) and leaves them."""
    home = fm_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".fm-compact.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Warehouse(ConfigurableResource):
    """Opens DuckDB with a view per materialized asset (an S3 lake is mirrored locally first), and compacts
    the lake's per-video tables for whole-lake queries."""

    lake: Lake
    database: str = ":memory:"

    def tables(self, only: set[str] | None = None) -> list[str]:
        """The views (of `only`, or all) whose files exist in the lake."""
        return sorted(p.stem for p in (sql_dir() / "views").glob("*.sql")
                      if (only is None or p.stem in only) and self.lake.has_files(files_prefix(view_files(p.stem))))

    def compaction(self, name: str) -> dict | None:
        """The manifest of the table's latest compaction, or None (not to be modified: on a local lake, the same
        parsed manifest is returned while its file is unchanged, as every connection reads it)."""
        key = f"{COMPACT_DIR}/{name}/manifest.json"
        if self.lake.remote:
            return self.lake.read_json(key) if self.lake.exists(key) else None
        path = self.lake.local_path(key)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)  # a new manifest is a new file (written, then renamed)
        cached = _manifests.get(str(path))
        if cached is None or cached[0] != stamp:
            if len(_manifests) > 64:
                _manifests.clear()
            cached = _manifests[str(path)] = (stamp, json.loads(path.read_bytes()))
        return cached[1]

    def connect(self, partitions: list[str] | None = None, database: str | None = None,
                only: set[str] | None = None, shared: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table in the lake; with `partitions`, the per-video tables
        show only those videos' files (what a per-partition check looks at). A compacted table reads its few
        compacted parts, minus the files rewritten or deleted since, plus the files written since (so a view
        is always exactly the lake's current files). Logs (views whose files are JSON, like llm_calls) exist
        even when empty, so reports over them always run. With `only`, just those views (what one query
        names: see `named_tables`). With `shared` (and no database file), a connection to the process's shared
        in-memory database (see `shared_connection`), its views TEMP views: for read-only queries, like the
        checks; tables a query creates there would outlive the connection."""
        if partitions is None:
            names = self.tables(only)
        else:  # only the per-video tables (their files for these videos, fetched below without listing) and splits
            views = [p.stem for p in sorted((sql_dir() / "views").glob("*.sql")) if only is None or p.stem in only]
            names = [n for n in views if per_video_table(n)] + self.tables({"splits"} & set(views))
        manifests = {n: m for n in names if partitions is None and per_video_table(n) and (m := self.compaction(n))}
        if partitions is None:
            root = self.lake.mirror([files_prefix(view_files(n)) for n in names] + [f"{COMPACT_DIR}/{n}" for n in manifests])
        else:  # an S3 lake: fetch just these videos' files
            root = self.lake.mirror([n for n in names if n == "splits"],
                                    keys=[f"{n}/{k}.parquet" for n in names if n != "splits" for k in partitions])
        shared = shared and (database or self.database) == ":memory:"
        con = shared_connection() if shared else duckdb.connect(database or self.database)
        create = temporary if shared else (lambda sql: sql)
        con.execute("SET enable_progress_bar = false")
        for name in names:
            source, relation = f"{root}/{view_files(name)}", None
            if partitions is not None and name != "splits":
                files = [p for p in (root / name / f"{k}.parquet" for k in partitions) if p.exists()]
                if not files:
                    continue
                source = [str(p) for p in files]
            elif name in manifests:
                sources, current = manifests[name]["sources"], self.lake.stamps(name)
                stale = sorted(k for k, stamp in sources.items() if current.get(k) != stamp)  # rewritten or gone
                fresh = sorted(k for k, stamp in current.items() if sources.get(k) != stamp)  # rewritten or new
                relation = compacted_sql([str(root / k) for k in manifests[name]["parts"]], stale,
                                         [str(root / k) for k in fresh])
            con.execute(create(view_sql(name, source, relation)))
        for p in sorted((sql_dir() / "views").glob("*.sql")) if partitions is None else ():
            if p.stem not in names and view_files(p.stem).endswith(".json") and (only is None or p.stem in only):
                empty = fm_home() / "cache" / "empty.json"
                if not empty.exists():
                    empty.parent.mkdir(parents=True, exist_ok=True)
                    empty.write_text("")
                con.execute(create(view_sql(p.stem, str(empty))))
        return con

    def compact(self, tables: list[str] | None = None, min_changed: int = 1) -> dict[str, dict]:
        """Rewrite each per-video table (one file per video) into a few large Parquet parts, so whole-lake
        queries (the dataset checks, reports, `fm sql`) open a handful of files instead of one per video.

        Per table: the files' stamps (size and mtime, or the S3 ETag) are taken first, then DuckDB copies
        every row, with the file it came from, into `_compact/<table>/<generation>/part-NNNN.parquet`, and
        `_compact/<table>/manifest.json` (written last, atomically) names the parts and the stamps they
        cover. The per-video files stay the source of truth: a file rewritten or deleted later is read
        directly and its old rows are left out of the parts (see `connect`). The previous generation is kept
        (for connections opened before the swap), older ones are deleted. A table whose files did not change
        since its last compaction (or with fewer than `min_changed` files new, rewritten or deleted since) is
        left as it is."""
        names = [n for n in self.tables() if per_video_table(n) and (tables is None or n in tables)]
        unknown = sorted(set(tables or ()) - set(names))
        if unknown:
            raise ValueError(f"not a per-video table with files in the lake: {', '.join(unknown)}")
        with compaction_lock():
            return self._compact(names, min_changed)

    def _compact(self, names: list[str], min_changed: int) -> dict[str, dict]:
        root = self.lake.mirror(names)
        report = {}
        for name in names:
            started = time.perf_counter()
            current, old = self.lake.stamps(name), self.compaction(name)
            before = old["sources"] if old else {}
            changed = sum(before.get(k) != current.get(k) for k in before.keys() | current.keys())  # new, rewritten, gone
            if changed == 0 or changed < min_changed:
                report[name] = {"files": len(current), "changed_files": changed,
                                "parts": len(old["parts"]) if old else 0, "rows": old["rows"] if old else None,
                                "seconds": time.perf_counter() - started, "compacted": False}
                continue
            generation = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            prefix = len(str(root)) + 2  # DuckDB's substr is 1-based: the key after "<root>/"
            scratch = fm_home() / "cache"
            scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=scratch, prefix=f".compact-{name}-") as tmp, duckdb.connect() as con:
                con.execute("SET enable_progress_bar = false")
                rows = con.execute(  # COPY returns the number of rows it wrote
                    f"COPY (SELECT * REPLACE (substr({SOURCE}, {prefix}) AS {SOURCE}) FROM read_parquet("
                    f"{files_sql([str(root / k) for k in sorted(current)])}, union_by_name = true, filename = '{SOURCE}')) "
                    f"TO {lit(Path(tmp) / 'parts')} (FORMAT parquet, COMPRESSION zstd, ROW_GROUPS_PER_FILE {ROW_GROUPS_PER_PART})"
                ).fetchall()[0][0]
                parts = []
                for i, f in enumerate(sorted((Path(tmp) / "parts").glob("*.parquet"))):
                    key = f"{COMPACT_DIR}/{name}/{generation}/part-{i:04d}.parquet"
                    self.lake.write_bytes(key, f.read_bytes())
                    parts.append(key)
            self.lake.write_json(f"{COMPACT_DIR}/{name}/manifest.json", {
                "table": name, "generation": generation, "parts": parts, "rows": rows, "sources": current,
                "created": datetime.now(UTC).isoformat()})
            keep = {generation} | ({old["generation"]} if old else set())
            for key in self.lake.list(f"{COMPACT_DIR}/{name}"):
                gen = key.split("/")[2] if key.count("/") >= 3 else None
                if gen is not None and gen not in keep:
                    self.lake.delete(key)
            report[name] = {"files": len(current), "changed_files": changed, "parts": len(parts), "rows": rows,
                            "seconds": time.perf_counter() - started, "compacted": True}
        return report

    def query(self, sql: str, params: list | None = None, only: set[str] | None = None) -> pl.DataFrame:
        """The result of one statement over the lake's views (of `only`, or all) as a polars DataFrame."""
        with self.connect(only=only) as con:
            rel = con.sql(sql, params=params) if params else con.sql(sql)
            return rel.pl() if rel is not None else pl.DataFrame()
