"""The Celery app the workers run (`celery -A fm_assets.celery_app worker -Q gpu`): dagster-celery's step task on the
broker and with the settings of the `celery` executor (fm_resources.cluster), read from this machine's environment
(FM_CELERY_BROKER, FM_CELERY_BACKEND). A worker also needs the instance (DAGSTER_HOME with the cluster's dagster.yaml,
FM_DAGSTER_PG_URL) and the lake (FM_LAKE=s3://..., AWS_*); see deploy/celery/.

Each pool process imports the code location when it starts (fm_assets.definitions, with torch and the detector:
seconds), not on its first step, so a worker that answers is ready to run steps at full speed."""

import logging

from celery.signals import worker_process_init
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from fm_resources.cluster import celery_app_args

app = make_app(celery_app_args())

execute_plan = create_task(app)


@worker_process_init.connect
def _import_code_location(**_kwargs) -> None:
    import fm_assets.definitions  # noqa: F401

    logging.getLogger(__name__).warning(READY)


READY = "fm: code location imported, ready for steps"
