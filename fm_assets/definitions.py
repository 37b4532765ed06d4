"""The whole graph at a glance.

    source video --(sensor / `fm run`)--> videos, raw_clips --> detections --> tracks
        --> trajectories --> captions --> qa_pairs                                     [partitioned by video]

Resources: `lake` (Parquet label lake, local or S3), `io_manager` (the lake as Dagster IO), `video_store`
(input folders / S3 prefixes, decoding), `detector` (motion or mmdet), `tracker` (mmdet ByteTrack / OC-SORT),
`llm` (litellm: any model string, cache in the lake, retries; `template` = offline writer),
`warehouse` (DuckDB views over the lake).
"""

from dagster import Definitions

from fm_assets.automation import label_videos_job, new_videos_sensor
from fm_assets.clips import ingest
from fm_assets.language import captions, qa_pairs, trajectories
from fm_assets.perception import detections, tracks
from fm_resources.detectors import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.settings import lake_root, llm_model
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore
from fm_resources.warehouse import Warehouse

lake = Lake(root=lake_root())

defs = Definitions(
    assets=[ingest, detections, tracks, trajectories, captions, qa_pairs],
    jobs=[label_videos_job],
    sensors=[new_videos_sensor],
    resources={
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "video_store": VideoStore(),
        "detector": DetectorResource(),
        "tracker": TrackerResource(),
        "llm": LLMResource(model=llm_model()),
        "warehouse": Warehouse(lake=lake),
    },
)
