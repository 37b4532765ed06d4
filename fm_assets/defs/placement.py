"""Where a step runs when a run's steps leave its process (FM_EXECUTOR=celery or k8s): op tags the executors read.

- `ingest` (which makes `detections` in its decode pass) is the only step that needs a GPU: with Celery it goes to the `gpu` queue (`dagster-celery/queue`;
  start the GPU box's worker with `-Q gpu`), on Kubernetes its step Job asks for `nvidia.com/gpu: 1` and lands on a
  GPU node (node selector + toleration of the usual GPU taint) (`dagster-k8s/config`, read by k8s_job_executor).
- Every other step goes to Celery's default queue (`dagster`) or an ordinary pod.
- The concurrency pools are unchanged and enforced by the instance whatever the executor: `gpu` (ingest) and
  `llm` (captions, qa_pairs).

Under the default in-process executor these tags are inert. The stage modules put them on their assets' op_tags
(fm_assets/defs/ingest.py), so the placement of every step is read in one place: here.
"""

from __future__ import annotations

import json

CELERY_QUEUE_TAG = "dagster-celery/queue"
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_QUEUE = "gpu"

# Nodes with a GPU: the label NVIDIA's GPU feature discovery (GPU operator) puts on them, and the taint GPU node pools
# usually carry so that only pods asking for a GPU land there.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

GPU_STEP_K8S_CONFIG = {
    "container_config": {"resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {"node_selector": GPU_NODE_SELECTOR, "tolerations": GPU_TOLERATIONS},
}

# the op tags of the `ingest` step (its @multi_asset's op_tags)
GPU_STEP_TAGS: dict[str, str] = {CELERY_QUEUE_TAG: GPU_QUEUE, K8S_CONFIG_TAG: json.dumps(GPU_STEP_K8S_CONFIG, sort_keys=True)}
