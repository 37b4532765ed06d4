"""LLMResource against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/llm_server.py): litellm builds and
sends real requests; the server scripts the faults. A guard (tests/conftest.py: local_only) fails any test that tries
to reach another address. The resource inside a Dagster run: tests/assets/test_llm.py."""

import base64
import json
import socket
import threading
import time

import pytest

import fm_resources.llm as llm_module
from fm_resources.lake import Lake
from fm_resources.llm import LLMFailure, LLMResource
from tests.helpers import Caption, ask, make_llm
from tests.llm_server import Delay, Reply, Status, start_server

# -- fixtures ---------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.usefixtures("local_only", "llm_env")  # every test: nothing but 127.0.0.1


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """Backoff waits are recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(llm_module, "_sleep", waits.append)
    return waits


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(root=str(tmp_path / "lake"))


# -- 1. happy path ----------------------------------------------------------------------------------------------
def test_valid_reply_is_validated_counted_and_cached(llm_server, lake):
    res = make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")

    assert res.value == Caption(overview="re: describe the motion", bullets=["a", "b"])
    assert json.loads(res.text) == res.value.model_dump()
    assert (res.tokens_in, res.tokens_out) == (11, 7)  # the server's usage block
    assert res.cost_usd is None  # litellm has no price for openai/test-model
    assert (res.cached, res.attempts, res.model) == (False, 1, "openai/test-model")
    assert llm_server.calls == 1
    sent = llm_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer test-key"
    body = sent.body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("test-model", 0, 1200)
    # litellm does not know this model takes a JSON schema: JSON mode, with the schema spelled out in the prompt
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"].startswith("You write motion captions.")
    assert json.dumps(Caption.model_json_schema()) in body["messages"][0]["content"]
    entry = lake.read_json(f"_cache/llm/{res.key[:2]}/{res.key}.json")
    assert entry["value"] == res.value.model_dump() and entry["prompt_version"] == "caption@1"


def test_known_model_gets_a_json_schema_and_a_price(llm_server, lake):
    res = make_llm(llm_server, model="openai/gpt-4o-mini").complete(lake, ask(), Caption, "caption@1")

    fmt = llm_server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == Caption.model_json_schema()
    assert json.dumps(Caption.model_json_schema()) not in llm_server.requests[0].body["messages"][0]["content"]
    price = llm_module._litellm().model_cost["gpt-4o-mini"]
    assert res.cost_usd == pytest.approx(11 * price["input_cost_per_token"] + 7 * price["output_cost_per_token"])
    assert res.cost_usd > 0

    hit = make_llm(llm_server, model="openai/gpt-4o-mini").complete(lake, ask(), Caption, "caption@1")
    assert hit.cached and hit.cost_usd == 0.0  # nothing spent this run ...
    assert lake.read_json(f"_cache/llm/{res.key[:2]}/{res.key}.json")["cost_usd"] == res.cost_usd  # ... recorded


def test_api_base_defaults_to_env(llm_server, lake, monkeypatch):
    monkeypatch.setenv("FM_LLM_API_BASE", llm_server.base_url)
    res = make_llm(llm_server, api_base=None).complete(lake, ask(), Caption, "caption@1")
    assert res.attempts == 1 and llm_server.calls == 1


# -- 2. cache -------------------------------------------------------------------------------------------------
def test_cache_hit_makes_no_call_and_any_key_change_does(llm_server, lake):
    llm = make_llm(llm_server)
    first = llm.complete(lake, ask(), Caption, "caption@1")

    hit = llm.complete(lake, ask(), Caption, "caption@1")
    assert llm_server.calls == 1
    assert (hit.cached, hit.attempts, hit.cost_usd, hit.key) == (True, 0, 0.0, first.key)
    assert (hit.value, hit.text, hit.tokens_in, hit.tokens_out) == (first.value, first.text, 11, 7)

    assert not llm.complete(lake, ask(), Caption, "caption@2").cached  # new prompt version
    assert not llm.complete(lake, ask("another clip"), Caption, "caption@1").cached  # new messages
    assert not make_llm(llm_server, temperature=0.7).complete(lake, ask(), Caption, "caption@1").cached
    assert llm_server.calls == 4
    assert len(lake.list("_cache/llm")) == 4


def test_cache_off_always_calls_and_writes_nothing(llm_server, lake):
    llm = make_llm(llm_server, cache=False)
    assert not llm.complete(lake, ask(), Caption, "caption@1").cached
    assert not llm.complete(lake, ask(), Caption, "caption@1").cached
    assert llm_server.calls == 2 and lake.list("_cache") == []


# -- 3. rate limits ------------------------------------------------------------------------------------------------
def test_rate_limit_then_success_honours_retry_after(llm_server, lake, sleeps):
    llm_server.script(Status(429, retry_after=0))
    res = make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert res.attempts == 2 and llm_server.calls == 2
    assert sleeps == [0.0]  # Retry-After: 0 beats the 0.01 s backoff


def test_retry_after_is_capped_and_backoff_is_exponential(llm_server, lake, sleeps):
    llm_server.script(Status(429, retry_after=120), Status(429), Status(503))
    res = make_llm(llm_server, max_retries=3, backoff_s=0.5).complete(lake, ask(), Caption, "caption@1")
    assert res.attempts == 4
    assert sleeps == [30.0, 1.0, 2.0]  # capped Retry-After, then 0.5 * 2**1, 0.5 * 2**2


def test_rate_limit_exhausted(llm_server, lake):
    llm_server.script(*[Status(429, retry_after=0)] * 3)
    with pytest.raises(LLMFailure) as err:
        make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, llm_server.calls) == ("rate_limit", 3, 3)


# -- 4. timeouts ---------------------------------------------------------------------------------------------------
def test_timeout_then_success(llm_server, lake):
    llm_server.script(Delay(2.0))
    started = time.perf_counter()
    res = make_llm(llm_server, timeout_s=0.5).complete(lake, ask(), Caption, "caption@1")
    assert res.attempts == 2 and llm_server.calls == 2
    assert time.perf_counter() - started < 1.8  # the client gave up on the slow reply; it did not wait it out


def test_all_attempts_time_out(llm_server, lake):
    llm_server.script(*[Delay(1.5)] * 3)
    with pytest.raises(LLMFailure) as err:
        make_llm(llm_server, timeout_s=0.3).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, llm_server.calls) == ("timeout", 3, 3)
    assert lake.list("_cache") == []


# -- 5. malformed output --------------------------------------------------------------------------------------------
def test_malformed_then_valid(llm_server, lake):
    llm_server.script(Reply("not json {"))
    res = make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert res.attempts == 2 and llm_server.calls == 2
    assert (res.tokens_in, res.tokens_out) == (22, 14)  # the wasted attempt's tokens were spent too


def test_fenced_json_is_accepted(llm_server, lake):
    llm_server.script(Reply('```json\n{"overview": "fenced", "bullets": []}\n```'))
    res = make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert res.value.overview == "fenced" and res.attempts == 1


def test_always_malformed_fails_and_caches_nothing(lake):
    with start_server(lambda body: "not json {") as server:
        with pytest.raises(LLMFailure) as err:
            make_llm(server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, server.calls) == ("invalid_output", 3, 3)
    assert lake.list("_cache") == []


# -- 6. schema violations ----------------------------------------------------------------------------------------
def test_schema_violation_is_retried_then_fails(lake):
    with start_server(lambda body: '{"title": "valid JSON, wrong fields"}') as server:
        with pytest.raises(LLMFailure) as err:
            make_llm(server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, server.calls) == ("invalid_output", 3, 3)
    assert "overview" in err.value.detail
    assert lake.list("_cache") == []


# -- 7. server and client errors ------------------------------------------------------------------------------------
def test_server_errors_exhausted(llm_server, lake):
    llm_server.script(*[Status(500)] * 3)
    with pytest.raises(LLMFailure) as err:
        make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, llm_server.calls) == ("server_error", 3, 3)


def test_bad_gateway_then_success(llm_server, lake):
    llm_server.script(Status(502), Status(503))
    assert make_llm(llm_server).complete(lake, ask(), Caption, "caption@1").attempts == 3


@pytest.mark.parametrize(("code", "reason"), [(401, "auth"), (403, "auth"), (400, "bad_request"),
                                              (422, "bad_request"), (404, "not_found")])
def test_client_errors_fail_at_once(llm_server, lake, code, reason, sleeps):
    llm_server.script(Status(code))
    with pytest.raises(LLMFailure) as err:
        make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, llm_server.calls, sleeps) == (reason, 1, 1, [])


def test_missing_key_fails_at_once_without_a_request(llm_server, lake, monkeypatch):
    monkeypatch.delenv("FM_LLM_API_KEY")
    with pytest.raises(LLMFailure) as err:
        make_llm(llm_server).complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts, llm_server.calls) == ("auth", 1, 0)


def test_connection_refused_is_retried(lake):
    with start_server() as server:
        llm = make_llm(server)  # the port is closed once the block ends
    with pytest.raises(LLMFailure) as err:
        llm.complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts) == ("connection", 3)


# -- 8. map ----------------------------------------------------------------------------------------------------------
def test_map_bounds_concurrency_keeps_order_and_returns_errors(llm_server, lake):
    llm_server.script(*[Delay(0.3)] * 6)
    llm = make_llm(llm_server, concurrency=2)

    def caption(i: int) -> str:
        if i == 3:
            raise ValueError("bad clip")
        return llm.complete(lake, ask(f"clip {i}"), Caption, "caption@1").value.overview

    out = llm.map(caption, range(7))
    assert out[:3] + out[4:] == [f"re: clip {i}" for i in (0, 1, 2, 4, 5, 6)]
    assert isinstance(out[3], ValueError) and str(out[3]) == "bad clip"
    assert llm_server.calls == 6
    assert llm_server.max_in_flight == 2  # bounded by concurrency, and the bound was reached


def test_map_returns_llm_failures_as_values(llm_server, lake):
    llm_server.script(Status(401))
    llm = make_llm(llm_server, concurrency=1)
    out = llm.map(lambda text: llm.complete(lake, ask(text), Caption, "caption@1").value.overview, ["x", "y"])
    assert isinstance(out[0], LLMFailure) and out[0].reason == "auth"
    assert out[1] == "re: y"


def test_offline_map_runs_the_items_in_order_in_the_calling_thread():
    llm = LLMResource()  # the template model: nothing to wait for, so no thread pool
    assert llm.is_offline
    seen: list[tuple[int, int]] = []

    def work(i: int) -> int:
        seen.append((i, threading.get_ident()))
        if i == 2:
            raise ValueError("bad clip")
        return i * i

    out = llm.map(work, range(5))
    assert out[:2] + out[3:] == [0, 1, 9, 16]
    assert isinstance(out[2], ValueError) and str(out[2]) == "bad clip"
    assert seen == [(i, threading.get_ident()) for i in range(5)]  # one after another, here


# -- 9. vision ---------------------------------------------------------------------------------------------------
FRAMES = [b"\xff\xd8\xff\xe0 fake jpeg %d" % i for i in range(10)]


def sent_images(body: dict) -> list[bytes]:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return []
    return [base64.b64decode(p["image_url"]["url"].removeprefix("data:image/jpeg;base64,"))
            for p in content if p["type"] == "image_url"]


def test_vision_attaches_evenly_spaced_frames_to_the_last_user_message(llm_server, lake):
    res = make_llm(llm_server, vision=True, max_frames=4).complete(lake, ask(), Caption, "caption@1", FRAMES)

    content = llm_server.requests[0].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "describe the motion"}
    assert sent_images(llm_server.requests[0].body) == [FRAMES[i] for i in (0, 2, 5, 7)]
    assert res.value.overview == "re: describe the motion"
    # the frames are part of the cache key
    other = make_llm(llm_server, vision=True, max_frames=4).complete(lake, ask(), Caption, "caption@1", FRAMES[::-1])
    assert not other.cached and other.key != res.key


def test_text_only_model_gets_no_images(llm_server, lake):
    make_llm(llm_server, vision=False).complete(lake, ask(), Caption, "caption@1", FRAMES)
    assert llm_server.requests[0].body["messages"][-1]["content"] == "describe the motion"
    assert sent_images(llm_server.requests[0].body) == []


# -- 10. nothing but the test server ----------------------------------------------------------------------------
def test_every_request_reaches_the_test_server(llm_server, lake):
    llm_server.script(Status(429, retry_after=0), Reply("nope"), Status(500))
    llm = make_llm(llm_server, max_retries=3)
    results = [llm.complete(lake, ask(f"clip {i}"), Caption, "caption@1") for i in range(3)]
    assert sum(r.attempts for r in results) == llm_server.calls == 6
    assert {r.path for r in llm_server.requests} == {"/v1/chat/completions"}


def test_guard_refuses_other_hosts(local_only):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("203.0.113.7", 443), timeout=0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.socket().connect(("api.openai.com", 443))
    assert local_only == ["203.0.113.7", "api.openai.com"]
    local_only.clear()  # these were the test's own attempts


# -- offline mode ---------------------------------------------------------------------------------------------------
def test_template_model_is_offline_and_never_calls(lake):
    llm = LLMResource()
    assert llm.is_offline and llm.model == "template"
    with pytest.raises(LLMFailure) as err:
        llm.complete(lake, ask(), Caption, "caption@1")
    assert (err.value.reason, err.value.attempts) == ("offline", 0)
