"""Bad sources: an unreadable file and an unlistable folder, a file replaced at the same path, a deleted file, a
partition re-materialized after its source changed, timestamps with a 10-hour gap or a broken timing table, and
a full disk under the lake."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT
from tests.faults.conftest import (
    clean_env,
    fm,
    lake_counts,
    no_traceback,
    record,
    same_counts,
    statuses,
    unprivileged,
    usable,
)
from tests.media import _pattern, _write_h264

UNTIL = ("--until", "raw_clips")


def materialize_partition(home: Path, video_id: str, dataset: bool = False) -> dict:
    """Run the label job for one existing partition (what the nightly backfill or the UI's Materialize does),
    in a separate process against the same instance; returns {success, status}."""
    code = f"""
import json
from fm_assets.definitions import defs
from fm_resources.instance import dagster_instance
inst = dagster_instance()
res = defs.resolve_job_def('label_videos').execute_in_process(partition_key={video_id!r}, instance=inst,
                                                              raise_on_error=False)
out = {{'success': res.success}}
if {dataset!r}:
    ds = defs.resolve_job_def('build_dataset').execute_in_process(instance=inst, raise_on_error=False)
    out['dataset'] = ds.success
    out['errors'] = [str(e.message) for e in ds.all_events if e.is_failure or 'CHECK' in e.event_type_value]
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(home),
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_unreadable_file_and_unlistable_folder_stop_only_themselves(baseline, fault_videos, world_dir):
    prefix = unprivileged()
    inbox = world_dir / "in"
    inbox.mkdir()
    for name in ("alpha", "bravo", "charlie"):
        shutil.copyfile(fault_videos / f"{name}.mp4", inbox / f"{name}.mp4")
        os.chmod(inbox / f"{name}.mp4", 0o644)
    os.chmod(inbox / "charlie.mp4", 0o000)  # unreadable (for the unprivileged user the test runs fm as)
    locked = inbox / "locked"
    locked.mkdir()
    shutil.copyfile(fault_videos / "alpha.mp4", locked / "delta.mp4")
    os.chmod(locked, 0o000)  # unlistable
    os.chmod(inbox, 0o755)
    home = world_dir / "home"
    proc, seconds = fm("run", str(inbox), *UNTIL, "-q", home=home, prefix=prefix, HOME=str(world_dir))
    os.chmod(locked, 0o755)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr  # something could not be listed: said, and the exit code says so
    assert f"{locked}: cannot list" in proc.stderr, proc.stderr
    assert "3 of 3 video(s) materialized, 0 failed" in proc.stderr, proc.stderr
    status = statuses(home / "lake")
    by = {v.rsplit("-", 1)[0]: (v, s) for v, s in status.items()}
    assert by["alpha"][1] == by["bravo"][1] == "ok" and by["charlie"][1] == "error", status
    errors = pl.read_parquet(home / "lake" / "videos" / f"{by['charlie'][0]}.parquet")["error"][0]
    assert "Permission denied" in errors, errors
    ids = [baseline["by_name"]["alpha"], baseline["by_name"]["bravo"]]
    got = lake_counts(home / "lake", ("videos", "raw_clips"))
    assert all(got["raw_clips"][v] == baseline["counts"]["raw_clips"][v] for v in ids)
    assert got["raw_clips"][by["charlie"][0]] == 0
    record("unreadable file + unlistable folder", "the 2 readable videos labelled; charlie `error` (Permission "
           "denied); the folder named; exit 1", seconds)


def labelled_copies(fault_videos: Path, tmp_path: Path, *run_args: str) -> tuple[Path, Path]:
    """Copies of alpha and bravo in tmp_path/in, labelled by `fm run` (with run_args) into tmp_path/home."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name in ("alpha", "bravo"):
        shutil.copyfile(fault_videos / f"{name}.mp4", inbox / f"{name}.mp4")
    home = tmp_path / "home"
    first, _ = fm("run", str(inbox), *run_args, "-q", home=home)
    assert first.returncode == 0, first.stderr[-3000:]
    return inbox, home


def test_replaced_source_retires_old_labels_and_a_stale_partition_labels_nothing(baseline, fault_videos, tmp_path):
    inbox, home = labelled_copies(fault_videos, tmp_path, *UNTIL)
    old = baseline["by_name"]["alpha"]
    shutil.copyfile(fault_videos / "charlie.mp4", inbox / "alpha.mp4")  # new content at the same path
    again, seconds = fm("run", str(inbox), *UNTIL, "-q", home=home)
    assert again.returncode == 0, again.stderr[-3000:]
    no_traceback(again)
    new = "alpha-" + baseline["by_name"]["charlie"].rsplit("-", 1)[1]
    assert f"({new})" in again.stderr and f"({old})" in again.stderr and "stale" in again.stderr, again.stderr
    lake = home / "lake"
    status = statuses(lake)
    assert status[old] == "stale" and status[new] == "ok", status
    assert not (lake / "raw_clips" / f"{old}.parquet").exists()  # out of the views and exports...
    assert (lake / "_retired" / "raw_clips" / f"{old}.parquet").exists()  # ...but kept
    got = lake_counts(lake, ("videos", "raw_clips"))
    assert got["raw_clips"][new] == baseline["counts"]["raw_clips"][baseline["by_name"]["charlie"]]
    # re-materializing the old partition (a backfill, the UI) checks the sha256 first and labels nothing
    res = materialize_partition(home, old)
    assert res["success"]  # final: not a failed run the nightly backfill would retry forever
    row = pl.read_parquet(lake / "videos" / f"{old}.parquet").row(0, named=True)
    assert row["status"] == "stale" and "changed since it was registered" in row["error"], row
    assert pl.read_parquet(lake / "raw_clips" / f"{old}.parquet").is_empty()
    assert pl.read_parquet(lake / "_retired" / "raw_clips" / f"{old}.parquet").height > 0
    usable(home, inbox / "bravo.mp4")
    record("source replaced at the same path", "old id `stale`, its labels retired; new content its own id; "
           "re-materializing the old id labels nothing", seconds)


def test_deleted_source_is_marked_and_final(baseline, fault_videos, tmp_path):
    inbox, home = labelled_copies(fault_videos, tmp_path)  # the whole graph and the splits
    gone = baseline["by_name"]["bravo"]
    assert gone in pl.read_parquet(home / "lake" / "splits" / "all.parquet")["video_id"].to_list()
    (inbox / "bravo.mp4").unlink()
    doctor, _ = fm("doctor", home=home)
    assert doctor.returncode == 1 and gone in doctor.stdout, doctor.stdout
    clean, seconds = fm("doctor", "--clean", home=home)
    assert clean.returncode == 0 and "1 video(s) marked source_missing" in clean.stdout, clean.stdout
    lake = home / "lake"
    assert statuses(lake)[gone] == "source_missing"
    assert pl.read_parquet(lake / "raw_clips" / f"{gone}.parquet").height > 0  # labels kept
    # a backfill of it records the missing source and succeeds: final, never retried forever
    res = materialize_partition(home, gone, dataset=True)
    assert res["success"] and res["dataset"], res
    row = pl.read_parquet(lake / "videos" / f"{gone}.parquet").row(0, named=True)
    assert row["status"] == "source_missing" and "source not found" in row["error"], row
    splits = pl.read_parquet(lake / "splits" / "all.parquet")
    assert gone not in splits["video_id"].to_list() and baseline["by_name"]["alpha"] in splits["video_id"].to_list()
    assert (lake / "_retired" / "raw_clips" / f"{gone}.parquet").exists()
    usable(home, inbox / "alpha.mp4")
    record("source deleted", "`fm doctor` reports it, --clean marks it source_missing; a backfill of it succeeds "
           "and records it; out of splits", seconds)


def test_pts_gap_is_a_cut_and_broken_timing_is_an_error(tmp_path):
    videos = tmp_path / "in"
    gap = [(_pattern(320, 240, i), i) for i in range(150)] + \
          [(_pattern(320, 240, i), 36000 * 25 + i) for i in range(150, 300)]  # 6 s, a 10-hour hole, 6 s
    _write_h264(videos / "gap.mp4", gap, 320, 240, Fraction(1, 25), Fraction(25))
    _write_h264(videos / "broken.mp4", [(_pattern(320, 240, i), i * 104857) for i in range(3)], 320, 240,
                Fraction(1, 1), Fraction(1))  # 3 frames said to span 58 hours
    home = tmp_path / "home"
    proc, seconds = fm("run", str(videos), *UNTIL, "-q", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_traceback(proc)
    lake = home / "lake"
    by = {v.rsplit("-", 1)[0]: (v, s) for v, s in statuses(lake).items()}
    assert by["gap"][1] == "ok" and by["broken"][1] == "error", by
    broken = pl.read_parquet(lake / "videos" / f"{by['broken'][0]}.parquet")["error"][0]
    assert "broken timing" in broken and "disagree" in broken, broken
    clips = pl.read_parquet(lake / "raw_clips" / f"{by['gap'][0]}.parquet")
    spans = (clips["end_s"] - clips["start_s"]).to_list()
    assert clips.height >= 2 and max(spans) <= 10.0 + 1e-6, spans
    assert not any(c["start_s"] < 10 < c["end_s"] for c in clips.iter_rows(named=True))  # nothing spans the hole
    assert clips["shot_idx"].n_unique() == 2
    record("PTS gap of 10 h / broken timing", "the gap is a cut (clips <= 10 s); 58 h over 3 frames is `error`",
           None)


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int):
    """A tmpfs of size_kb at path (root), else the folder made read-only for an unprivileged `fm`."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                                            capture_output=True).returncode == 0:
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    pytest.skip("cannot mount a tmpfs here (not root or no mount permission)")


def test_full_disk_under_the_lake_fails_videos_cleanly_and_recovers(baseline, fault_videos, tmp_path):
    full_size = sum(f.stat().st_size for f in (baseline["home"] / "lake").rglob("*") if f.is_file())
    lake = tmp_path / "lake"
    home = tmp_path / "home"
    with small_disk(lake, max(64, full_size // 2 // 1024)):
        proc, _ = fm("run", str(fault_videos), "-q", home=home, FM_LAKE=str(lake))
        no_traceback(proc)
        assert proc.returncode == 1, proc.stderr
        assert "No space left on device" in proc.stderr, proc.stderr[-3000:]
        assert "failed" in proc.stderr.splitlines()[-1]
        leftovers = [f for f in lake.rglob(".*") if f.is_file()]
        assert not leftovers, leftovers  # no temp file left behind
        lake_counts(lake)  # every Parquet file in the lake reads: nothing half-written
        subprocess.run(["mount", "-o", "remount,size=65536k", str(lake)], check=True)  # space freed
        again, seconds = fm("run", str(fault_videos), "-q", home=home, FM_LAKE=str(lake))
        assert again.returncode == 0, again.stderr[-3000:]
        assert "3 of 3 video(s) materialized, 0 failed" in again.stderr
        same_counts(lake_counts(lake), baseline["counts"], baseline["ids"])
    record("full disk (tmpfs) under the lake", "videos whose write hit ENOSPC fail in one line, no temp or "
           "half-written file; after freeing space all 3 labelled", seconds)
