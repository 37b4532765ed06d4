"""`fm eval mcq`: whole evaluations of a small lake (three synthetic scenes materialized through qa_pairs:
tests/conftest.py mcq_lake_dir) against the OpenAI-compatible test server on 127.0.0.1 with scripted replies, the
lake table, its view and the Dagster materialization. Pure parts: tests/unit/test_eval_mcq.py; the `fm` command:
tests/e2e/test_eval_mcq.py."""

import math
import shutil

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from fm_assets.evaluation.mcq import EvalError, run_eval, wilson
from fm_resources.lake import Lake
from fm_resources.llm import LLMResource
from fm_resources.video import VideoStore
from fm_resources.warehouse import Warehouse
from tests.helpers import MCQ_MODEL as MODEL
from tests.helpers import answer_book, responder, user_text
from tests.helpers import mcq_questions as questions
from tests.llm_server import Status, start_server

pytestmark = pytest.mark.usefixtures("local_only", "llm_env", "no_backoff")  # every test: nothing but 127.0.0.1 (tests/conftest.py)


# -- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture
def lake(mcq_lake_dir, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(mcq_lake_dir, root)
    return Lake(root=str(root))


@pytest.fixture
def wh(lake):
    return Warehouse(lake=lake)


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
    right = lambda q: q["qa_id"][-1] in "02468ace"
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
