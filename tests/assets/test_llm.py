"""LLMResource inside a Dagster run, against the OpenAI-compatible test server on 127.0.0.1 (tests/llm_server.py),
with the guard that fails the test on any connection elsewhere (tests/conftest.py: local_only). The resource on
its own: tests/unit/test_llm.py."""

import pytest
from dagster import Definitions, asset, materialize

from fm_resources.lake import Lake
from fm_resources.llm import LLMResource
from tests.helpers import Caption, ask, caption_for, make_llm
from tests.llm_server import start_server

pytestmark = pytest.mark.usefixtures("local_only")  # every test: nothing but 127.0.0.1


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("FM_LLM_API_KEY", "test-key")
    monkeypatch.delenv("FM_LLM_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def llm_server():
    with start_server(caption_for) as server:
        yield server


def test_resource_runs_in_dagster(llm_server, tmp_path):
    @asset
    def caption_asset(llm: LLMResource) -> None:
        res = llm.complete(Lake(root=str(tmp_path / "lake")), ask(), Caption, "caption@1")
        assert res.value.overview == "re: describe the motion"

    resources = {"llm": make_llm(llm_server)}
    Definitions(assets=[caption_asset], resources=resources)  # validates the resource config
    assert materialize([caption_asset], resources=resources).success
    assert llm_server.calls == 1
