"""`fm run` over a folder nothing changed in since Dagster found it up to date answers without loading Dagster
(fm_resources/quickcheck.py), and anything that changed (the environment, a file's mtime, an event written to the
instance from elsewhere, --force, another command) goes through Dagster's plan again. Through the real `fm`
entry point in a subprocess that reports whether Dagster was imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fm_assets.synthetic import render_scene, scene_by_name
from tests.conftest import ROOT

PROBE = ("import sys\nfrom fm_assets.cli import main\nrc = main(sys.argv[1:])\n"
         "print('dagster imported:', 'dagster' in sys.modules, file=sys.stderr)\nsys.exit(rc)")


def fm(*args: str, home, env: dict | None = None) -> tuple[subprocess.CompletedProcess, bool]:
    """`fm ARGS` in a fresh interpreter; (the process, whether it imported Dagster)."""
    full_env = {**os.environ, "FM_HOME": str(home), **(env or {})}
    full_env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full_env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = proc.stderr.strip().splitlines()[-1]
    return proc, imported == "dagster imported: True"


def materializations(home, asset: str) -> int:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return len(instance.fetch_materializations(AssetKey(asset), limit=1000).records)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("quick")
    render_scene(scene_by_name("left_right"), d)
    return d


def test_an_unchanged_folder_is_answered_without_dagster_and_any_change_asks_dagster_again(scene, fm_home):
    first, imported = fm("run", str(scene), "-q", home=fm_home)
    assert imported and "1 of 1 video(s) materialized, 0 failed; status: ok 1" in first.stderr, first.stderr
    second, imported = fm("run", str(scene), "-q", home=fm_home)
    assert not imported, second.stderr
    assert "1 of 1 video(s) materialized, 0 failed (1 up to date, skipped; --force relabels); status: ok 1" \
           in second.stderr

    # the table of `fm run` without -q: the first time from Dagster and the lake, then the same table again
    table, imported = fm("run", str(scene), home=fm_home)
    assert imported and "left_right-" in table.stdout and "(1 up to date" in table.stderr
    again, imported = fm("run", str(scene), home=fm_home)
    assert not imported and "(1 up to date" in again.stderr
    assert again.stdout == table.stdout[table.stdout.index("┏"):]  # the same table (without the progress bar)

    # fm's environment changed: Dagster decides (still up to date), then the quick check answers again
    changed, imported = fm("run", str(scene), "-q", home=fm_home, env={"FM_LLM_SLOTS": "3"})
    assert imported and "(1 up to date" in changed.stderr
    assert not fm("run", str(scene), "-q", home=fm_home, env={"FM_LLM_SLOTS": "3"})[1]

    # the file was touched: listed again, found the same content, up to date
    video = next(scene.glob("*.mp4"))
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched, imported = fm("run", str(scene), "-q", home=fm_home)
    assert imported and "(1 up to date" in touched.stderr

    # an event written to the instance from elsewhere: a captions materialization without fm's data provenance
    # makes captions and what follows stale, and the next run must see it
    from dagster import AssetMaterialization, DagsterInstance

    with DagsterInstance.from_config(str(fm_home / "dagster")) as instance:
        (vid,) = instance.get_dynamic_partitions("videos")
        instance.report_runless_asset_event(AssetMaterialization("captions", partition=vid))
    before = materializations(fm_home, "qa_pairs")
    relabel, imported = fm("run", str(scene), "-q", home=fm_home)
    assert imported and "1 of 1 video(s) materialized, 0 failed; status: ok 1" in relabel.stderr, relabel.stderr
    assert materializations(fm_home, "qa_pairs") == before + 1
    assert not fm("run", str(scene), "-q", home=fm_home)[1]

    # --force never takes the quick answer
    forced, imported = fm("run", str(scene), "-q", "--force", home=fm_home)
    assert imported and materializations(fm_home, "qa_pairs") == before + 2
    assert "up to date" not in forced.stderr
