"""Where things live. Everything is derived from a few environment variables so that `fm`, `dagster dev`
and the sensor in a daemon all agree without extra configuration.

FM_HOME     working directory of the project (default ./.fm): Dagster instance, local lake, caches.
FM_LAKE     root of the label lake: a local folder or s3://bucket/prefix (default $FM_HOME/lake).
FM_INPUTS   comma-separated folders or s3://bucket/prefix URIs the video sensor watches (default $FM_HOME/inbox).
AWS_ENDPOINT_URL / AWS_* are honoured by boto3 for S3 (e.g. MinIO or moto).
"""

from __future__ import annotations

import os
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


def dagster_home() -> Path:
    """The Dagster instance directory inside FM_HOME (created with a minimal dagster.yaml)."""
    home = Path(os.environ.get("DAGSTER_HOME") or fm_home() / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(
            "telemetry:\n  enabled: false\n"
            "concurrency:\n  pools:\n    default_limit: 4\n"
            "run_retries:\n  enabled: true\n  max_retries: 1\n"
        )
    return home


def llm_model() -> str:
    """The litellm model string captions and LLM questions use (FM_LLM_MODEL, e.g. openai/gpt-4o-mini,
    gemini/gemini-2.0-flash, ollama/llama3.2, hosted_vllm/Qwen2.5-VL-7B); `template` (the default) writes
    deterministic captions offline and asks no LLM questions."""
    return os.environ.get("FM_LLM_MODEL", "template").strip() or "template"


def backfill_batch() -> int:
    """Video partitions per run when a backfill runs (FM_BACKFILL_BATCH, default 10): bigger batches spend less
    time starting runs; a failure fails (and retries) its whole batch."""
    return max(1, int(os.environ.get("FM_BACKFILL_BATCH", "10")))


def pool_limits() -> dict[str, int]:
    """Dagster concurrency pools and their default slots: one detector at a time per GPU, a few LLM callers."""
    return {"gpu": max(1, int(os.environ.get("FM_GPU_SLOTS", "1"))),
            "llm": max(1, int(os.environ.get("FM_LLM_SLOTS", "4")))}
