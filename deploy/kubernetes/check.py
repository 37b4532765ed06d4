"""Check deploy/kubernetes/values.yaml offline, without helm or a cluster: the dagster.yaml the official chart renders
from it, instantiated as a real DagsterInstance, and the step Jobs the k8s_job_executor would create.

1. `render_instance(values)` renders the chart's instance ConfigMap (templates/configmap-instance.yaml and
   helpers/instance/*.tpl of dagster-io/dagster's helm/dagster, 1.13) for the sections these values use, and refuses
   keys the chart's values schema does not have (the chart's pydantic schema forbids extra keys: a misspelled field
   fails `helm install` there and here);
2. `instance_for(...)` writes that dagster.yaml with `load_incluster_config: false` and a dummy kubeconfig, the
   Postgres host replaced by a reachable one (scheme and params kept), and instantiates it: K8sRunLauncher (its
   config validated by dagster-k8s), S3ComputeLogManager, run monitoring, run retries, the run queue;
3. `code_locations(values)` imports the module each user deployment serves (a wrong module path fails here, although
   the chart's schema accepts any string);
4. `step_jobs(...)` builds, with the deployment's environment (FM_EXECUTOR=k8s), the code location's executor and the
   Kubernetes Job manifest of a step as dagster-k8s's K8sStepHandler.launch_step does (run launcher, executor
   step_k8s_config and the op's `dagster-k8s/config` tag merged), without sending it.

    .venv/bin/python deploy/kubernetes/check.py [values.yaml]   # prints the rendered dagster.yaml and the GPU check
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import yaml

from fm_resources.settings import environ

HERE = Path(__file__).resolve().parent
RELEASE_NAMESPACE = "default"
FULLNAME = "fm-dagster"

# The chart's values schema (helm/dagster/schema: extra keys forbidden) for the sections rendered here.
K8S_RUN_LAUNCHER_KEYS = {"image", "labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext",
                         "runK8sConfig", "jobNamespace", "kubeconfigFile", "imagePullPolicy", "loadInclusterConfig",
                         "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes"}
K8S_RUN_LAUNCHER_REQUIRED = {"imagePullPolicy", "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars",
                             "volumeMounts", "volumes"}
RUN_K8S_CONFIG = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                  "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
                  "jobMetadata": "job_metadata"}
POSTGRESQL_KEYS = {"enabled", "image", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"}
S3_COMPUTE_LOGS = {"bucket": "bucket", "localDir": "local_dir", "prefix": "prefix", "useSsl": "use_ssl",
                   "verify": "verify", "verifyCertPath": "verify_cert_path", "endpointUrl": "endpoint_url",
                   "skipEmptyFiles": "skip_empty_files", "uploadInterval": "upload_interval"}
RUN_MONITORING = {"enabled": "enabled", "startTimeoutSeconds": "start_timeout_seconds",
                  "cancelTimeoutSeconds": "cancel_timeout_seconds", "maxResumeRunAttempts": "max_resume_run_attempts",
                  "pollIntervalSeconds": "poll_interval_seconds",
                  "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds"}
QUEUED_RUN_COORDINATOR = {"maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
                          "dequeueIntervalSeconds": "dequeue_interval_seconds",
                          "dequeueNumWorkers": "dequeue_num_workers", "dequeueUseThreads": "dequeue_use_threads",
                          "blockOpConcurrencyLimitedRuns": "block_op_concurrency_limited_runs"}
USER_DEPLOYMENT_KEYS = {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "port", "env", "envConfigMaps",
                        "envSecrets", "includeConfigInLaunchedRuns", "resources", "labels", "annotations",
                        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
                        "replicaCount", "volumes", "volumeMounts", "readinessProbe", "livenessProbe", "startupProbe",
                        "service", "schedulerName", "initContainers", "sidecarContainers", "deploymentLabels",
                        "podLabels", "deploymentStrategy", "imagePullSecrets"}


class ValuesError(ValueError):
    """The values would not render (a key the chart does not know, a required one missing)."""


def _strict(section: dict, allowed: set[str] | dict, where: str, required: set[str] = frozenset()) -> dict:
    if not isinstance(section, dict):
        raise ValuesError(f"{where}: expected a mapping, got {section!r}")
    unknown = set(section) - set(allowed)
    if unknown:
        raise ValuesError(f"{where}: unknown key(s) {sorted(unknown)} (the chart knows {sorted(allowed)})")
    missing = set(required) - set(section)
    if missing:
        raise ValuesError(f"{where}: missing required key(s) {sorted(missing)}")
    return section


def load_values(path: Path = HERE / "values.yaml") -> dict:
    return yaml.safe_load(Path(path).read_text())


def render_instance(values: dict) -> dict:
    """The dagster.yaml (as a dict) the chart renders from `values` (see the module's doc)."""
    pg = _strict(values["postgresql"], POSTGRESQL_KEYS, "postgresql")
    postgres_db = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
                   "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
                   "port": pg["service"]["port"], "params": pg.get("postgresqlParams") or {}}
    if pg.get("postgresqlScheme"):
        postgres_db["scheme"] = pg["postgresqlScheme"]
    storage = {"postgres_db": postgres_db}
    cfg: dict = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
    }
    launcher = values["runLauncher"]
    _strict(launcher, {"type", "config"}, "runLauncher")
    if launcher["type"] != "K8sRunLauncher":
        raise ValuesError(f"runLauncher.type: {launcher['type']!r}; this deployment uses K8sRunLauncher")
    _strict(launcher["config"], {"k8sRunLauncher", "celeryK8sRunLauncher", "customRunLauncher"}, "runLauncher.config")
    k8s = _strict(launcher["config"]["k8sRunLauncher"], K8S_RUN_LAUNCHER_KEYS, "runLauncher.config.k8sRunLauncher",
                  K8S_RUN_LAUNCHER_REQUIRED)
    g = values.get("global", {})
    lc = {"load_incluster_config": k8s["loadInclusterConfig"],
          "job_namespace": k8s.get("jobNamespace") or RELEASE_NAMESPACE,
          "image_pull_policy": k8s["imagePullPolicy"],
          "service_account_name": g.get("serviceAccountName") or f"{FULLNAME}",
          "dagster_home": g.get("dagsterHome", "/opt/dagster/dagster_home"),
          "instance_config_map": f"{FULLNAME}-instance",
          "postgres_password_secret": g.get("postgresqlSecretName", "dagster-postgresql-secret")}
    if k8s.get("kubeconfigFile"):
        lc["kubeconfig_file"] = k8s["kubeconfigFile"]
    if "image" in k8s:
        lc["job_image"] = f"{k8s['image']['repository']}:{k8s['image']['tag']}"
    for key, name in (("envConfigMaps", "env_config_maps"), ("envSecrets", "env_secrets")):
        if k8s.get(key):
            lc[name] = [item["name"] for item in k8s[key] if "name" in item]
    for key, name in (("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
                      ("labels", "labels"), ("resources", "resources"), ("schedulerName", "scheduler_name"),
                      ("securityContext", "security_context")):
        if k8s.get(key):
            lc[name] = k8s[key]
    if k8s.get("failPodOnRunFailure"):
        lc["fail_pod_on_run_failure"] = True
    if k8s.get("runK8sConfig"):
        run_k8s = _strict(k8s["runK8sConfig"], RUN_K8S_CONFIG, "runLauncher.config.k8sRunLauncher.runK8sConfig")
        lc["run_k8s_config"] = {RUN_K8S_CONFIG[k]: v for k, v in run_k8s.items() if v}
    cfg["run_launcher"] = {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": lc}

    daemon = values.get("dagsterDaemon", {})
    if daemon.get("enabled", True) and daemon.get("runCoordinator", {}).get("enabled"):
        rc = daemon["runCoordinator"]
        if rc["type"] != "QueuedRunCoordinator":
            raise ValuesError(f"dagsterDaemon.runCoordinator.type: {rc['type']!r}")
        q = _strict(rc.get("config", {}).get("queuedRunCoordinator", {}), QUEUED_RUN_COORDINATOR,
                    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator")
        cfg["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                  "config": {QUEUED_RUN_COORDINATOR[k]: v for k, v in q.items()}}
    clm = values["computeLogManager"]
    if clm["type"] != "S3ComputeLogManager":
        raise ValuesError(f"computeLogManager.type: {clm['type']!r}; this deployment keeps compute logs on S3")
    s3 = _strict(clm["config"]["s3ComputeLogManager"], S3_COMPUTE_LOGS, "computeLogManager.config.s3ComputeLogManager")
    cfg["compute_logs"] = {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
                           "config": {S3_COMPUTE_LOGS[k]: v for k, v in s3.items() if v not in (None, "")}}
    if daemon.get("enabled", True) and daemon.get("runMonitoring", {}).get("enabled"):
        rm = _strict(daemon["runMonitoring"], RUN_MONITORING, "dagsterDaemon.runMonitoring")
        cfg["run_monitoring"] = {RUN_MONITORING[k]: v for k, v in rm.items()}
    if daemon.get("enabled", True) and daemon.get("runRetries", {}).get("enabled"):
        rr = _strict(daemon["runRetries"], {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
                     "dagsterDaemon.runRetries")
        cfg["run_retries"] = {"enabled": True, **({"max_retries": rr["maxRetries"]} if rr.get("maxRetries") else {})}
    cfg["telemetry"] = {"enabled": values.get("telemetry", {}).get("enabled", True)}
    cfg.update(values.get("additionalInstanceConfig") or {})
    return cfg


def code_locations(values: dict) -> list[dict]:
    """The user deployments, each checked: known keys, and the module it serves importable here."""
    out = []
    for i, dep in enumerate(values["dagster-user-deployments"]["deployments"]):
        _strict(dep, USER_DEPLOYMENT_KEYS, f"dagster-user-deployments.deployments[{i}]")
        args = dep["dagsterApiGrpcArgs"]
        if "-m" not in args and "--module-name" not in args:
            raise ValuesError(f"deployment {dep['name']}: dagsterApiGrpcArgs {args} name no module (-m)")
        module = args[args.index("-m" if "-m" in args else "--module-name") + 1]
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ValuesError(f"deployment {dep['name']}: module {module!r} does not exist")
        out.append({"name": dep["name"], "module": module, "env": {e["name"]: e["value"] for e in dep.get("env", [])}})
    return out


DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "offline",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline", "namespace": "default"}}],
    "users": [{"name": "offline", "user": {"token": "offline"}}],
}


def instance_for(cfg: dict, home: Path, postgres: dict | None = None):
    """Instantiate the rendered instance offline in `home`: a dummy kubeconfig instead of the in-cluster one, and the
    Postgres connection of `postgres` ({hostname, port, username, password, db_name}; scheme and params kept from
    the chart) or, without it, SQLite storage in `home`."""
    from dagster import DagsterInstance

    cfg = json.loads(json.dumps(cfg))
    home.mkdir(parents=True, exist_ok=True)
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))
    launcher = cfg["run_launcher"]["config"]
    launcher["load_incluster_config"] = False
    launcher["kubeconfig_file"] = str(kubeconfig)
    for key in ("schedule_storage", "run_storage", "event_log_storage"):
        if postgres is None:
            cfg.pop(key)
        else:
            db = cfg[key]["config"]["postgres_db"]
            db.update({k: v for k, v in postgres.items() if k in ("hostname", "port", "username", "db_name")})
            db["password"] = postgres.get("password", "")
    if postgres is None:
        cfg["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    instance = DagsterInstance.from_config(str(home))
    # build every configured part now (they are lazy): a bad field or module fails here
    instance.run_launcher  # noqa: B018
    instance.compute_log_manager  # noqa: B018
    instance.run_coordinator  # noqa: B018
    instance.get_runs_count()
    return instance


def step_jobs(instance, env: dict[str, str], steps: tuple[str, ...] = ("ingest", "tracks"),
              image: str = "fm:check", op_tags: dict[str, dict[str, str]] | None = None) -> dict:
    """{step: the Kubernetes Job (kubernetes.client.V1Job) the code location's executor would create for it}, built
    with the deployment's environment `env` as K8sStepHandler.launch_step builds it; `op_tags` replaces a step's
    op tags (to check other tags than the code's)."""
    from dagster import DagsterRun, InitExecutorContext
    from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

    with environ(env):
        from fm_assets.definitions import build_defs

        defs = build_defs()
        job = defs.resolve_job_def("label_videos")
        executor_def = job.executor_def
        if executor_def.name != "fm_k8s":
            raise ValuesError(f"the code location's executor is {executor_def.name!r}, not fm_k8s (FM_EXECUTOR=k8s)")
        config = executor_def.config_schema.resolve_config({}).value["config"]  # with the executor's defaults
        recon = ReconstructableJob(ReconstructableRepository.for_module("fm_assets.definitions", "defs"),
                                   "label_videos")
        executor = executor_def.executor_creation_fn(InitExecutorContext(
            job=recon, executor_def=executor_def, executor_config=config, instance=instance))
        handler = executor._step_handler  # K8sStepHandler
        graph = defs.resolve_asset_graph()
        ops = {graph.get(k).assets_def.op.name: graph.get(k).assets_def.op for k in graph.get_all_asset_keys()
               if graph.get(k).assets_def.is_executable}  # a step is an op: `ingest` makes three assets
        run = DagsterRun(job_name="label_videos", run_id="0" * 36)
        out = {}
        for step in steps:
            tags = (op_tags or {}).get(step, ops[step].tags)
            context = (K8sContainerContext.create_for_run(run, instance.run_launcher, include_run_tags=False)
                       .merge(handler._executor_container_context)
                       .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags))))
            out[step] = construct_dagster_k8s_job(
                job_config=context.get_k8s_job_config(image, instance.run_launcher),
                args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{step}", pod_name=step,
                component="step_worker", user_defined_k8s_config=context.run_k8s_config,
                labels={"dagster/op": step})
        return out


def gpu_of(job) -> tuple[str | None, dict]:
    """(the nvidia.com/gpu limit, the node selector) of a step Job's pod."""
    pod = job.spec.template.spec
    limits = (pod.containers[0].resources.limits or {}) if pod.containers[0].resources else {}
    return limits.get("nvidia.com/gpu"), dict(pod.node_selector or {})


def main(argv: list[str]) -> int:
    values = load_values(Path(argv[0]) if argv else HERE / "values.yaml")
    cfg = render_instance(values)
    print(yaml.safe_dump(cfg, sort_keys=False))
    locations = code_locations(values)
    with tempfile.TemporaryDirectory() as tmp:
        instance = instance_for(cfg, Path(tmp) / "dagster_home")
        print("instance:", type(instance.run_launcher).__name__, type(instance.compute_log_manager).__name__,
              "(storage: SQLite stand-in; tests/assets/test_k8s_deploy.py uses a real Postgres)")
        for step, job in step_jobs(instance, locations[0]["env"]).items():
            print(f"step {step}: gpu {gpu_of(job)[0]}, node selector {gpu_of(job)[1]}, "
                  f"ttlSecondsAfterFinished {job.spec.ttl_seconds_after_finished}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
