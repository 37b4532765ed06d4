"""The project's Definitions with the executor named by FM_BENCH_EXECUTOR (`multiprocess`, Dagster's default and
the project's until 2026-11-30, or `in_process`, the project's since), for ``bench/dagster_overhead.py
--variants multiprocess in_process``, which loads this file through a temporary workspace.yaml. Everything else
(assets, checks, jobs, sensors, resources) is fm_assets.definitions as is."""

import os

from dagster import in_process_executor, multiprocess_executor
from dagster._record import copy

import fm_assets.definitions as project  # a module, so that only one Definitions object is at module scope

EXECUTORS = {"multiprocess": multiprocess_executor, "in_process": in_process_executor}

defs = copy(project.defs, executor=EXECUTORS[os.environ.get("FM_BENCH_EXECUTOR", "in_process")])
