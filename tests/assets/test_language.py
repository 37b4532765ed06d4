"""trajectories -> captions -> qa_pairs as Dagster assets on synthetic scenes: the offline template writer, and an
LLM through litellm against a real OpenAI-compatible server on 127.0.0.1 (cache, faults, rejected questions)."""


import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from fm_assets.defs.ingest import ingest
from fm_assets.defs.language import captions, qa_pairs
from fm_assets.defs.motion import trajectories
from fm_assets.defs.perception import tracks
from fm_assets.labels.qa import CATEGORIES, Q_TYPES
from fm_assets.synthetic import render_scene, scene_by_name
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.registry import register_video
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore
from tests.helpers import scripted_model
from tests.llm_server import Status, start_server

ALL = [ingest, tracks, trajectories, captions, qa_pairs]
LANGUAGE = [trajectories, captions, qa_pairs]


@pytest.fixture(scope="module")
def perceived(tmp_path_factory):
    """Two scenes run through ingest, detections and tracks once; the language assets are re-run per test."""
    scenes = tmp_path_factory.mktemp("scenes")
    lake = Lake(root=str(tmp_path_factory.mktemp("lake")))
    instance = DagsterInstance.ephemeral()
    ids = {}
    for name in ("left_right", "back_and_forth"):
        mp4 = render_scene(scene_by_name(name), scenes).mp4
        vid = register_video(str(mp4), VideoStore(), lake).video_id
        instance.add_dynamic_partitions("videos", [vid])
        res = materialize([ingest, tracks], partition_key=vid, instance=instance,
                          resources=_resources(lake, LLMResource()))
        assert res.success
        ids[name] = vid
    return lake, instance, ids


def _resources(lake, llm):
    return {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
            "detector": DetectorResource(), "tracker": TrackerResource(), "llm": llm}


def _language(perceived, llm, name):
    lake, instance, ids = perceived
    res = materialize(ALL, selection=LANGUAGE, partition_key=ids[name], instance=instance,
                      resources=_resources(lake, llm), raise_on_error=False)
    read = {a: lake.read_parquet(f"{a}/{ids[name]}.parquet") for a in ("raw_clips", "trajectories", "captions", "qa_pairs")}
    return res, read


def _metadata(res, asset):
    (mat,) = list(res.asset_materializations_for_node(asset))
    return {k: v.value for k, v in mat.metadata.items()}


def test_template_writer_offline(perceived):
    res, t = _language(perceived, LLMResource(), "left_right")
    assert res.success
    traj = t["trajectories"].filter(pl.col("kept"))
    assert sorted(traj["direction"].to_list()) == ["left", "right"]  # the red box goes left, the blue ball right
    caps = t["captions"]
    assert len(caps) == t["raw_clips"]["kept"].sum() and caps["writer"].to_list() == ["template"] * len(caps)
    assert caps["tokens_in"].sum() == 0 and (caps["status"] == "ok").all()
    for colour in traj["color"]:
        assert colour in caps["caption"][0]  # the caption names the objects present
    qa = t["qa_pairs"]
    assert len(qa) and qa["kept"].all() and (qa["source"] == "rule").all() and qa["verified"].all()
    mcq, grounded = qa.filter(~pl.col("grounded")), qa.filter(pl.col("grounded"))
    assert set(mcq["category"]) <= set(CATEGORIES) and mcq["answer"].is_in(["A", "B", "C", "D"]).all()
    for q in mcq.iter_rows(named=True):
        opts = [q["option_a"], q["option_b"], q["option_c"], q["option_d"]]
        assert len(set(opts)) == 4 and all(opts) and q["answer_text"] == opts["ABCD".index(q["answer"])]
    assert len(grounded) and set(grounded["q_type"]) <= set(Q_TYPES)
    spans = {r["track_id"]: (r["t_start"], r["t_end"]) for r in traj.iter_rows(named=True)}
    for q in grounded.iter_rows(named=True):
        lo, hi = spans[q["target_track_id"]]
        assert lo - 1e-6 <= q["action_start_s"] < q["action_end_s"] <= hi + 1e-6
    # the same input gives the same labels
    again = _language(perceived, LLMResource(), "left_right")[1]["qa_pairs"]
    assert again.equals(qa)


def _llm(server, **kw):
    return LLMResource(model="openai/test-model", api_base=server.base_url, backoff_s=0.01, max_retries=2,
                       timeout_s=10, **kw)


def test_llm_captions_and_checked_questions_then_a_cached_rerun(perceived, monkeypatch):
    monkeypatch.setenv("FM_LLM_API_KEY", "test-key")
    with start_server(scripted_model) as server:
        res, t = _language(perceived, _llm(server), "left_right")
        assert res.success
        caps = t["captions"]
        assert (caps["writer"] == "openai/test-model").all() and caps["caption"][0].startswith("LLM:")
        assert caps["tokens_in"].sum() > 0 and not caps["cached"].any()
        qa = t["qa_pairs"]
        llm = qa.filter(pl.col("source") == "llm")
        kept, rejected = llm.filter(pl.col("kept")), llm.filter(~pl.col("kept"))
        assert len(kept) >= 1 and kept["verified"].all()
        assert len(rejected) >= 1 and "direction" in rejected["reject_reason"][0]
        assert _metadata(res, "qa_pairs")["rejected_llm"] == len(rejected)
        calls = server.calls
        assert calls == 2 * len(caps)  # one caption + one question call per clip
        # materializing the unchanged partition again spends no tokens: every reply comes from the lake's cache
        res2, t2 = _language(perceived, _llm(server), "left_right")
        assert res2.success and server.calls == calls
        assert t2["captions"]["cached"].all() and _metadata(res2, "captions")["cost_usd"] == 0.0
        assert t2["qa_pairs"].equals(qa) and t2["captions"]["caption"].equals(caps["caption"])


def test_llm_failure_is_recorded_per_clip_and_rule_questions_remain(perceived, monkeypatch):
    monkeypatch.setenv("FM_LLM_API_KEY", "test-key")
    with start_server(lambda body: "not json at all {") as server:
        res, t = _language(perceived, _llm(server, cache=False), "back_and_forth")
        assert res.success  # the partition materializes
        caps = t["captions"]
        assert (caps["status"] == "failed").all() and caps["caption"].is_null().all()
        assert caps["error"][0].startswith("invalid_output") and caps["attempts"][0] == 3
        qa = t["qa_pairs"]
        assert len(qa) and (qa["source"] == "rule").all()  # no LLM questions without a caption
    with start_server(lambda body: "{}") as server:
        server.script(*[Status(500)] * 3)
        res, t = _language(perceived, _llm(server, cache=False), "back_and_forth")
        assert res.success and t["captions"]["error"][0].startswith("server_error")
