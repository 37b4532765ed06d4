"""`fm sql`, `fm db` and `fm compact`: the label lake through DuckDB."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from fm_assets.cli.console import print_frame


def cmd_sql(args) -> int:
    import duckdb

    from fm_assets.definitions import defs

    if bool(args.file) == bool(args.query):
        print("fm sql: give a query or -f FILE (one of them)", file=sys.stderr)
        return 2
    query = Path(args.file).read_text() if args.file else args.query
    wh = defs.resources["warehouse"]
    try:
        refused = None if getattr(args, "allow_write", False) else write_refusal(query)
    except duckdb.Error as exc:  # a query DuckDB cannot even parse
        print(f"fm sql: {exc}", file=sys.stderr)
        return 1
    if refused:
        print(f"fm sql: refused: {refused}. `fm sql` is read-only by default (the lake opens through read-only "
              "views); --allow-write lifts this", file=sys.stderr)
        return 2
    try:
        df = wh.query(query)
    except duckdb.Error as exc:
        print(f"fm sql: {exc}", file=sys.stderr)
        if "does not exist" in str(exc):
            print(f"fm sql: tables with data: {', '.join(wh.tables()) or 'none yet (run `fm run` first)'}", file=sys.stderr)
        return 1
    print_frame(df, args.format)
    return 0


READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA", "SET", "VARIABLE_SET", "CALL")
_TARGET = re.compile(r"\bTO\s+'((?:[^']|'')*)'", re.IGNORECASE)
_EXPORT_TARGET = re.compile(r"^\s*EXPORT\s+DATABASE\s+(?:\w+\s+TO\s+)?'((?:[^']|'')*)'", re.IGNORECASE)


def write_refusal(query: str) -> str | None:
    """Why `fm sql` refuses a query without --allow-write (None: it may run): anything but reading (SELECT,
    EXPLAIN, PRAGMA, SET, CALL), and COPY ... TO / EXPORT DATABASE into FM_HOME or the lake. Statements are
    told apart by DuckDB's own parser, not by keywords in the text."""
    import duckdb

    from fm_resources.settings import fm_home, lake_root

    protected = [fm_home(), lake_root()]
    for st in duckdb.extract_statements(query):
        kind = st.type.name
        if kind in READ_ONLY_STATEMENTS:
            continue
        if kind in ("COPY", "EXPORT"):
            m = (_TARGET if kind == "COPY" else _EXPORT_TARGET).search(st.query)
            if m is None:
                return f"{kind} without a file target (COPY ... FROM writes into a table)"
            target = m.group(1).replace("''", "'")
            if not any(inside(target, root) for root in protected):
                continue
            return f"{kind} to {target!r} writes inside FM_HOME or the lake"
        return f"{kind} statements write"
    return None


def inside(target: str, root: str | Path) -> bool:
    """Whether a path (or s3:// URI) lies in root (a folder or s3:// prefix)."""
    root = str(root)
    if target.startswith("s3://") or root.startswith("s3://"):
        return target.rstrip("/").startswith(root.rstrip("/"))
    t, r = Path(os.path.abspath(target)).resolve(), Path(root).resolve()
    return t == r or r in t.parents


def write_duckdb(out: Path | None = None) -> tuple[Path, list[str]]:
    """A DuckDB database file holding the lake's views (atomically replaced), for DuckDB clients, notebooks and
    BI tools; `fm run` refreshes it so new tables show up. Tables with many files changed since their last
    compaction (FM_COMPACT_MIN_CHANGED) are compacted first, so the views read a few large parts."""
    from fm_assets.definitions import defs
    from fm_resources.settings import compact_min_changed, fm_home

    defs.resources["warehouse"].compact(min_changed=compact_min_changed())
    out = out or fm_home() / "fm.duckdb"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # one per process: `fm` commands may run at once
    tmp.unlink(missing_ok=True)
    with defs.resources["warehouse"].connect(database=str(tmp)) as con:
        views = [r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
    os.replace(tmp, out)
    return out, views


def cmd_db(args) -> int:
    out, views = write_duckdb(Path(args.out) if args.out else None)
    print(f"wrote {out} with views: {', '.join(views) or 'none (run `fm run` first)'}")
    print(f"open it with: duckdb {out}  (or duckdb.connect({str(out)!r}, read_only=True) in Python)")
    return 0


def cmd_compact(args) -> int:
    import duckdb

    from fm_assets.definitions import defs
    from fm_assets.defs.maintenance import report_lines

    try:
        report = defs.resources["warehouse"].compact(args.table or None, min_changed=args.min_changed)
    except ValueError as exc:
        print(f"fm compact: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # e.g. a damaged file in the lake: nothing of that table's compaction is kept
        print(f"fm compact: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report_lines(report)) or "fm compact: no per-video tables in the lake yet (run `fm run` first)")
    return 0
