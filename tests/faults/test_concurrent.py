"""Concurrent `fm run` on one FM_HOME, each compacting the lake when it ends (FM_COMPACT_MIN_CHANGED=1): the
compactions take turns (a lock in FM_HOME), so no run deletes the parts another's manifest names. (The 4-process,
fresh-home test of the instance set-up is tests/e2e/test_concurrency.py.)"""

from __future__ import annotations

import json
import time

from tests.faults.conftest import fm, lake_counts, no_traceback, record, spawn


def test_three_runs_at_once_compact_in_turn(baseline, fault_videos, tmp_path):
    home = tmp_path / "home"
    started = time.monotonic()
    procs = [spawn("run", str(fault_videos), "--until", "raw_clips", "-q", home=home, FM_COMPACT_MIN_CHANGED="1")
             for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    seconds = time.monotonic() - started
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert "not refreshed" not in err, err  # fm.duckdb written, compaction included
    lake = home / "lake"
    for table in ("videos", "raw_clips"):
        manifest = json.loads((lake / "_compact" / table / "manifest.json").read_text())
        assert all((lake / part).exists() for part in manifest["parts"]), (table, manifest["parts"])
    got = lake_counts(lake, ("videos", "raw_clips"))
    assert got["raw_clips"] == {v: baseline["counts"]["raw_clips"][v] for v in baseline["ids"]}
    sql, _ = fm("sql", "--format", "json", "select video_id, count(*) as n from raw_clips group by 1 order by 1",
                home=home)
    no_traceback(sql)
    assert {r["video_id"]: r["n"] for r in json.loads(sql.stdout)} == got["raw_clips"]
    record("3 `fm run` at once + compaction", "all exit 0; compactions serialized, every manifest's parts exist; "
           "rows once", seconds)
