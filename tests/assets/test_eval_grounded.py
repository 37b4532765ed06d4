"""`fm eval grounded` on a synthetic scene materialized through the graph in-process: the largest-moving baseline
through the `fm` argument parser (in this process), the lake's own truth predicting itself, and the scene's tracks
against the renderer's MOTChallenge truth."""

import json

import numpy as np
import polars as pl
import pytest
from PIL import Image

from fm_assets.evaluation.grounded import evaluate, lake_ground_truth


@pytest.fixture(scope="module")
def scene_home(tmp_path_factory):
    """FM_HOME whose lake holds the `ordered_pair` scene materialized through ingest .. qa_pairs in-process."""
    from dagster import DagsterInstance, materialize

    from fm_assets.defs.ingest import ingest
    from fm_assets.defs.language import captions, qa_pairs
    from fm_assets.defs.motion import trajectories
    from fm_assets.defs.perception import tracks
    from fm_assets.synthetic import render_scene, scene_by_name
    from fm_resources.detection.resource import DetectorResource
    from fm_resources.lake import Lake, LakeIOManager
    from fm_resources.llm import LLMResource
    from fm_resources.registry import register_video
    from fm_resources.trackers import TrackerResource
    from fm_resources.video import VideoStore

    home = tmp_path_factory.mktemp("fm_home")
    truth = render_scene(scene_by_name("ordered_pair"), home / "scenes")
    lake = Lake(root=str(home / "lake"))
    instance = DagsterInstance.ephemeral()
    vid = register_video(str(truth.mp4), VideoStore(), lake).video_id
    instance.add_dynamic_partitions("videos", [vid])
    res = materialize([ingest, tracks, trajectories, captions, qa_pairs], partition_key=vid,
                      instance=instance, resources={
                          "lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                          "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource()})
    assert res.success
    return home, lake, vid, truth


def test_baseline_end_to_end_on_a_synthetic_scene(scene_home, tmp_path, monkeypatch, capsys):
    """`fm eval grounded --baseline largest-moving` through the `fm` argument parser, in this process (the lake and
    warehouse resources point at the scene's lake: fm_assets.definitions binds FM_HOME when first imported)."""
    from fm_assets import cli
    from fm_assets.cli import eval_grounded as cli_grounded
    from fm_resources.warehouse import Warehouse

    home, lake, vid, _ = scene_home
    wh = Warehouse(lake=lake)
    qa = wh.query("select * from qa_pairs where grounded and kept order by qa_id")
    assert len(qa) >= 2
    monkeypatch.setenv("FM_HOME", str(home))
    real = cli_grounded.cmd_grounded
    monkeypatch.setattr(cli_grounded, "cmd_grounded", lambda args: real(args, lake=lake, warehouse=wh))
    out = tmp_path / "result.json"
    rc = cli.main(["eval", "grounded", "--baseline", "largest-moving", "--out", str(out), "--run-name", "e2e"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "GroundMoRe J / F / J&F" in printed and "overall" in printed and "eval_grounded/e2e.parquet" in printed
    res = json.loads(out.read_text())
    assert [q["qa_id"] for q in res["questions"]] == qa["qa_id"].to_list()
    assert all(q["status"] == "ok" and q["pred_kind"] == "boxes" for q in res["questions"])
    # the baseline's object: the kept trajectory with the largest mean box area over its whole track
    tracks = wh.query("select * from tracks")
    area = (tracks.with_columns(a=(pl.col("x2") - pl.col("x1")) * (pl.col("y2") - pl.col("y1")))
            .group_by("track_id").agg(pl.col("a").mean()).sort("a", descending=True))
    kept = set(wh.query("select track_id from trajectories where kept")["track_id"].to_list())
    biggest = next(t for t in area["track_id"].to_list() if t in kept)
    preds = home / "eval" / "baseline-largest-moving"
    for q, target in zip(res["questions"], qa["target_track_id"].to_list()):
        doc = json.loads((preds / f"{q['qa_id']}.json").read_text())
        assert doc["track_id"] == biggest and len(doc["frames"]) == 20
        # right object: right inside the window; wrong object: J > 0 only where both masks are empty
        if target == biggest:
            assert q["J"] > 0.2
        else:
            assert q["J"] <= sum(not i for i in q["inside"]) / 20
    s = {row["q_type"]: row for row in res["summary"]}
    assert s["overall"]["questions"] == len(qa)
    assert s["overall"]["JF"] == pytest.approx((s["overall"]["J"] + s["overall"]["F"]) / 2)
    # the lake table and its view
    view = wh.query("select * from eval_grounded where run_name = 'e2e' order by q_type")
    assert len(view) == 5 and set(view["q_type"]) == {"causal", "sequential", "counterfactual", "descriptive",
                                                       "overall"}
    assert view.filter(pl.col("q_type") == "overall")["JF"][0] == pytest.approx(s["overall"]["JF"])
    per_q = lake.read_parquet("eval_grounded/questions/e2e.parquet")
    assert per_q["qa_id"].to_list() == qa["qa_id"].to_list()


def test_the_truth_predicting_itself_scores_100_on_the_scene(scene_home, tmp_path, fm_home):
    from fm_resources.warehouse import Warehouse

    _, lake, _, _ = scene_home
    wh = Warehouse(lake=lake)
    qs, problems = lake_ground_truth(wh.query("select * from qa_pairs"), wh.query("select * from raw_clips"),
                                     wh.query("select * from tracks"), wh.query("select * from detections"))
    assert qs and not problems
    assert any(s is not None and s[0] == "rle" for q in qs for s in q.shapes)  # the motion detector's masks
    for q in qs:
        folder = tmp_path / q.qa_id
        folder.mkdir()
        for i, f in enumerate(q.frames):
            Image.fromarray(q.mask(i).astype(np.uint8)).save(folder / f"{f:05d}.png")
    overall = evaluate(qs, tmp_path)["summary"][-1]
    assert (overall["J"], overall["F"]) == (100.0, 100.0)


def test_scene_tracks_against_the_scene_mot_truth(scene_home, tmp_path, fm_home):
    """`fm export mot`'s files scored by `fm eval mot`'s code against the renderer's MOTChallenge truth."""
    from fm_assets.evaluation.mot import evaluate_dirs
    from fm_assets.export.mot import export_mot
    from fm_resources.warehouse import Warehouse

    _, lake, vid, truth = scene_home
    export_mot(Warehouse(lake=lake).query("select * from tracks"), [vid], tmp_path)
    res = evaluate_dirs(truth.gt.parent, tmp_path)
    (seq,) = [r for r in res["sequences"] if r["sequence"] == "ordered_pair"]
    assert seq["status"] == "ok" and seq["pred_file"].endswith(f"{vid}.txt")
    assert seq["frames"] == 200  # n_frames of ordered_pair.facts.json
    assert seq["MOTA"] > 0.9 and seq["IDF1"] > 0.9 and seq["IDSW"] == 0
