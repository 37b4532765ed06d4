"""The Celery app the workers run (`celery -A fm_assets.celery_app worker -Q gpu`): the step task of dagster-celery's
executor (same name, arguments and result), on the broker and with the settings of the `celery` executor
(fm_resources.cluster), read from this machine's environment (FM_CELERY_BROKER, FM_CELERY_BACKEND). A worker also
needs the instance (DAGSTER_HOME with the cluster's dagster.yaml, FM_DAGSTER_PG_URL) and the lake (FM_LAKE=s3://...,
AWS_*); see deploy/celery/.

Each pool process imports the code location when it starts (fm_assets.definitions, with torch and the detector,
and mmdet's tracker modules: seconds), not on its first step, so a worker that answers is ready to run steps at full
speed. It also keeps one DagsterInstance for all its steps, whose Postgres storages hold a pooled connection:
dagster-celery's own task builds the instance again for every step, and Dagster's Postgres storages open a new
connection for every query (NullPool), which made a step's bookkeeping cost more than its work on short steps
(bench/cluster.py, BENCHMARKS.md)."""

import logging

from celery.signals import worker_process_init
from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.instance.ref import InstanceRef
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value, unpack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app

from fm_resources.cluster import celery_app_args

app = make_app(celery_app_args())

READY = "fm: code location imported, ready for steps"
POOL_RECYCLE_S = 3600  # a pooled connection is replaced after an hour (a Postgres restart or failover drops it)
_instances: dict[str, DagsterInstance] = {}


def worker_instance(ref: InstanceRef) -> DagsterInstance:
    """The instance of `ref`, made once per pool process; its storages keep one open connection (plus a few
    more under load) instead of connecting for every query, with no statement timeout (a step's queries may be
    long). SQLite storages ignore this."""
    key = serialize_value(ref)
    instance = _instances.get(key)
    if instance is None:
        instance = _instances[key] = DagsterInstance.from_ref(ref)
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=4)
    return instance


@app.task(bind=True, name=TASK_EXECUTE_PLAN_NAME)
def execute_plan(self, execute_step_args_packed: dict, executable_dict: dict) -> list[str]:
    """Run the steps the executor sent in this process; returns the serialized events (as dagster-celery's task),
    the first being the engine event that names this worker (`Celery worker`)."""
    args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
    instance = worker_instance(args.instance_ref)
    job = ReconstructableJob.from_dict(executable_dict)
    run = instance.get_run_by_id(args.run_id)
    if run is None:
        raise RuntimeError(f"run {args.run_id} is not in the instance this worker uses ({instance.get_ref()})")
    plan = create_execution_plan(job, run.run_config, step_keys_to_execute=args.step_keys_to_execute,
                                 known_state=args.known_state)
    step_keys = ", ".join(args.step_keys_to_execute or [])
    handle = plan.step_handle_for_single_step_plans()
    events = [instance.report_engine_event(
        f"Executing steps {step_keys} in celery worker", run,
        EngineEventData({"step_keys": step_keys, "Celery worker": self.request.hostname}, marker_end=DELEGATE_MARKER),
        CeleryExecutor, step_key=handle.to_key() if handle else None)]
    events += execute_plan_iterator(execution_plan=plan, job=job, dagster_run=run, instance=instance,
                                    retry_mode=args.retry_mode, run_config=run.run_config)
    return [serialize_value(event) for event in events]


@worker_process_init.connect
def _import_code_location(**_kwargs) -> None:
    import fm_assets.definitions  # noqa: F401
    from fm_resources.mmdet_trackers import register_mmdet

    register_mmdet()
    logging.getLogger(__name__).warning(READY)
