"""`fm eval mcq`: strict parsing, Wilson intervals, and whole evaluations of a small lake (three synthetic scenes
materialized through qa_pairs) against the OpenAI-compatible test server on 127.0.0.1 with scripted replies."""

import json
import math
import shutil
import socket

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from fm_assets import eval_mcq
from fm_assets.clips import ingest
from fm_assets.eval_mcq import EvalError, parse_answer, run_eval, wilson
from fm_assets.language import captions, qa_pairs, trajectories
from fm_assets.partitions import register_video
from fm_assets.perception import detections, tracks
from fm_assets.schemas import SPLITS, frame
from fm_assets.synthetic import render_scene, scene_by_name
from fm_resources import llm as llm_module
from fm_resources.detectors import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore
from fm_resources.warehouse import Warehouse
from tests.conftest import run_fm
from tests.llm_server import Reply, Status, start_server

SCENES = {"left_right": "train", "back_and_forth": "test", "ordered_pair": "test"}
MODEL = "openai/test-model"


# -- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_lake(tmp_path_factory):
    """Three scenes materialized through qa_pairs (template captions, rule questions) and a splits table with one
    video in train and two in test; each test works on its own copy."""
    scenes = tmp_path_factory.mktemp("scenes")
    root = tmp_path_factory.mktemp("lake")
    lake = Lake(root=str(root))
    instance = DagsterInstance.ephemeral()
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                 "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource()}
    rows = []
    for name, split in SCENES.items():
        vid = register_video(str(render_scene(scene_by_name(name), scenes).mp4), VideoStore(), lake).video_id
        instance.add_dynamic_partitions("videos", [vid])
        res = materialize([ingest, detections, tracks, trajectories, captions, qa_pairs], partition_key=vid,
                          instance=instance, resources=resources)
        assert res.success
        rows.append({"video_id": vid, "split": split, "group_key": vid[-8:], "status": "ok"})
    lake.write_parquet("splits/all.parquet", frame(rows, SPLITS))
    return root


@pytest.fixture
def lake(base_lake, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(base_lake, root)
    return Lake(root=str(root))


@pytest.fixture
def wh(lake):
    return Warehouse(lake=lake)


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    """Refuse any connection to a host other than 127.0.0.1 (and fail the test if one was tried)."""
    blocked = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "localhost"):
            blocked.append(address[0])
            raise ConnectionRefusedError(f"test guard: {address[0]!r} refused")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", None):
            blocked.append(name)
            raise ConnectionRefusedError(f"test guard: {name!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("FM_LLM_API_KEY", "test-key")
    monkeypatch.delenv("FM_LLM_API_BASE", raising=False)
    monkeypatch.setattr(llm_module, "_sleep", lambda s: None)
    yield
    assert not blocked, f"attempted connections to non-local hosts: {blocked}"


def questions(wh, split="test") -> pl.DataFrame:
    """The kept multiple-choice questions of a split, straight from the lake (the test's own truth)."""
    where = "" if split == "all" else f"AND s.split = '{split}'"
    return wh.query("SELECT q.* FROM qa_pairs q JOIN splits s USING (video_id) "
                    f"WHERE q.kept AND NOT q.grounded {where} ORDER BY video_id, clip_id, qa_id")


def user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def key_of(question: str, options: list[str]) -> str:
    return "\n".join([f"Question: {question}", *(f"{L}. {o}" for L, o in zip("ABCD", options))])


def answer_book(qs: pl.DataFrame) -> dict[str, dict]:
    """The prompt's question block -> the question's row (so a scripted model can answer any way we want)."""
    book = {}
    for q in qs.iter_rows(named=True):
        k = key_of(q["question"], [q["option_a"], q["option_b"], q["option_c"], q["option_d"]])
        assert k not in book or book[k]["answer"] == q["answer"], "two questions with one text and two answers"
        book[k] = q
    return book


def responder(book: dict, rule):
    """A model that finds the question in the prompt and replies rule(question row)."""
    def reply(body: dict) -> str:
        text = user_text(body)
        (q,) = [q for k, q in book.items() if k in text]
        return rule(q)
    return reply


def wrong(letter: str) -> str:
    return "ABCD"[("ABCD".index(letter) + 1) % 4]


def llm(server, **kw) -> LLMResource:
    return LLMResource(model=MODEL, api_base=server.base_url, backoff_s=0.01, max_retries=2, timeout_s=10, **kw)


def evaluate(lake, wh, server=None, **kw):
    kw.setdefault("instance", DagsterInstance.ephemeral())
    return run_eval(model=kw.pop("model", MODEL if server else None), llm=kw.pop("llm", None) or (
        llm(server, cache=False) if server else LLMResource()), lake=lake, warehouse=wh, video_store=VideoStore(), **kw)


def overall(outcome) -> dict:
    return outcome.summary.filter(pl.col("category") == "overall").row(0, named=True)


# -- pure parts ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply,letter", [
    ("B", "B"), (" B. ", "B"), ("(B)", "B"), ("**B**", "B"), ("B)", "B"), ("'D'\n", "D"), ("Answer: B", "B"),
    ("answer is C", "C"), ("The answer is (A).", "A"),
    ("I think B or C", None), ("B or C", None), ("", None), ("E", None), ("b", None), ("B. moves left", None),
    ("Answer: B C", None), ("A-D", None), (None, None), ("B1", None),
])
def test_strict_parsing(reply, letter):
    assert parse_answer(reply) == letter


def test_wilson_interval_matches_a_hand_computation():
    # 5 of 8, z = 1.959964, z^2 = 3.841459: 1 + z^2/n = 1.480182, centre = (0.625 + z^2/16) / 1.480182
    # = 0.865091 / 1.480182 = 0.584449, half = z / 1.480182 * sqrt(0.625 * 0.375 / 8 + z^2 / 256)
    # = 1.324137 * 0.210482 = 0.278707 -> [0.305742, 0.863156]
    lo, hi = wilson(5, 8)
    assert lo == pytest.approx(0.305742, abs=2e-6) and hi == pytest.approx(0.863156, abs=2e-6)
    # 4 of 4: centre = (1 + z^2/8) / (1 + z^2/4) = 0.755055, half = z / 1.960365 * sqrt(z^2 / 64) = 0.244945
    lo, hi = wilson(4, 4)
    assert lo == pytest.approx(0.510109, abs=2e-6) and hi == pytest.approx(1.0)
    # 0 of 4: the mirror image, [0, 0.489891]
    assert wilson(0, 4)[0] == pytest.approx(0.0) and wilson(0, 4)[1] == pytest.approx(0.489891, abs=2e-6)
    assert wilson(0, 0) == (None, None)


# -- evaluations against the test server --------------------------------------------------------------------------
def test_all_correct_replies_score_100_and_land_in_lake_view_and_dagster(lake, wh):
    qs = questions(wh)
    assert len(qs) >= 8 and qs["category"].n_unique() >= 2
    instance = DagsterInstance.ephemeral()
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        out = evaluate(lake, wh, server, run_name="perfect", instance=instance)
        assert server.calls == len(qs)
        sent = [user_text(r.body) for r in server.requests]
        assert not any("Description of the clip" in t for t in sent)  # text-only, no caption: the question alone
        assert all(isinstance(r.body["messages"][-1]["content"], str) for r in server.requests)  # no frames
    o = overall(out)
    assert (o["questions"], o["correct"], o["accuracy"], o["invalid"], o["failed"]) == (len(qs), len(qs), 1.0, 0, 0)
    assert o["ci95_high"] == pytest.approx(1.0) and o["ci95_low"] == pytest.approx(wilson(len(qs), len(qs))[0])
    assert set(out.summary["category"]) == set(qs["category"]) | {"overall"}
    assert out.meta["context"] == "question" and out.meta["split"] == "test"
    # the lake table, through DuckDB
    assert out.uri.endswith("eval_mcq/perfect.parquet") and lake.exists("eval_mcq/perfect.parquet")
    table = wh.query("SELECT * FROM eval_mcq ORDER BY qa_id")
    assert len(table) == len(qs) and table["correct"].all() and (table["model"] == MODEL).all()
    assert sorted(table["qa_id"]) == sorted(qs["qa_id"]) and (table["predicted"] == table["answer"]).all()
    assert set(table["split"]) == {"test"} and table["prompt_version"][0].startswith("eval_mcq_v1@")
    # the Dagster instance: one materialization of mcq_eval with the scores as metadata
    (rec,) = instance.fetch_materializations(AssetKey("mcq_eval"), limit=10).records
    meta = rec.asset_materialization.metadata
    assert meta["accuracy"].value == 1.0 and meta["questions"].value == len(qs) and meta["model"].value == MODEL
    assert "| **overall** |" in meta["by_category"].value and meta["path"].value == out.uri


def test_mixed_replies_give_the_known_accuracy_per_category(lake, wh):
    qs = questions(wh, "all")
    right = lambda q: q["qa_id"][-1] in "02468ace"  # noqa: E731 - about half, by the qa_id's last hex digit
    with start_server(responder(answer_book(qs), lambda q: q["answer"] if right(q) else wrong(q["answer"]))) as s:
        out = evaluate(lake, wh, s, split="all", run_name="mixed")
    expect = {}
    for q in qs.iter_rows(named=True):
        n, k = expect.get(q["category"], (0, 0))
        expect[q["category"]] = (n + 1, k + right(q))
    got = {r["category"]: r for r in out.summary.iter_rows(named=True)}
    for cat, (n, k) in expect.items():
        assert (got[cat]["questions"], got[cat]["correct"]) == (n, k)
        assert got[cat]["accuracy"] == pytest.approx(k / n)
        assert (got[cat]["ci95_low"], got[cat]["ci95_high"]) == pytest.approx(wilson(k, n))
    n, k = len(qs), sum(right(q) for q in qs.iter_rows(named=True))
    assert 0 < k < n and overall(out)["accuracy"] == pytest.approx(k / n)
    assert out.meta["macro_accuracy"] == pytest.approx(sum(k / n for n, k in expect.values()) / len(expect))
    assert set(out.results["split"]) == {"train", "test"}


def test_malformed_replies_count_wrong_and_are_logged_raw(lake, wh):
    qs = questions(wh)
    bad = dict(zip(qs["qa_id"][:4], ["I think B or C", "", "E", "b"]))
    with start_server(responder(answer_book(qs), lambda q: bad.get(q["qa_id"], f"Answer: ({q['answer']}).\n"))) as s:
        out = evaluate(lake, wh, s, run_name="malformed")
    res = out.results
    rows = res.filter(pl.col("qa_id").is_in(list(bad)))
    assert not rows["valid"].any() and not rows["correct"].any() and rows["predicted"].is_null().all()
    assert dict(zip(rows["qa_id"], rows["raw_reply"])) == bad and rows["error"].is_null().all()
    o = overall(out)
    assert (o["invalid"], o["failed"], o["correct"], o["questions"]) == (4, 0, len(qs) - 4, len(qs))


def test_server_errors_are_retried_and_exhausted_ones_count_as_failed(lake, wh):
    qs = questions(wh)
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        server.script(Status(500), Status(503))  # the first question: two errors, then the answer
        out = evaluate(lake, wh, server, llm=llm(server, cache=False, concurrency=1), limit=2, run_name="retry")
        assert server.calls == 4
    assert out.results["attempts"].to_list() == [3, 1] and out.results["correct"].all()
    assert overall(out)["failed"] == 0
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        server.script(Status(500), Status(500), Status(500))  # more than max_retries=2 allows
        out = evaluate(lake, wh, server, llm=llm(server, cache=False, concurrency=1), limit=2, run_name="fail")
    first = out.results.row(0, named=True)
    assert first["error"].startswith("server_error") and first["attempts"] == 3 and not first["correct"]
    assert first["raw_reply"] is None and out.results["correct"][1]
    o = overall(out)
    assert (o["failed"], o["invalid"], o["correct"]) == (1, 0, 1)


def test_replies_are_cached_in_the_lake(lake, wh):
    qs = questions(wh)
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        first = evaluate(lake, wh, server, llm=llm(server), run_name="c1")
        assert server.calls == len(qs) and not first.results["cached"].any()
        again = evaluate(lake, wh, server, llm=llm(server), run_name="c2")
        assert server.calls == len(qs) and again.results["cached"].all()  # no new request
    assert again.results["correct"].all() and again.meta["cost_usd"] == 0.0
    assert wh.query("SELECT count(*) AS n FROM llm_calls WHERE prompt_version LIKE 'eval_mcq_v1@%'")["n"][0] == len(qs)
    assert wh.query("SELECT run_name, count(*) AS n FROM eval_mcq GROUP BY 1 ORDER BY 1").rows() == [
        ("c1", len(qs)), ("c2", len(qs))]


def test_vision_model_gets_one_frame_per_second_of_the_clip(lake, wh):
    qs = questions(wh).head(3)
    clips = wh.query("SELECT clip_id, end_s - start_s AS dur FROM raw_clips")
    dur = dict(clips.iter_rows())
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        out = evaluate(lake, wh, server, vision=True, limit=3, run_name="vision")
        for r in server.requests:
            parts = r.body["messages"][-1]["content"]
            images = [p for p in parts if p["type"] == "image_url"]
            assert images and all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
            n = len(images)
            assert f"You see {n} frames of the clip, one per second" in r.body["messages"][0]["content"]
    for row in out.results.iter_rows(named=True):
        assert row["n_frames"] == min(16, math.ceil(dur[row["clip_id"]] - 1e-6)) and row["correct"]
    assert out.meta["context"] == "frames"


def test_caption_only_baseline_sees_caption_and_options_never_frames(lake, wh):
    qs = questions(wh)
    caps = dict(wh.query("SELECT clip_id, caption FROM captions").iter_rows())
    with start_server(responder(answer_book(qs), lambda q: q["answer"])) as server:
        out = evaluate(lake, wh, server, llm=llm(server, cache=False, vision=True), baseline="caption-only",
                       run_name="caponly")
        for r in server.requests:
            text = r.body["messages"][-1]["content"]
            assert isinstance(text, str) and "Description of the clip:" in text  # no image parts
            assert any(c in text for c in caps.values())
    assert out.meta["context"] == "caption" and out.meta["baseline"] == "caption-only"
    assert (out.results["n_frames"] == 0).all() and overall(out)["accuracy"] == 1.0


def test_blind_baseline_is_the_share_of_trains_most_frequent_letter(lake, wh):
    train = questions(wh, "train")["answer"].value_counts().sort(["count", "answer"], descending=[True, False])
    top = max(train.iter_rows(), key=lambda r: (r[1], -"ABCD".index(r[0])))[0]
    out = evaluate(lake, wh, baseline="blind", run_name="blind")
    test = questions(wh)
    assert out.meta["blind_letter"] == top and (out.results["predicted"] == top).all()
    assert overall(out)["accuracy"] == pytest.approx((test["answer"] == top).mean())
    assert out.meta["model"] == "blind" and out.results["tokens_in"].sum() == 0


def test_errors_before_anything_is_asked(lake, wh, tmp_path):
    with pytest.raises(EvalError, match="no kept multiple-choice questions in the val split"):
        evaluate(lake, wh, baseline="blind", split="val")
    with pytest.raises(EvalError, match="--model"):
        evaluate(lake, wh)  # the llm resource is `template`
    with pytest.raises(EvalError, match="--run-name"):
        evaluate(lake, wh, baseline="blind", run_name="../x")
    # no video in train: the blind baseline has no prior
    splits = lake.read_parquet("splits/all.parquet").with_columns(split=pl.lit("test"))
    lake.write_parquet("splits/all.parquet", splits)
    with pytest.raises(EvalError, match="train has no kept multiple-choice question"):
        evaluate(lake, wh, baseline="blind")
    # no splits table: only --split all works
    lake.delete("splits/all.parquet")
    with pytest.raises(EvalError, match="no splits table"):
        evaluate(lake, wh, baseline="blind")
    with start_server(lambda body: "A") as server:
        out = evaluate(lake, wh, server, split="all", run_name="nosplits")
    n_all = wh.query("SELECT count(*) AS n FROM qa_pairs WHERE kept AND NOT grounded")["n"][0]
    assert len(out.results) == n_all and out.results["split"].is_null().all()


# -- through the real `fm` command ----------------------------------------------------------------------------------
def test_fm_eval_mcq_command(base_lake, fm_home):
    lake_dir = fm_home / "lake"
    shutil.copytree(base_lake, lake_dir)
    wh = Warehouse(lake=Lake(root=str(lake_dir)))
    qs = questions(wh)
    with start_server(responder(answer_book(qs), lambda q: q["answer"] if q["qa_id"] != qs["qa_id"][0] else "B or C")) as s:
        env = {"FM_LLM_API_BASE": s.base_url, "FM_LLM_API_KEY": "test-key", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        proc = run_fm("eval", "mcq", "--model", MODEL, "--run-name", "cli", home=fm_home, env=env)
        assert proc.returncode == 0, proc.stderr
        assert s.calls == len(qs)
    assert "overall" in proc.stdout and "invalid reply to" in proc.stdout and "'B or C'" in proc.stdout
    assert "eval_mcq/cli.parquet" in proc.stdout
    blind = run_fm("eval", "mcq", "--baseline", "blind", "--format", "json", "--run-name", "blind", home=fm_home)
    assert blind.returncode == 0, blind.stderr
    summary = json.loads(blind.stdout)
    assert summary["model"] == "blind" and summary["questions"] == len(qs) and summary["blind_letter"] in "ABCD"
    # the DuckDB view `fm sql` reads (the same Warehouse over FM_HOME's lake)
    assert wh.query("SELECT run_name, count(*) AS n, sum(correct::int) AS k FROM eval_mcq GROUP BY 1 ORDER BY 1").rows() \
        == [("blind", len(qs), summary["correct"]), ("cli", len(qs), len(qs) - 1)]
    with DagsterInstance.from_config(str(fm_home / "dagster")) as instance:
        recs = instance.fetch_materializations(AssetKey("mcq_eval"), limit=10).records
        assert sorted(r.asset_materialization.metadata["run_name"].value for r in recs) == ["blind", "cli"]


def test_parser_is_registered():
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what")
    eval_mcq.add_parser(sub)
    args = parser.parse_args(["mcq", "--model", "m", "--split", "all", "--with-caption"])
    assert args.func is eval_mcq.cmd_mcq and args.split == "all" and args.with_caption
