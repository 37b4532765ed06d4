"""`fm run`'s quick check (fm_resources/quickcheck.py) on its own: when it applies, what changes the situation and
the instance's state, and that a memo is recalled only for the same situation over an unchanged instance."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import polars as pl
import pytest

from fm_resources import quickcheck
from fm_resources.quickcheck import MEMO, QuickCheck


@pytest.fixture
def home(fm_home: Path, tmp_path: Path) -> Path:
    """An FM_HOME with an instance directory on SQLite, a fm.duckdb and a folder of two 'videos'."""
    (fm_home / "dagster" / "history" / "runs").mkdir(parents=True)
    (fm_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (fm_home / "dagster" / "history" / "runs.db").write_bytes(b"runs")
    (fm_home / "dagster" / "history" / "runs" / "index.db").write_bytes(b"index")
    (fm_home / "fm.duckdb").write_bytes(b"duck")
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).write_bytes(name.encode())
    return fm_home


def begin(videos: Path, code: str = "code-1", until: str | None = None, run_config: dict | None = None,
          quiet: bool = True) -> QuickCheck:
    quick = QuickCheck.begin([str(videos)], code, until, run_config, quiet)
    assert quick is not None
    return quick


def touch(path: Path, ns: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + ns))


def test_it_applies_only_to_local_inputs_and_lake_and_a_sqlite_instance(home, tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    assert QuickCheck.begin([str(videos)], "c", None, None, True) is not None
    assert QuickCheck.begin(["s3://bucket/videos"], "c", None, None, True) is None
    with monkeypatch.context() as m:
        m.setenv("FM_LAKE", "s3://bucket/lake")
        assert QuickCheck.begin([str(videos)], "c", None, None, True) is None
    with monkeypatch.context() as m:
        m.setenv("FM_DAGSTER_PG_URL", "postgresql://fm@127.0.0.1:5432/fm")
        assert QuickCheck.begin([str(videos)], "c", None, None, True) is None
    quick = begin(videos)
    assert quick.instance_state() is not None
    cfg = home / "dagster" / "dagster.yaml"
    cfg.write_text("storage:\n  postgres:\n    postgres_url:\n      env: FM_DAGSTER_PG_URL\n")
    assert quick.instance_state() is None and not quick.settle(lambda: True)  # the history moved to Postgres
    cfg.unlink()
    assert quick.instance_state() is None and not quick.settle(lambda: True)  # no instance yet
    cfg.write_text("telemetry:\n  enabled: false\n")
    assert quick.settle(lambda: True)
    quick.remember(["a-1"], None)
    assert begin(videos).recall() is not None
    (home / "fm.duckdb").unlink()
    assert begin(videos).recall() is None  # a full run writes it again


def test_the_situation_changes_with_code_command_environment_and_inputs(home, tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    base = begin(videos).situation
    assert begin(videos).situation == base  # the same twice
    assert begin(videos, code="code-2").situation != base
    assert begin(videos, until="tracks").situation != base
    assert begin(videos, run_config={"ops": {"trajectories": {"config": {"smooth_s": 0.6}}}}).situation != base
    assert begin(videos, quiet=False).situation != base
    with monkeypatch.context() as m:
        m.setenv("FM_LLM_MODEL", "openai/gpt-4o-mini")
        assert begin(videos).situation != base
    with monkeypatch.context() as m:
        m.setenv("SOME_OTHER_VARIABLE", "1")  # not fm's
        assert begin(videos).situation == base
    assert importlib.metadata.version("dagster") in quickcheck._dagster_version()  # read without importing it
    with monkeypatch.context() as m:  # another Dagster installed (its storage may need migrating)
        m.setattr(quickcheck, "_dagster_version", lambda: '__version__ = "9.9.9"')
        assert begin(videos).situation != base
    touch(videos / "a.mp4", 10**9)
    touched = begin(videos).situation
    assert touched != base
    (videos / "c.mov").write_bytes(b"c")
    assert begin(videos).situation != touched
    (videos / "c.mov").unlink()
    (videos / "notes.txt").write_text("not a video")
    assert begin(videos).situation == touched  # the listing is what fm run would label


def test_the_instance_state_changes_with_every_write_but_not_with_compute_logs(home, tmp_path):
    quick = begin(tmp_path / "videos")
    state = quick.instance_state()
    logs = home / "dagster" / "storage" / "run-1" / "compute_logs"
    logs.mkdir(parents=True)
    (logs / "step.out").write_text("log")
    assert quick.instance_state() == state
    (home / "dagster" / "history" / "runs" / "index.db").read_bytes()  # reading
    assert quick.instance_state() == state
    with open(home / "dagster" / "history" / "runs" / "index.db", "r+b") as fh:  # same size, new contents
        fh.write(b"INDEX")
    assert quick.instance_state() != state
    state = quick.instance_state()
    (home / "dagster" / "history" / "runs" / "run-2.db").write_bytes(b"a new run")
    assert quick.instance_state() != state
    state = quick.instance_state()
    (home / "lake" / "videos").mkdir(parents=True)
    (home / "lake" / "videos" / "a-1.parquet").write_bytes(b"a video's status")  # the lake's videos table
    assert quick.instance_state() != state
    state = quick.instance_state()
    (home / "lake" / "tracks").mkdir(parents=True)
    (home / "lake" / "tracks" / "a-1.parquet").write_bytes(b"tracks")  # written by a Dagster run, which shows
    assert quick.instance_state() == state


def frame() -> pl.DataFrame:
    return pl.DataFrame({"video_id": ["a-1", "b-2"], "status": ["ok", "ok"], "duration_s": [1.5, None]})


def test_a_settled_run_is_recalled_for_the_same_situation_over_the_same_instance(home, tmp_path):
    videos = tmp_path / "videos"
    quick = begin(videos)
    assert quick.recall() is None  # nothing remembered yet
    assert quick.settle(lambda: True)
    quick.remember(["a-1", "b-2"], frame())
    memo = begin(videos).recall()
    assert memo is not None and memo.videos == ["a-1", "b-2"]
    assert memo.frame().equals(frame())
    assert begin(videos, quiet=False).recall() is None  # another command
    touch(home / "dagster" / "history" / "runs.db", 10**6)  # a run written to the instance since
    assert begin(videos).recall() is None


def test_nothing_is_remembered_unless_the_plan_is_empty_and_the_instance_held_still(home, tmp_path):
    videos = tmp_path / "videos"
    quick = begin(videos)
    assert not quick.settle(lambda: False)  # Dagster's plan has work left
    quick.remember(["a-1"], None)
    assert not (home / MEMO).exists()

    def plan_while_a_run_writes() -> bool:
        (home / "dagster" / "history" / "runs" / "run-3.db").write_bytes(b"written meanwhile")
        return True

    assert not quick.settle(plan_while_a_run_writes)
    quick.remember(["a-1"], None)
    assert not (home / MEMO).exists()


def test_an_unreadable_memo_is_no_memo(home, tmp_path):
    videos = tmp_path / "videos"
    quick = begin(videos)
    quick.settle(lambda: True)
    quick.remember(["a-1"], None)
    assert begin(videos).recall().frame() is None
    (home / MEMO).write_text('{"format": 1, "situation": "' + quick.situation + '"')  # cut short
    assert begin(videos).recall() is None
    (home / MEMO).write_text("[]")
    assert begin(videos).recall() is None
