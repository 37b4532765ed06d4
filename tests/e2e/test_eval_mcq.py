"""`fm eval mcq` through the real `fm` console script, on a copy of a small labelled lake (tests/conftest.py
mcq_lake_dir) against the OpenAI-compatible test server on 127.0.0.1; the blind baseline; the lake's view and the
Dagster instance in FM_HOME."""

import json
import shutil

import pytest
from dagster import AssetKey, DagsterInstance

from fm_resources.lake import Lake
from fm_resources.warehouse import Warehouse
from tests.conftest import run_fm
from tests.helpers import MCQ_MODEL as MODEL
from tests.helpers import answer_book, responder
from tests.helpers import mcq_questions as questions
from tests.llm_server import start_server

pytestmark = pytest.mark.usefixtures("local_only", "llm_env", "no_backoff")  # this process: nothing but 127.0.0.1 (tests/conftest.py)


def test_fm_eval_mcq_command(mcq_lake_dir, fm_home):
    lake_dir = fm_home / "lake"
    shutil.copytree(mcq_lake_dir, lake_dir)
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
