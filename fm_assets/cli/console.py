"""Console output of `fm`: rich tables, CSV / JSON rows, and run reports."""

from __future__ import annotations

import json
import sys


def console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception and its causes in one line, innermost cause included: `Type: message <- Cause: message`."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen and len(parts) < 4:
        seen.add(id(exc))
        text = " ".join(str(exc).split())
        parts.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    line = " <- ".join(parts)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def report_runs(results: list[dict], err) -> list[dict]:
    """Print failed runs and failed checks; returns the failed runs."""
    failed = [r for r in results if not r["success"]]
    for r in results:
        for c in r["failed_checks"]:
            where = r["video_id"] or "dataset"
            err(f"check {c['severity']} {c['check']} on {c['asset']} ({where}): {c['rows']} offending row(s)"
                f" -- see `fm sql -f sql/checks/{c['check']}.sql`")
    for r in failed:
        if r["run_id"] is None:  # it never got a run (e.g. its registration failed)
            err(f"{r['video_id']} failed: {r['error']}")
        else:
            err(f"run {r['run_id']} for {r['video_id'] or 'the dataset'} failed: {r['error']}")
    return failed


def print_frame(df, fmt: str) -> None:
    if fmt == "csv":
        import polars as pl

        nested = [c for c, t in df.schema.items() if t.is_nested()]
        flat = df.with_columns(pl.col(c).map_elements(lambda v: json.dumps(v.to_list() if hasattr(v, "to_list") else v,
                                                                       default=str), return_dtype=pl.String)
                               for c in nested)
        text = flat.write_csv()
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif fmt == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=str, indent=1) + "\n")
    else:
        from rich.table import Table

        table = Table(show_lines=False)
        for c in df.columns:
            table.add_column(c, overflow="fold")
        for row in df.iter_rows():
            table.add_row(*["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row])
        console().print(table)
        console().print(f"{len(df)} row(s)")
