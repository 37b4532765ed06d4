"""deploy/kubernetes/ checked offline (no helm, no cluster): the dagster.yaml the official chart renders from values.yaml
is instantiated as a real DagsterInstance (K8sRunLauncher with a dummy kubeconfig, a real Postgres on 127.0.0.1 with
the chart's scheme, S3 compute logs, run monitoring, retries), and the step Jobs the code location's k8s_job_executor
would create ask for a GPU for detections only. A misspelled field or a wrong module path fails the check."""

from __future__ import annotations

import copy
import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def _load(name: str, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check = _load("fm_k8s_check", ROOT / "deploy" / "kubernetes" / "check.py")


@pytest.fixture(scope="module")
def values():
    return check.load_values()


def _instance(values, tmp_path, postgres):
    return check.instance_for(check.render_instance(values), tmp_path / "dagster_home", postgres)


def test_the_deployment_instantiates_and_only_detections_asks_for_a_gpu(values, tmp_path, postgres_server):
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    instance = _instance(values, tmp_path, postgres_server)
    assert isinstance(instance.run_launcher, K8sRunLauncher)
    assert isinstance(instance.run_storage, PostgresRunStorage)  # through the chart's postgresql+psycopg2 scheme
    assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
    assert instance.run_monitoring_enabled and instance.run_retries_max_retries == 1
    assert instance.run_launcher.run_k8s_config["job_spec_config"]["ttlSecondsAfterFinished"] == 3600
    [location] = check.code_locations(values)
    assert location["module"] == "fm_assets.definitions" and location["env"]["FM_EXECUTOR"] == "k8s"
    jobs = check.step_jobs(instance, location["env"], steps=("ingest", "tracks", "captions"))
    assert check.gpu_of(jobs["ingest"]) == ("1", {"nvidia.com/gpu.present": "true"})  # it detects
    assert jobs["ingest"].spec.template.spec.tolerations[0].key == "nvidia.com/gpu"
    for step in ("tracks", "captions"):
        assert check.gpu_of(jobs[step]) == (None, {})
    assert all(job.spec.ttl_seconds_after_finished == 3600 for job in jobs.values())
    # the pools: detections in gpu, captions in llm, whatever the executor
    from fm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys()}
    assert pools["detections"] == {"gpu"} and pools["captions"] == {"llm"}


@pytest.mark.parametrize("path, typo", [
    (("runLauncher", "config", "k8sRunLauncher"), ("loadInclusterConfig", "loadInClusterConfig")),
    (("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"), ("jobSpecConfig", "jobSpecConfg")),
    (("dagsterDaemon", "runMonitoring"), ("pollIntervalSeconds", "pollIntervalSecs")),
    (("computeLogManager", "config", "s3ComputeLogManager"), ("bucket", "bucketName")),
])
def test_a_misspelled_chart_field_fails(values, path, typo):
    bad = copy.deepcopy(values)
    node = bad
    for key in path:
        node = node[key]
    node[typo[1]] = node.pop(typo[0])
    with pytest.raises(check.ValuesError, match=typo[1]):
        check.render_instance(bad)


def test_a_misspelled_k8s_field_inside_run_k8s_config_fails_in_dagster_k8s(values, tmp_path, postgres_server):
    """The chart passes runK8sConfig's contents through: dagster-k8s rejects an unknown field when it builds a Job."""
    bad = copy.deepcopy(values)
    bad["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["jobSpecConfig"]["ttlSecondsAfterFinishd"] = 60
    instance = _instance(bad, tmp_path, postgres_server)
    [location] = check.code_locations(values)
    with pytest.raises(Exception, match="ttlSecondsAfterFinishd|ttl_seconds_after_finishd"):
        check.step_jobs(instance, location["env"], steps=("tracks",))


def test_a_wrong_module_path_fails(values, tmp_path, postgres_server):
    bad = copy.deepcopy(values)
    bad["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"] = ["-m", "fm_assets.definitons"]
    with pytest.raises(check.ValuesError, match="fm_assets.definitons"):
        check.code_locations(bad)
    cfg = check.render_instance(values)
    cfg["run_launcher"]["module"] = "dagster_k8s.launcher_typo"
    with pytest.raises(Exception, match="dagster_k8s.launcher_typo"):
        check.instance_for(cfg, tmp_path / "home", postgres_server)


def test_a_bare_postgresql_scheme_fails(values, tmp_path, postgres_server):
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which dagster-postgres cannot use."""
    bad = copy.deepcopy(values)
    bad["postgresql"]["postgresqlScheme"] = "postgresql"
    with pytest.raises(Exception, match="psycopg"):
        _instance(bad, tmp_path, postgres_server)


def test_a_typo_in_the_gpu_op_tag_fails(values, tmp_path, postgres_server):
    import json

    from fm_assets.defs import placement

    instance = _instance(values, tmp_path, postgres_server)
    bad = {"container_config": {"resourcs": {"limits": {"nvidia.com/gpu": "1"}}}}
    tags = {**placement.GPU_STEP_TAGS, placement.K8S_CONFIG_TAG: json.dumps(bad)}
    [location] = check.code_locations(values)
    check.step_jobs(instance, location["env"], steps=("ingest",), op_tags={"ingest": placement.GPU_STEP_TAGS})
    with pytest.raises(Exception, match="resourcs"):
        check.step_jobs(instance, location["env"], steps=("ingest",), op_tags={"ingest": tags})
