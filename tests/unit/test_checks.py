"""Parsing of the label-quality check files (sql/checks): a header must name its severity. The checks as Dagster
asset checks, on clean and planted labels, are in tests/assets/test_checks.py; here, the cases the faster
formulations of some checks (bench/checks_scale.py) must get right, on small tables without Dagster: paths and
tracks stored out of order, duplicate frames, padded and Unicode text, labels with and without synonyms."""

import re

import duckdb
import polars as pl
import pytest

from fm_assets.defs.checks import load_checks, parse_check
from fm_assets.labels.motion_facts import TRAJECTORY_SCHEMA
from fm_assets.labels.schemas import CAPTIONS, QA_PAIRS, RAW_CLIPS, TRACKS

CHECKS = {c.name: c for c in load_checks()}


def test_a_header_without_severity_is_refused(tmp_path):
    bad = tmp_path / "x.sql"
    bad.write_text("-- asset: tracks\n-- scope: partition\nSELECT 1\n")
    with pytest.raises(ValueError, match="severity"):
        parse_check(bad)


def _table(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


def _run(name: str, **tables: pl.DataFrame) -> list[dict]:
    con = duckdb.connect()
    for table, df in tables.items():
        con.register(f"{table}_rows", df)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM {table}_rows")
    return con.sql(CHECKS[name].sql).pl().to_dicts()


def _tracks(*tracks: tuple[int, list[tuple[int | None, float | None]]]) -> pl.DataFrame:
    return _table([{"video_id": "v", "clip_id": "c", "track_id": tid, "frame_idx": f, "t_s": t}
                   for tid, points in tracks for f, t in points], TRACKS)


def test_tracks_time_increasing_orders_the_boxes_itself():
    clean = (1, [(4, 0.16), (0, 0.0), (2, 0.08)])  # stored out of order, increasing once sorted
    assert _run("tracks_time_increasing", tracks=_tracks(clean)) == []
    rows = _run("tracks_time_increasing", tracks=_tracks(
        clean, (2, [(2, 0.08), (0, 0.0), (2, 0.08)]),  # a frame twice
        (3, [(0, 0.0), (2, 0.5), (4, 0.16)]),  # time going back
        (4, [(0, 0.0), (2, float("nan"))]), (5, [(0, None)])))  # NaN and missing times
    got = sorted((r["track_id"], r["frame_idx"], r["prev_frame"]) for r in rows)
    assert got == [(2, 2, 2), (3, 4, 2), (4, 2, 0), (5, 0, None)]


def _paths(*paths: list[tuple[float, float]]) -> pl.DataFrame:
    return _table([{"video_id": "v", "clip_id": "c", "track_id": i, "kept": True,
                    "path": [{"t": t, "ncx": x, "ncy": 0.5, "nw": 0.1, "nh": 0.1} for t, x in p]}
                   for i, p in enumerate(paths)], TRAJECTORY_SCHEMA)


def test_trajectories_jumps_sorts_paths_stored_out_of_order():
    steady_unsorted = [(0.2, 0.3), (0.0, 0.1), (0.1, 0.2)]
    jump_unsorted = [(0.1, 0.9), (0.0, 0.1), (0.2, 0.15)]  # sorted by t: 0.1 -> 0.9 -> 0.15
    jump_sorted = [(0.0, 0.1), (0.1, 0.5), (0.5, 0.9)]  # one jump; the second step is 0.4 s long
    rows = _run("trajectories_jumps", trajectories=_paths(steady_unsorted, jump_unsorted, jump_sorted))
    assert sorted((r["track_id"], r["t0"], r["t"], r["jump"]) for r in rows) == [
        (1, 0.0, 0.1, 0.8), (1, 0.1, 0.2, 0.75), (2, 0.0, 0.1, 0.4)]


def _questions(*texts: str, grounded: bool = False) -> pl.DataFrame:
    return _table([{"video_id": "v", "clip_id": "c", "qa_id": f"q{i}", "question": q, "kept": True,
                    "grounded": grounded} for i, q in enumerate(texts)], QA_PAIRS)


def test_qa_duplicates_ignores_case_and_unicode_padding():
    rows = _run("qa_duplicates", qa_pairs=_questions(
        "Which way?", "\u00a0which WAY?\u3000", " which way? ", "Which way now?", "Ünder?", "ünder?"))
    assert sorted((r["question"], r["copies"], sorted(r["qa_ids"])) for r in rows) == [
        ("which way?", 3, ["q0", "q1", "q2"]), ("ünder?", 2, ["q4", "q5"])]
    assert _run("qa_duplicates", qa_pairs=_questions("Which way?", "Where?")) == []


def test_qa_well_formed_finds_blank_questions_only():
    qa = _questions("\u3000 ", "", " Ünder? ", grounded=True).with_columns(pl.lit("causal").alias("q_type"))
    assert sorted(r["qa_id"] for r in _run("qa_well_formed", qa_pairs=qa)) == ["q0", "q1"]


def _clip_labels(*clips: tuple[str, list[str], str | None]) -> dict[str, pl.DataFrame]:
    return {"raw_clips": _table([{"video_id": "v", "clip_id": c, "kept": True} for c, _, _ in clips], RAW_CLIPS),
            "trajectories": _table([{"video_id": "v", "clip_id": c, "track_id": i, "label": label, "kept": True}
                                    for c, labels, _ in clips for i, label in enumerate(labels)], TRAJECTORY_SCHEMA),
            "captions": _table([{"video_id": "v", "clip_id": c, "caption": text, "status": "ok"}
                                for c, _, text in clips if text is not None], CAPTIONS)}


def test_captions_cover_clips_names_objects_by_word():
    rows = _run("captions_cover_clips", **_clip_labels(
        ("synonym", ["person"], "A Cyclist's bike and two PEOPLE cross."),
        ("unknown label, plural", ["dog"], "Two dogs run left."),
        ("two-word label", ["traffic light", "object"], "The traffic lights stay."),
        ("word inside another", ["car", "dog"], "The cartoon dogma: scars, cars_2 and boxcar."),
        ("blank", ["car"], "\u3000 \u00a0"),
        ("not blank", ["car"], "\u3000car\u00a0"),
        ("no caption row", ["car"], None)))
    got = {r["clip_id"]: r["problem"] for r in rows}
    assert got == {"word inside another": "names none of its objects", "blank": "empty caption",
                   "no caption row": "kept clip without a caption row"}


def test_captions_cover_clips_pattern_lists_the_synonyms():
    """The one-scan pattern of captions_cover_clips must list exactly the words of its synonym lists."""
    sql = CHECKS["captions_cover_clips"].sql
    synonyms = sql[sql.index("synonyms(label, words) AS"):sql.index("), synonym_words AS")]
    words = set(re.findall(r"'([a-z0-9_]+)'", synonyms.split("VALUES", 1)[1])) - {"person", "car", "bicycle", "object"}
    words |= {"person", "car", "bicycle", "object"}  # the labels are words of their own lists
    pattern = re.search(r"'\\b\(\?:([a-z0-9_|]+)\)\\b'", sql).group(1).split("|")
    assert len(pattern) == len(set(pattern)) and set(pattern) == words
