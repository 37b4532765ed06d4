"""Where things live and how the project is tuned from outside: the ONLY module that reads environment variables,
always inside a function (at call time, never at import), so `fm`, `dagster dev`, the daemon and the tests agree
without extra configuration and a test can change a variable and rebuild the definitions.

FM_HOME     working directory of the project (default ./.fm): Dagster instance, local lake, caches.
FM_LAKE     root of the label lake: a local folder or s3://bucket/prefix (default $FM_HOME/lake).
FM_INPUTS   comma-separated folders or s3://bucket/prefix URIs the video sensor watches (default $FM_HOME/inbox).
FM_LLM_MODEL, FM_LLM_API_BASE, the LLM key's variable; FM_BACKFILL_CRON, FM_BACKFILL_BATCH, FM_COMPACT_CRON,
FM_COMPACT_MIN_CHANGED, FM_MAX_CONCURRENT_RUNS, FM_GPU_SLOTS, FM_LLM_SLOTS, FM_SQL_DIR, DAGSTER_HOME: see README.
AWS_ENDPOINT_URL / AWS_* are honoured by boto3 for S3 (e.g. MinIO or moto); FM_S3_RETRY_S bounds S3 retries.
FM_TEXT_CHECK_SEVERITY, FM_UI_ALLOWED_HOSTS, FM_DEBUG: README (crash safety, fm ui).
FM_DAGSTER_PG_URL (the instance on Postgres), FM_EXECUTOR, FM_CELERY_BROKER, FM_CELERY_BACKEND,
FM_CELERY_NO_WORKER_TIMEOUT_S, FM_K8S_NAMESPACE: README "Scale out".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def fm_home() -> Path:
    return Path(os.environ.get("FM_HOME", ".fm")).expanduser().resolve()


def lake_root() -> str:
    root = os.environ.get("FM_LAKE")
    return root if root else str(fm_home() / "lake")


def input_locations() -> list[str]:
    raw = os.environ.get("FM_INPUTS", "")
    items = [s.strip() for s in raw.split(",") if s.strip()]
    return items or [str(fm_home() / "inbox")]


def max_concurrent_runs() -> int:
    """Runs the instance's run queue starts at once (FM_MAX_CONCURRENT_RUNS; default: the CPUs this process may
    use). Runs use the in-process executor, so a run keeps about one core busy: more runs than cores only share the
    cores, each holding its own memory (a backfill of 10 runs at once measured no faster and with 3x the memory:
    bench/dagster_overhead.py --run-queue project 10/5). -1 means no limit."""
    raw = os.environ.get("FM_MAX_CONCURRENT_RUNS", "").strip()
    if raw:
        value = int(raw)
        return -1 if value < 0 else max(1, value)
    from fm_assets.labels.workers import cores

    return cores()


# How often the run queue (Dagster's QueuedRunCoordinator daemon) looks for queued runs; Dagster's default is 5 s,
# which a backfill pays once for its first runs and again for every run that waits for a free run slot.
DEQUEUE_INTERVAL_S = 1


def instance_settings() -> dict:
    """The dagster.yaml fm writes for a new instance."""
    return {
        "telemetry": {"enabled": False},
        "concurrency": {"pools": {"default_limit": 4}, "runs": {"max_concurrent_runs": max_concurrent_runs()}},
        "run_queue": {"dequeue_interval_seconds": DEQUEUE_INTERVAL_S},
        "run_retries": {"enabled": True, "max_retries": 1},
        **postgres_storage(),  # run, event-log and schedule storage on Postgres when FM_DAGSTER_PG_URL is set
        "run_monitoring": RUN_MONITORING,
        "run_launcher": {"module": "fm_resources.runs", "class": "FmRunLauncher"},
    }


# Run monitoring (the daemon of `fm ui`): a run whose process died is marked failed at the next poll (the run
# launcher, fm_resources.runs.FmRunLauncher, tells a dead process from a live one) and its pool slots are freed
# free_slots_after_run_end_seconds later; runs stuck starting or canceling fail after the timeouts. A dead run is
# not resumed (the default launcher cannot resume): run_retries re-executes it once instead.
RUN_MONITORING = {"enabled": True, "start_timeout_seconds": 180, "cancel_timeout_seconds": 180,
                  "max_resume_run_attempts": 0, "poll_interval_seconds": 15, "free_slots_after_run_end_seconds": 15}


# Settings added after instances already existed: dagster_home() adds them to a dagster.yaml fm wrote where they are
# missing (a value already there, whatever it is, is kept).
ADDED_SETTINGS = (("concurrency", "runs", "max_concurrent_runs"), ("run_queue", "dequeue_interval_seconds"),
                  ("run_monitoring",), ("run_launcher",))

# Dagster refuses a dagster.yaml that limits runs both under `concurrency` and in the run queue's own config.
_RUN_QUEUE_LIMITS = ("max_concurrent_runs", "tag_concurrency_limits", "block_op_concurrency_limited_runs")


HEADER = ("# Dagster instance settings written by fm (fm_resources/settings.py). fm adds settings it introduces later\n"
          "# where they are missing (rewriting this file without its comments) and never changes a value set here.\n")

# what every dagster.yaml fm wrote before HEADER existed holds
_LEGACY_KEYS = (("telemetry", "enabled"), ("concurrency", "pools", "default_limit"), ("run_retries", "max_retries"))


def written_by_fm(text: str, cfg: dict) -> bool:
    """A dagster.yaml fm wrote (its header, or the settings fm wrote before it had one); a DAGSTER_HOME of the
    user's own is never changed."""
    return text.startswith(HEADER.splitlines()[0]) or all(_lookup(cfg, path) is not None for path in _LEGACY_KEYS)


def _lookup(cfg: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(cfg, dict) or key not in cfg:
            return None
        cfg = cfg[key]
    return cfg


def missing_instance_settings(cfg: dict) -> dict[tuple[str, ...], object]:
    """The ADDED_SETTINGS an existing dagster.yaml (parsed) lacks and can take without a conflict."""
    want = instance_settings()
    queue = cfg.get("run_queue") if isinstance(cfg.get("run_queue"), dict) else {}
    coordinator = cfg.get("run_coordinator") if isinstance(cfg.get("run_coordinator"), dict) else {}
    coordinator_cfg = coordinator.get("config") if isinstance(coordinator.get("config"), dict) else {}
    out = {}
    for path in ADDED_SETTINGS:
        if _lookup(cfg, path) is not None:
            continue  # set by the user (or an earlier fm): kept
        if path[0] == "concurrency" and any(k in queue or k in coordinator_cfg for k in _RUN_QUEUE_LIMITS):
            continue  # run limits configured the older way
        if path[0] == "run_queue" and "run_coordinator" in cfg:
            continue  # a run_coordinator of its own excludes run_queue
        if not all(isinstance(_lookup(cfg, path[:i]), (dict, type(None))) for i in range(1, len(path))):
            continue  # something else than a mapping on the way
        out[path] = _lookup(want, path)
    return out


def _with(cfg: dict, additions: dict[tuple[str, ...], object]) -> dict:
    import copy

    out = copy.deepcopy(cfg)
    for path, value in additions.items():
        node = out
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    return out


def ensure_instance_settings(cfg_file: Path) -> list[str]:
    """Add the ADDED_SETTINGS a dagster.yaml fm wrote lacks (see missing_instance_settings), keeping every value in
    it (the file is rewritten: comments are not kept); returns the dotted names of the settings added. A file fm did
    not write (written_by_fm) or that is not a YAML mapping is left alone. A running daemon or `dagster dev` reads
    dagster.yaml when it starts."""
    import yaml

    text = cfg_file.read_text()
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return []
    if not isinstance(cfg, dict) or not written_by_fm(text, cfg):
        return []
    additions = missing_instance_settings(cfg)
    if not additions:
        return []
    new_text = HEADER + yaml.safe_dump(_with(cfg, additions), sort_keys=False, default_flow_style=False)
    tmp = cfg_file.with_name(f".{cfg_file.name}.{os.getpid()}.tmp")
    tmp.write_text(new_text)
    os.replace(tmp, cfg_file)
    return [".".join(p) for p in additions]


def instance_dir() -> Path:
    """Where the Dagster instance lives (DAGSTER_HOME, default $FM_HOME/dagster), creating and changing nothing."""
    return Path(os.environ.get("DAGSTER_HOME") or fm_home() / "dagster")


def environment_digest() -> str:
    """A sha256 of every FM_* and DAGSTER_* variable, names and values: what this environment tells fm (`fm run`'s
    quick check compares it; a secret's value enters only through the digest)."""
    import hashlib

    ours = sorted((k, v) for k, v in os.environ.items() if k.startswith(("FM_", "DAGSTER_")))
    return hashlib.sha256("\0".join(f"{k}={v}" for k, v in ours).encode()).hexdigest()


def dagster_home() -> Path:
    """The Dagster instance directory (DAGSTER_HOME, default $FM_HOME/dagster) with a dagster.yaml: written for a new
    instance (instance_settings()); one fm wrote earlier gets the settings added since (ADDED_SETTINGS) where it
    lacks them."""
    import yaml

    home = instance_dir()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        tmp = cfg.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(HEADER + yaml.safe_dump(instance_settings(), sort_keys=False, default_flow_style=False))
        os.replace(tmp, cfg)
    else:
        ensure_instance_settings(cfg)
    return home


def llm_model() -> str:
    """The litellm model string captions and LLM questions use (FM_LLM_MODEL, e.g. openai/gpt-4o-mini,
    gemini/gemini-2.0-flash, ollama/llama3.2, hosted_vllm/Qwen2.5-VL-7B); `template` (the default) writes
    deterministic captions offline and asks no LLM questions."""
    return os.environ.get("FM_LLM_MODEL", "template").strip() or "template"


def backfill_batch() -> int:
    """Video partitions per run when a backfill runs (FM_BACKFILL_BATCH, default 25): bigger batches spend less
    time starting runs (each run is a new process that imports the code location, Dagster and, for `tracks`,
    mmdet, and writes its run's events); smaller ones give small backfills more runs to spread over the cores; a
    failure fails (and retries) its whole batch. At 1,000 small videos on 2 CPUs, 25 cost -0.11 s per partition
    over in-process compute and 10 cost 0.18 s (bench/dagster_overhead.py, BENCHMARKS.md)."""
    return max(1, int(os.environ.get("FM_BACKFILL_BATCH", "25")))


def pool_limits() -> dict[str, int]:
    """Dagster concurrency pools and their default slots: one detector at a time per GPU, a few LLM callers."""
    return {"gpu": max(1, int(os.environ.get("FM_GPU_SLOTS", "1"))),
            "llm": max(1, int(os.environ.get("FM_LLM_SLOTS", "4")))}


def backfill_cron() -> str:
    """When `nightly_backfill` requests missing or failed partitions (FM_BACKFILL_CRON, UTC)."""
    return os.environ.get("FM_BACKFILL_CRON", "0 3 * * *")


def compact_cron() -> str:
    """When `nightly_compaction` compacts the per-video tables (FM_COMPACT_CRON, UTC; after the backfill)."""
    return os.environ.get("FM_COMPACT_CRON", "0 4 * * *")


def compact_min_changed() -> int:
    """How many files of a table must be new, rewritten or deleted before `fm run` / `fm db` compact it
    (FM_COMPACT_MIN_CHANGED)."""
    return max(1, int(os.environ.get("FM_COMPACT_MIN_CHANGED", "256")))


def sql_dir() -> Path:
    """The SQL folder (views/, checks/, reports/): the `fm_sql` package installed with fm (sql/ of the source
    tree in an editable install), or FM_SQL_DIR."""
    import importlib.resources

    value = os.environ.get("FM_SQL_DIR")
    return Path(value) if value else Path(str(importlib.resources.files("fm_sql")))


def llm_api_base() -> str | None:
    """The LLM's base URL when the resource config names none (FM_LLM_API_BASE)."""
    return os.environ.get("FM_LLM_API_BASE") or None


def secret(variable: str) -> str | None:
    """The value of the environment variable that holds a secret (e.g. the LLM's API key); never stored."""
    return os.environ.get(variable)


def s3_endpoint_url() -> str | None:
    """The S3 endpoint when the resource config names none (AWS_ENDPOINT_URL: MinIO, moto, ...)."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


def s3_region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


AWS_IDENTITY = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_CA_BUNDLE")


def aws_identity() -> str:
    """A digest of the environment boto3 builds an S3 client's credentials from: a client made under one identity
    is never reused under another (fm_resources.s3.s3_client keeps one client per process and identity)."""
    import hashlib

    return hashlib.sha256("\0".join(os.environ.get(v, "") for v in AWS_IDENTITY).encode()).hexdigest()


def dagster_pg_url() -> str | None:
    """The Postgres URL of the Dagster instance (FM_DAGSTER_PG_URL; unset: SQLite in DAGSTER_HOME), normalised to
    the psycopg2 scheme (fm_resources.postgres.normalise_pg_url; another driver is refused with the reason)."""
    raw = os.environ.get("FM_DAGSTER_PG_URL", "").strip()
    if not raw:
        return None
    from fm_resources.postgres import normalise_pg_url

    return normalise_pg_url(raw)


def postgres_storage() -> dict:
    """The `storage` section for a new dagster.yaml: Postgres when FM_DAGSTER_PG_URL is set (the file names the
    variable, not its value), nothing (Dagster's SQLite default) otherwise."""
    if dagster_pg_url() is None:
        return {}
    from fm_resources.postgres import storage_settings

    return storage_settings()


def executor_kind() -> str:
    """Where a run's steps execute (FM_EXECUTOR): `in_process` (the default: in the run's process), `celery` (Celery
    workers, queue per step: fm_resources.cluster) or `k8s` (a Kubernetes Job per step, k8s_job_executor)."""
    value = os.environ.get("FM_EXECUTOR", "in_process").strip().lower() or "in_process"
    if value not in ("in_process", "celery", "k8s"):
        raise ValueError(f"FM_EXECUTOR={value!r}: expected in_process, celery or k8s")
    return value


def celery_broker() -> str:
    """The Celery broker of the `celery` executor and its workers (FM_CELERY_BROKER, default a local Redis)."""
    return os.environ.get("FM_CELERY_BROKER", "").strip() or "redis://127.0.0.1:6379/0"


def celery_backend() -> str:
    """Where Celery workers put step results (FM_CELERY_BACKEND, default the broker)."""
    return os.environ.get("FM_CELERY_BACKEND", "").strip() or celery_broker()


def celery_no_worker_timeout_s() -> float:
    """How long a step waits for a live Celery worker consuming its queue before it fails
    (FM_CELERY_NO_WORKER_TIMEOUT_S, default 300); a busy worker is not a missing one."""
    return max(1.0, float(os.environ.get("FM_CELERY_NO_WORKER_TIMEOUT_S", "300")))


def k8s_namespace() -> str:
    """Namespace of the step Jobs of the `k8s` executor (FM_K8S_NAMESPACE, default the run's own namespace)."""
    return os.environ.get("FM_K8S_NAMESPACE", "").strip()


def s3_retry_seconds() -> float:
    """How long an S3 call (lake or input videos) keeps retrying through connection errors, timeouts, throttling
    and 5xx, with exponential backoff, before it fails (FM_S3_RETRY_S, default 60; 0: one attempt)."""
    return max(0.0, float(os.environ.get("FM_S3_RETRY_S", "60")))


def check_severity(variable: str, default: str) -> str:
    """The severity of a SQL check whose header names a `severity_setting` (e.g. FM_TEXT_CHECK_SEVERITY for the
    text-hygiene checks of captions and LLM questions): WARN or ERROR from that variable, else the header's."""
    value = os.environ.get(variable, "").strip().upper()
    return value if value in ("WARN", "ERROR") else default


def ui_allowed_hosts() -> list[str]:
    """Host names `fm ui` answers besides loopback and the one it is bound to (FM_UI_ALLOWED_HOSTS, comma-separated:
    e.g. the name an authenticating reverse proxy forwards as Host)."""
    return [h.strip().lower() for h in os.environ.get("FM_UI_ALLOWED_HOSTS", "").split(",") if h.strip()]


def debug() -> bool:
    """Show tracebacks (FM_DEBUG=1, or `fm --debug`)."""
    return os.environ.get("FM_DEBUG", "").strip().lower() in ("1", "true", "yes")


def litellm_offline_prices() -> None:
    """Make litellm read its bundled price table instead of downloading one at import
    (LITELLM_LOCAL_MODEL_COST_MAP, unless the user set it): called right before litellm is imported."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def use_dagster_home() -> Path:
    """Point this process's Dagster at fm's instance (DAGSTER_HOME, see dagster_home) and return it."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or with None, unset) environment variables for the duration of a block, then restore them."""
    previous = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def environment(name: str, value: str | None) -> contextlib.AbstractContextManager[None]:
    """Set (or with None, unset) one environment variable for the duration of a block, then restore it."""
    return environ({name: value})
