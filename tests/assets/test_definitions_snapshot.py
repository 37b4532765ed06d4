"""A snapshot of the whole code location (fm_assets.definitions.defs), compared exactly with the committed
definitions_snapshot.json next to this file: every asset (group, partitions, deps, pools, backfill policy, automation
condition), every asset check (asset, blocking), the jobs, sensors, schedules and resources. A change to the graph's
shape must be made on purpose: regenerate the file, review its diff, commit it with the change.

    FM_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/assets/test_definitions_snapshot.py

rewrites the file (the test then fails once, asking for the review); the test never rewrites it on its own.

The definitions are loaded in a fresh interpreter with no FM_* variables set (only FM_HOME, to a temporary folder),
so the snapshot holds the defaults (FM_BACKFILL_BATCH, FM_BACKFILL_CRON, FM_COMPACT_CRON, ...) whatever the
environment running the tests sets.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE_VAR = "FM_UPDATE_SNAPSHOT"
REGENERATE = f"{UPDATE_VAR}=1 .venv/bin/python -m pytest tests/assets/test_definitions_snapshot.py"


def _keys(keys) -> list[str]:
    return sorted(k.to_user_string() for k in keys)


def _partitions(pd) -> str | None:
    if pd is None:
        return None
    name = getattr(pd, "name", None)
    return f"{type(pd).__name__}({name})" if name else f"{type(pd).__name__}({pd})"


def describe(defs) -> dict:
    """The shape of a Definitions object as plain, sorted JSON data."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        policy = node.backfill_policy
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "deps": _keys(node.parent_keys),
            "pools": sorted(node.pools or ()),
            "backfill_policy": None if policy is None else {
                "type": policy.policy_type.value, "max_partitions_per_run": policy.max_partitions_per_run},
            "automation_condition": None if condition is None else (condition.get_label() or condition.name),
            "materializable": node.is_materializable,
        }
    checks = sorted(
        ({"name": k.name, "asset": k.asset_key.to_user_string(), "blocking": graph.get_check_spec(k).blocking}
         for k in graph.asset_check_keys),
        key=lambda c: (c["asset"], c["name"]),
    )
    jobs = {}
    for job in sorted(defs.jobs, key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        jobs[job.name] = {
            "assets": _keys(resolved.asset_layer.executable_asset_keys),
            "checks": sorted(k.to_user_string() for k in resolved.asset_layer.asset_graph.asset_check_keys),
            "ops": sorted(resolved.graph.node_names()) if not resolved.asset_layer.executable_asset_keys else [],
            "tags": dict(sorted(resolved.tags.items())),
        }
    sensors = {}
    for sensor in sorted(defs.sensors, key=lambda s: s.name):
        entry = {
            "type": type(sensor).__name__,
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "jobs": sorted(t.job_name for t in sensor.targets),
        }
        if sensor.asset_selection is not None:
            entry["assets"] = _keys(sensor.asset_selection.resolve(graph))
        if hasattr(sensor, "emit_backfills"):
            entry["emit_backfills"] = sensor.emit_backfills
        sensors[sensor.name] = entry
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "default_status": s.default_status.value,
                 "timezone": s.execution_timezone}
        for s in sorted(defs.schedules, key=lambda s: s.name)
    }
    resources = {key: type(value).__name__ for key, value in sorted(defs.resources.items())}
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "sensors": sensors, "schedules": schedules,
            "resources": resources}


def _current(tmp_path: Path) -> dict:
    """describe(fm_assets.definitions.defs) in a fresh interpreter with the default settings."""
    code = ("import json, sys\n"
            "from fm_assets.definitions import defs\n"
            "from tests.assets.test_definitions_snapshot import describe\n"
            "sys.stdout.write(json.dumps(describe(defs)))\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "FM_HOME": str(tmp_path / "home"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _text(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def test_definitions_match_the_committed_snapshot(tmp_path):
    current = _text(_current(tmp_path))
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if current == committed:
        return
    if os.environ.get(UPDATE_VAR) == "1":
        SNAPSHOT.write_text(current)
        pytest.fail(f"{UPDATE_VAR}=1: rewrote {SNAPSHOT.relative_to(ROOT)}. Review the change (git diff) and commit "
                    f"it with the code that caused it, then run the tests again without {UPDATE_VAR}.")
    diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), current.splitlines(keepends=True),
                                        fromfile=f"{SNAPSHOT.name} (committed)", tofile="fm_assets.definitions.defs"))
    pytest.fail(
        f"The code location no longer matches {SNAPSHOT.relative_to(ROOT)}"
        + ("" if committed else " (the file is missing)") + ".\n"
        "If the change to the graph is intended, regenerate the snapshot deliberately, review its diff and commit it:\n"
        f"    {REGENERATE}\n"
        "Otherwise the diff below is what changed by accident:\n" + diff
    )
