"""`fm run` on a folder of bad and unusual input files (tests/conftest.py bad_files) keeps going: every video
materializes with its status, and nothing is half-written."""

from tests.conftest import run_fm


def test_fm_run_on_a_folder_of_bad_files_keeps_going(bad_files, fm_home):
    paths, _ = bad_files
    folder = paths["good"].parent
    proc = run_fm("run", str(folder), "--until", "raw_clips", home=fm_home)
    assert proc.returncode == 0, proc.stderr
    assert "9 of 9 video(s) materialized" in proc.stderr
    out = run_fm("sql", "--format", "csv", "select status, count(*) n from videos group by 1 order by 1", home=fm_home)
    assert out.stdout.splitlines() == ["status,n", "error,3", "ok,4", "skipped,2"]
    leftovers = [p for p in (fm_home / "lake").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
