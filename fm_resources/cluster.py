"""Executors that run a run's steps on other machines (FM_EXECUTOR, fm_resources.settings.executor_kind):

- `in_process` (the default): every step in the run's own process (fm_assets/definitions.py says why);
- `celery`: each step is a Celery task on the queue its op tag names (fm_assets/defs/placement.py: `ingest` (which
  detects) on `gpu`, the rest on `dagster`), run by a worker (`celery -A fm_assets.celery_app worker -Q gpu`, see
  deploy/celery/) against the shared instance (Postgres), broker (Redis) and lake (S3);
- `k8s`: Dagster's k8s_job_executor, a Kubernetes Job per step (deploy/kubernetes/), with the op tags'
  `dagster-k8s/config` (the GPU request of `ingest`, which detects) and a TTL on finished Jobs.

Dagster's Celery executor waits for a step's result for ever: a step sent to a queue no worker consumes, or held
by a worker that died (kill -9, a lost machine), never ends and holds the run. `FmCeleryExecutor` watches every
submitted step: it fails the step with a clear error when no live worker has consumed its queue for
FM_CELERY_NO_WORKER_TIMEOUT_S (busy workers are live: waiting behind other steps is not an error), or when the
worker that started it stops answering; the run then fails and run_retries re-executes it.
"""

from __future__ import annotations

import time

from fm_resources import settings

CELERY_DEFAULT_QUEUE = "dagster"
# Settings of the Celery app, the same in the executor (which submits) and the workers (fm_assets.celery_app):
# one task at a time per worker process, the STARTED state with the worker's name (how a dead worker is noticed).
CELERY_CONFIG = {"task_track_started": True, "worker_prefetch_multiplier": 1,
                 "broker_connection_retry_on_startup": True, "result_expires": 7 * 24 * 3600}
# Finished step and run Jobs are deleted after an hour (their logs are in the compute-log bucket).
K8S_JOB_TTL_S = 3600

CELERY_TICK_S = 0.2  # how often the run's loop looks at its steps' results (dagster-celery: 1 s)
WORKER_CHECK_EVERY_S = 5.0  # how often a waiting step asks the workers who is alive (one broadcast for all steps)
LOST_AFTER_CHECKS = 3  # a worker that misses this many checks in a row while holding a step is gone


class StepPlacementError(Exception):
    """A step no worker ran or finished (no worker on its queue, or its worker died)."""


def executor_def(kind: str | None = None):
    """The executor for runs of this code location (FM_EXECUTOR)."""
    from dagster import in_process_executor

    kind = kind or settings.executor_kind()
    if kind == "celery":
        return fm_celery_executor().configured(
            {"broker": settings.celery_broker(), "backend": settings.celery_backend(),
             "config_source": CELERY_CONFIG, "no_worker_timeout_s": settings.celery_no_worker_timeout_s()},
            name="fm_celery")
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        config: dict = {"step_k8s_config": {"job_spec_config": {"ttl_seconds_after_finished": K8S_JOB_TTL_S}}}
        if settings.k8s_namespace():
            config["job_namespace"] = settings.k8s_namespace()
        return k8s_job_executor.configured(config, name="fm_k8s")
    return in_process_executor


def celery_app_args() -> dict:
    """What the workers' Celery app is built from (fm_assets.celery_app): the executor's broker and settings."""
    return _celery_executor_class()(broker=settings.celery_broker(), backend=settings.celery_backend(),
                                    config_source=CELERY_CONFIG).app_args()


def fm_celery_executor():
    """dagster-celery's executor, with a watch on every step it submits (module doc)."""
    from dagster import Field, executor, multiple_process_executor_requirements
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CELERY_CONFIG as DAGSTER_CELERY_CONFIG

    @executor(name="fm_celery", config_schema={
        **DAGSTER_CELERY_CONFIG,
        "no_worker_timeout_s": Field(float, is_required=False, default_value=300.0,
                                     description="Fail a step when no live worker consumed its queue for this long.")},
        requirements=multiple_process_executor_requirements())
    def _fm_celery_executor(init_context):
        cfg = init_context.executor_config
        return _celery_executor_class()(
            broker=cfg.get("broker"), backend=cfg.get("backend"), config_source=cfg.get("config_source"),
            include=cfg.get("include"), retries=RetryMode.from_config(cfg["retries"]),
            no_worker_timeout_s=cfg["no_worker_timeout_s"])

    return _fm_celery_executor


_CLASS = None


def _celery_executor_class():
    global _CLASS
    if _CLASS is None:
        from dagster._core.execution.retries import RetryMode
        from dagster_celery.executor import CeleryExecutor, _submit_task

        class FmCeleryExecutor(CeleryExecutor):
            def __init__(self, retries=None, no_worker_timeout_s: float = 300.0, **kwargs):
                super().__init__(retries=retries or RetryMode(RetryMode.DISABLED), **kwargs)
                self.no_worker_timeout_s = no_worker_timeout_s

            def execute(self, plan_context, execution_plan):
                import dagster_celery.core_execution_loop as loop
                from dagster_celery.core_execution_loop import core_celery_execution_loop

                # dagster-celery's loop sleeps TICK_SECONDS (1 s) between looks at the results: a run's ~10
                # dependent steps each wait up to a tick before the next is sent. Results are read from Redis.
                loop.TICK_SECONDS = CELERY_TICK_S

                def submit(app, context, step, queue, priority, known_state):
                    result = _submit_task(app, context, step, queue, priority, known_state)
                    return WatchedResult(result, app, queue, step.key, self.no_worker_timeout_s)

                return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)

        _CLASS = FmCeleryExecutor
    return _CLASS


# -- who is alive ---------------------------------------------------------------------------------------------------
class _WorkerWatch:
    """Asks the workers who is alive every WORKER_CHECK_EVERY_S in a background thread (a broadcast waits its whole
    timeout for replies), so the executor's loop never blocks on it; one per broker and process."""

    def __init__(self, app):
        import threading

        self.app = app
        self.workers: dict[str, set[str]] = {}
        self.at = 0.0  # monotonic time of the last answer; 0: none yet
        self._thread = threading.Thread(target=self._loop, name="fm-celery-worker-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                replies = self.app.control.inspect(timeout=2.0).active_queues() or {}
                self.workers = {name: {q["name"] for q in queues} for name, queues in replies.items()}
                self.at = time.monotonic()
            except Exception:  # the broker unreachable: no news (the steps' own results will say so)
                pass
            time.sleep(WORKER_CHECK_EVERY_S)


_watches: dict[str, _WorkerWatch] = {}


def live_workers(app) -> dict[str, set[str]] | None:
    """{worker name: the queues it consumes} as last answered (at most a few seconds old), or None when there is no
    fresh answer yet (then nothing is concluded)."""
    key = str(app.conf.broker_url)
    watch = _watches.get(key)
    if watch is None:
        watch = _watches[key] = _WorkerWatch(app)
    if not watch.at or time.monotonic() - watch.at > 4 * WORKER_CHECK_EVERY_S:
        return None
    return watch.workers


class WatchedResult:
    """A submitted step's Celery AsyncResult that becomes ready with an error (StepPlacementError) when no live worker
    consumed its queue for `timeout_s`, or when the worker running it stops answering; otherwise the result itself."""

    def __init__(self, inner, app, queue: str, step_key: str, timeout_s: float):
        self.inner, self.app, self.queue, self.step_key, self.timeout_s = inner, app, queue, step_key, timeout_s
        self._waiting_since = time.monotonic()
        self._last_check = 0.0
        self._misses = 0
        self._error: str | None = None

    def ready(self) -> bool:
        if self._error is not None or self.inner.ready():
            return True
        now = time.monotonic()
        if now - self._last_check >= WORKER_CHECK_EVERY_S:
            self._last_check = now
            self._check(now)
        return self._error is not None

    def _check(self, now: float) -> None:
        workers = live_workers(self.app)
        if workers is None:  # no fresh answer from the broadcast yet
            return
        if self.inner.state == "STARTED":
            host = (self.inner.info or {}).get("hostname") if isinstance(self.inner.info, dict) else None
            self._waiting_since = now
            self._misses = 0 if (host is None or host in workers) else self._misses + 1
            if self._misses >= LOST_AFTER_CHECKS:
                self._fail(f'Celery worker "{host}" running step "{self.step_key}" stopped answering (the worker or '
                           "its machine died); the step did not finish")
            return
        if any(self.queue in queues for queues in workers.values()):
            self._waiting_since = now
        elif now - self._waiting_since > self.timeout_s:
            self._fail(f'no Celery worker consumes queue "{self.queue}": step "{self.step_key}" waited '
                       f"{now - self._waiting_since:.0f} s (FM_CELERY_NO_WORKER_TIMEOUT_S={self.timeout_s:g}); start "
                       f"one with `celery -A fm_assets.celery_app worker -Q {self.queue}` (live workers: "
                       f"{_describe(workers)})")

    def _fail(self, message: str) -> None:
        self._error = message
        try:
            self.inner.revoke()  # a worker that turns up later must not run it any more
        except Exception:  # the broker being down is reported by the step's error anyway
            pass

    def get(self, *args, **kwargs):
        if self._error is not None:
            raise StepPlacementError(self._error)
        return self.inner.get(*args, **kwargs)

    def revoke(self, *args, **kwargs):
        return self.inner.revoke(*args, **kwargs)


def _describe(workers: dict[str, set[str]]) -> str:
    return ", ".join(f"{name} on {sorted(queues)}" for name, queues in sorted(workers.items())) or "none"
