"""`fm ui`: dagster dev on this project and the instance in FM_HOME."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fm_resources.instance import dagster_instance


def cmd_ui(args) -> int:
    dagster_instance()
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"  # the source tree's (editable install)
    where = ["-w", str(workspace)] if workspace.is_file() else ["-m", "fm_assets.definitions"]
    cmd = [sys.executable, "-m", "dagster", "dev", *where, "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd)  # inherits this process's environment, DAGSTER_HOME included
