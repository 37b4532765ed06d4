"""`fm compact` and `fm db` through the real `fm` console script, then the nightly `compact_lake` job run as Dagster
runs it: the report, bad table names, a damaged file (nothing half-written), the FM_COMPACT_MIN_CHANGED threshold."""

import json

from dagster import DagsterInstance

from fm_assets.defs.maintenance import compact_lake
from fm_resources.warehouse import COMPACT_DIR, Warehouse
from tests.conftest import run_fm
from tests.helpers import compaction_lake as _lake
from tests.helpers import detection_rows as _video


def test_fm_compact_and_the_nightly_job(fm_home, tmp_path):
    lake = _lake(fm_home / "lake")
    out = run_fm("compact", "--table", "detections", home=fm_home)
    assert out.returncode == 0, out.stderr
    assert "detections: 6 files (6 changed) -> 1 part(s), 21 rows" in out.stdout and "qa_pairs" not in out.stdout
    bad = run_fm("compact", "--table", "nope", home=fm_home)
    assert bad.returncode == 2 and "not a per-video table with files in the lake: nope" in bad.stderr
    before = lake.list(COMPACT_DIR)
    (fm_home / "lake" / "qa_pairs" / "v8.parquet").write_bytes(b"not parquet")  # a damaged file
    broken = run_fm("compact", "--table", "qa_pairs", home=fm_home)
    assert broken.returncode == 1 and "fm compact:" in broken.stderr and "v8.parquet" in broken.stderr
    assert "Traceback" not in broken.stderr and lake.list(COMPACT_DIR) == before  # nothing half-written
    (fm_home / "lake" / "qa_pairs" / "v8.parquet").unlink()
    # `fm db` compacts only tables with FM_COMPACT_MIN_CHANGED changed files (default 256): qa_pairs is left.
    assert run_fm("db", home=fm_home).returncode == 0
    assert not lake.exists(f"{COMPACT_DIR}/qa_pairs/manifest.json")
    assert run_fm("db", home=fm_home, env={"FM_COMPACT_MIN_CHANGED": "6"}).returncode == 0
    assert lake.exists(f"{COMPACT_DIR}/qa_pairs/manifest.json")
    # The scheduled job, run as Dagster runs it, with the project's resources.
    lake.write_parquet("detections/v7.parquet", _video("v7", 7))
    instance = DagsterInstance.ephemeral()
    res = compact_lake.execute_in_process(resources={"warehouse": Warehouse(lake=lake)}, instance=instance)
    assert res.success
    logs = [e.user_message for e in instance.all_logs(res.run_id) if "detections:" in e.user_message]
    assert any("7 files (1 changed) -> 1 part(s), 28 rows" in m for m in logs), logs
    assert json.loads((fm_home / "lake" / COMPACT_DIR / "detections" / "manifest.json").read_text())["rows"] == 28
