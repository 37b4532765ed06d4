"""The fault-injection suite's shared pieces: three small videos, ONE clean run of them (the baseline every case
compares its row counts with), and helpers to run the real `fm` command, read the lake's row counts per video
per table straight from its Parquet files, and check that an instance is usable after a fault.

Every case uses real processes: `fm` in a subprocess (killed with SIGKILL, interrupted with SIGINT), a real S3
server (moto) behind a TCP proxy process that is stopped and restarted, a real HTTP LLM server that hangs, fails
or answers garbage, a real tmpfs mount for a full disk. Each case asserts the user-visible outcome, the status
of every video, no half-written or duplicated rows (row counts per video per table against the clean run) and
that the instance works afterwards; each records its time to recover in FAULT_TABLE, printed at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import FM, ROOT

TABLES = ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs")
FAULT_TABLE: list[tuple[str, str, str]] = []  # (case, outcome, time to recover), printed by pytest_terminal_summary


def record(case: str, outcome: str, seconds: float | None) -> None:
    FAULT_TABLE.append((case, outcome, "-" if seconds is None else f"{seconds:.1f} s"))


def pytest_terminal_summary(terminalreporter):
    if FAULT_TABLE:
        terminalreporter.write_sep("-", "fault-injection cases")
        for case, outcome, recover in FAULT_TABLE:
            terminalreporter.write_line(f"{case:<34} | {recover:>8} | {outcome}")


def clean_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_", "AWS_"))}
    return {**env, "FM_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


def fm(*args: str, home: Path, timeout: float = 300, prefix: list[str] = (), **env: str):
    """Run `fm ARGS` against FM_HOME=home; returns (CompletedProcess, seconds)."""
    started = time.monotonic()
    proc = subprocess.run([*prefix, FM, *args], capture_output=True, text=True, env=clean_env(home, **env),
                          cwd=ROOT, timeout=timeout)
    return proc, time.monotonic() - started


def spawn(*args: str, home: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([FM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(home, **env), cwd=ROOT)


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]


def lake_counts(lake: Path, tables=TABLES) -> dict[str, dict[str, int]]:
    """{table: {video_id: rows}} from the lake's per-video Parquet files (every file must read: none is
    half-written), plus the rows' own video ids agreeing with their file's."""
    out: dict[str, dict[str, int]] = {}
    for table in tables:
        per_video = {}
        for f in sorted((lake / table).glob("*.parquet")):
            df = pl.read_parquet(f)
            if len(df):
                assert df["video_id"].unique().to_list() == [f.stem], f"{f}: rows of another video"
                if table in ("raw_clips", "captions"):
                    assert df["clip_id"].n_unique() == len(df), f"{f}: duplicated rows"
                if table == "qa_pairs":
                    assert df["qa_id"].n_unique() == len(df), f"{f}: duplicated rows"
            per_video[f.stem] = len(df)
        out[table] = per_video
    return out


def statuses(lake: Path) -> dict[str, str]:
    files = sorted((lake / "videos").glob("*.parquet"))
    if not files:
        return {}
    df = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    return dict(zip(df["video_id"].to_list(), df["status"].to_list()))


def same_counts(got: dict, want: dict, videos: list[str]) -> None:
    for table in TABLES:
        for v in videos:
            assert got[table].get(v) == want[table].get(v), (table, v, got[table].get(v), want[table].get(v))


def usable(home: Path, video: Path) -> float:
    """The instance works after the fault: `fm doctor` finds nothing to fix and a run of one video succeeds;
    returns that run's seconds."""
    doctor, _ = fm("doctor", home=home, timeout=120)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    proc, seconds = fm("run", str(video), "--until", "raw_clips", "-q", home=home, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 of 1 video(s) materialized" in proc.stderr
    return seconds


@pytest.fixture(scope="session")
def fault_videos(tmp_path_factory) -> Path:
    """Three synthetic scenes with known motion (tracks and questions), world-readable."""
    from fm_assets.synthetic import render_scene, scene_by_name

    out = Path(tempfile.mkdtemp(prefix="fm-faults-videos-"))
    for name, scene in (("alpha", "left_right"), ("bravo", "back_and_forth"), ("charlie", "ordered_pair")):
        rendered = render_scene(scene_by_name(scene), out / "render")
        shutil.copyfile(rendered.mp4, out / f"{name}.mp4")
        os.chmod(out / f"{name}.mp4", 0o644)
    shutil.rmtree(out / "render")
    os.chmod(out, 0o755)
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def baseline(fault_videos, tmp_path_factory) -> dict:
    """The clean run every case compares with: `fm run` of the three videos on a fresh FM_HOME."""
    home = tmp_path_factory.mktemp("baseline")
    proc, seconds = fm("run", str(fault_videos), "-q", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = lake_counts(home / "lake")
    ids = sorted(counts["videos"])
    assert len(ids) == 3 and all(counts["raw_clips"][v] > 0 for v in ids)
    assert all(counts["qa_pairs"][v] > 0 for v in ids), counts["qa_pairs"]
    assert set(statuses(home / "lake").values()) == {"ok"}
    return {"home": home, "counts": counts, "ids": ids, "seconds": seconds,
            "by_name": {v.rsplit("-", 1)[0]: v for v in ids}}


@pytest.fixture
def world_dir():
    """A fresh folder any user may write (for `fm` run as an unprivileged user when the tests run as root)."""
    d = Path(tempfile.mkdtemp(prefix="fm-faults-"))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def unprivileged() -> list[str]:
    """A command prefix that runs as `nobody` when the tests run as root (root reads files of any mode, so
    `chmod 000` would not make a file unreadable), else nothing."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def python_of_fm() -> str:
    return sys.executable
