"""The code location: loads without warnings, and the graph has the expected shape."""

import subprocess
import sys

from dagster import AssetKey, DefaultSensorStatus

from tests.conftest import ROOT


def test_code_location_loads_without_warnings(tmp_path):
    code = (
        "import dagster\n"
        "from fm_assets.definitions import defs\n"
        "dagster.Definitions.validate_loadable(defs)\n"
        "print('loaded')\n"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "loaded" and "Warning" not in proc.stderr


def test_workspace_yaml_validates(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        capture_output=True, text=True, cwd=tmp_path, env={"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Validation successful for code location fm" in proc.stdout + proc.stderr


def test_graph_shape():
    from fm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assert graph.get_all_asset_keys() >= {AssetKey("videos"), AssetKey("raw_clips")}
    for key in (AssetKey("videos"), AssetKey("raw_clips")):
        assert graph.get(key).partitions_def.name == "videos"
    sensor = defs.resolve_sensor_def("new_videos_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.job_name == "label_videos"
