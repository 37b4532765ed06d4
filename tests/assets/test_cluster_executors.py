"""FM_EXECUTOR picks where a run's steps execute (fm_resources/cluster.py), and the op tags of
fm_assets/defs/placement.py send the `ingest` step (it detects), and only it, to a GPU (Celery queue `gpu`, a GPU pod)."""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey

from fm_assets.definitions import build_defs
from fm_assets.defs.placement import CELERY_QUEUE_TAG, K8S_CONFIG_TAG


@pytest.mark.parametrize("kind, name", [(None, "in_process"), ("celery", "fm_celery"), ("k8s", "fm_k8s")])
def test_fm_executor_picks_the_executor(monkeypatch, fm_home, kind, name):
    if kind is None:
        monkeypatch.delenv("FM_EXECUTOR", raising=False)
    else:
        monkeypatch.setenv("FM_EXECUTOR", kind)
    defs = build_defs()
    for job in ("label_videos", "build_dataset"):
        assert defs.resolve_job_def(job).executor_def.name == name


def test_an_unknown_executor_is_refused(monkeypatch, fm_home):
    monkeypatch.setenv("FM_EXECUTOR", "dask")
    with pytest.raises(ValueError, match="in_process, celery or k8s"):
        build_defs()


def test_only_the_detecting_step_goes_to_the_gpu(monkeypatch, fm_home):
    monkeypatch.setenv("FM_EXECUTOR", "celery")
    graph = build_defs().resolve_asset_graph()
    ops = {graph.get(k).assets_def.op.name: graph.get(k).assets_def.op for k in graph.get_all_asset_keys()
           if graph.get(k).assets_def.is_executable}
    tags = {name: op.tags for name, op in ops.items()}
    assert tags["ingest"][CELERY_QUEUE_TAG] == "gpu"
    gpu = json.loads(tags["ingest"][K8S_CONFIG_TAG])
    assert gpu["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert [k for k, t in tags.items() if CELERY_QUEUE_TAG in t or K8S_CONFIG_TAG in t] == ["ingest"]
    assert graph.get(AssetKey("detections")).assets_def.op.name == "ingest"  # detections are made there
    # the op is otherwise the asset it was: same pool, inputs, compute
    node = graph.get(AssetKey("detections"))
    assert node.pools == {"gpu"} and set(node.parent_keys) == {AssetKey("videos"), AssetKey("raw_clips")}
