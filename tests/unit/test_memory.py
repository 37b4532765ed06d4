"""glibc's mmap threshold, fixed for labelling processes (fm_resources.memory): a freed large block does not make
the next ones come from the heap, in the process and in the processes it starts. Each case runs in a fresh Python
process (the allocator's state is per process, and this one's is not touched)."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the mmap threshold is glibc's (fm_resources.memory does nothing elsewhere)")

# Allocates 2 MiB, frees it, allocates 2 MiB again: how much each allocation added to glibc's mmapped bytes.
# With glibc's dynamic threshold the free raises the threshold above 2 MiB, so the second comes from the heap.
PROBE = """
import json, os, subprocess, sys
import numpy as np
from fm_resources.memory import fix_mmap_threshold, heap
fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
grew = []
for _ in range(2):
    before = heap()["mmapped"]
    block = np.ones(2 << 20, np.uint8)
    grew.append(heap()["mmapped"] - before)
    del block
child = None
if sys.argv[1] == "fix":  # a process this one starts, which calls nothing itself
    child = json.loads(subprocess.run([sys.executable, __file__, "child"], capture_output=True, text=True,
                                      check=True).stdout)
print(json.dumps({"fixed": fixed, "grew": grew, "variable": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
                  "child": child}))
"""


def probe(where: Path, mode: str, **env: str) -> dict:
    script = where / "probe.py"
    script.write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "FM_MMAP_THRESHOLD")}
    out = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_glibc_alone_serves_a_large_block_from_the_heap_after_one_was_freed(tmp_path):
    """The behaviour the fix is for: without it the second 2 MiB block is not mmapped."""
    r = probe(tmp_path, "none")
    assert r["grew"][0] >= 2 << 20
    assert r["grew"][1] < 2 << 20
    assert r["variable"] is None


def test_fixed_threshold_mmaps_every_large_block_here_and_in_child_processes(tmp_path):
    r = probe(tmp_path, "fix")
    assert r["fixed"] == 1 << 20
    assert all(g >= 2 << 20 for g in r["grew"]), r
    assert r["variable"] == str(1 << 20)  # exported for the processes it starts
    assert all(g >= 2 << 20 for g in r["child"]["grew"]), r["child"]


def test_threshold_from_the_environment_and_switched_off(tmp_path):
    r = probe(tmp_path, "fix", FM_MMAP_THRESHOLD=str(4 << 20))  # 4 MiB: 2 MiB blocks stay under it (heap, once raised)
    assert r["fixed"] == 4 << 20 and r["variable"] == str(4 << 20)
    assert r["grew"][1] < 2 << 20
    off = probe(tmp_path, "fix", FM_MMAP_THRESHOLD="0")
    assert off["fixed"] is None and off["variable"] is None and off["grew"][1] < 2 << 20
    # glibc's own variable wins: glibc applied it at start, fm sets nothing over it
    theirs = probe(tmp_path, "fix", MALLOC_MMAP_THRESHOLD_=str(1 << 20))
    assert theirs["fixed"] is None and all(g >= 2 << 20 for g in theirs["grew"])


@pytest.mark.parametrize("caller", ["fm", "detector"])
def test_fm_and_the_detector_resource_fix_it(tmp_path, caller):
    """`fm` fixes it at start; a run that any Dagster process launches (UI, daemon, Celery worker) fixes it when
    its detector resource is set up, before the first frame."""
    code = {
        "fm": "import sys\nfrom fm_assets.cli import entry_point\nsys.argv = ['fm', '--help']\n"
              "try:\n    entry_point()\nexcept SystemExit:\n    pass\n",
        "detector": "from dagster import build_init_resource_context\n"
                    "from fm_resources.detection.resource import DetectorResource\n"
                    "DetectorResource().setup_for_execution(build_init_resource_context())\n",
    }[caller] + "import os\nprint('VALUE', os.environ.get('MALLOC_MMAP_THRESHOLD_'))\n"
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "FM_MMAP_THRESHOLD")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), "FM_HOME": str(tmp_path)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"VALUE {1 << 20}" in out.stdout.splitlines()
