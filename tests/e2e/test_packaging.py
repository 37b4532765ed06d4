"""The distribution ships what the graph needs: a wheel built from the project holds sql/ as `fm_sql` (views,
checks, reports) and the prompt files, and the graph loaded from a NON-editable install of it (not this source
tree) has every quality check."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (whl,) = out.glob("foundation_motion_pipeline-*.whl")
    return whl


def test_the_wheel_holds_every_sql_file_and_prompt(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("views", "checks", "reports"):
        source = sorted(p.name for p in (ROOT / "sql" / kind).glob("*.sql"))
        assert source, kind
        assert {f"fm_sql/{kind}/{n}" for n in source} <= names, kind
    prompts = sorted(p.name for p in (ROOT / "fm_assets" / "labels" / "prompts").glob("*.md"))
    assert prompts and {f"fm_assets/labels/prompts/{n}" for n in prompts} <= names


def test_a_non_editable_install_loads_every_check(wheel, tmp_path):
    """Install the wheel into its own folder and load the code location from there, in a fresh interpreter whose
    working directory is not the source tree: every sql/checks file is an asset check of the graph."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    code = (
        "import json, fm_assets, fm_sql, fm_assets.definitions as d\n"
        "from fm_resources.warehouse import sql_dir\n"
        "checks = sorted(k.name for c in d.defs.asset_checks for k in c.check_keys)\n"
        "print(json.dumps({'fm_assets': fm_assets.__file__, 'sql_dir': str(sql_dir()), 'checks': checks}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "FM_HOME": str(tmp_path / "home"),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["fm_assets"]).is_relative_to(target), got["fm_assets"]  # the installed copy, not the source
    assert Path(got["sql_dir"]).is_relative_to(target), got["sql_dir"]
    expected = sorted(p.stem for p in (ROOT / "sql" / "checks").glob("*.sql"))
    assert len(expected) >= 10 and got["checks"] == expected


def test_an_empty_checks_folder_stops_the_load(tmp_path):
    """FM_SQL_DIR pointing at SQL without checks: loading the graph fails and says why (never zero checks)."""
    (tmp_path / "sql" / "checks").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "FM_SQL_DIR": str(tmp_path / "sql"), "FM_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", "import fm_assets.definitions"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "ChecksMissing" in proc.stderr and "has no .sql files" in proc.stderr
