"""The Dagster instance `fm` and its tools run against ($FM_HOME/dagster unless DAGSTER_HOME is set), with the
concurrency pools set up on first use."""

from __future__ import annotations

from fm_resources.settings import pool_limits, use_dagster_home


def dagster_instance():
    """fm's Dagster instance, pointed at by DAGSTER_HOME for this process, its pools set."""
    from dagster import DagsterInstance

    use_dagster_home()
    instance = DagsterInstance.get()
    set_pool_limits(instance)
    return instance



def set_pool_limits(instance) -> dict[str, int]:
    """Concurrency pools: `gpu` (the detector; FM_GPU_SLOTS, default 1) and `llm` (captions and questions;
    FM_LLM_SLOTS, default 4) get their limits the first time an instance is used; later changes made in the UI
    or with `dagster instance concurrency set` are kept."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    configured = set(storage.get_concurrency_keys())
    for pool, limit in pool_limits().items():
        if pool not in configured:
            storage.set_concurrency_slots(pool, limit)
    return {p: storage.get_concurrency_info(p).slot_count for p in pool_limits()}
