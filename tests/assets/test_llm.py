"""LLMResource inside a Dagster run, against the OpenAI-compatible test server on 127.0.0.1 (tests/llm_server.py),
with the guard that fails the test on any connection elsewhere (tests/conftest.py: local_only). The resource on
its own: tests/unit/test_llm.py."""

import pytest
from dagster import Definitions, asset, materialize

from fm_resources.lake import Lake
from fm_resources.llm import LLMResource
from tests.helpers import Caption, ask, make_llm

pytestmark = pytest.mark.usefixtures("local_only", "llm_env")  # every test: nothing but 127.0.0.1


def test_resource_runs_in_dagster(llm_server, tmp_path):
    @asset
    def caption_asset(llm: LLMResource) -> None:
        res = llm.complete(Lake(root=str(tmp_path / "lake")), ask(), Caption, "caption@1")
        assert res.value.overview == "re: describe the motion"

    resources = {"llm": make_llm(llm_server)}
    Definitions(assets=[caption_asset], resources=resources)  # validates the resource config
    assert materialize([caption_asset], resources=resources).success
    assert llm_server.calls == 1
