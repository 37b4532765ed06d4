"""Synthetic scenes with known motion, rendered to H.264 with MOTChallenge ground truth and exact facts
(generator.py). It speaks the core's vocabulary (fm_assets.labels.vocab); nothing in the core imports it."""

from fm_assets.labels.vocab import COLORS, MIN_STOP_S, STATIONARY_FRAC, classify_direction, region
from fm_assets.synthetic.generator import (
    Keyframe,
    ObjectSpec,
    SceneSpec,
    SceneTruth,
    all_scenes,
    extra_scenes,
    gt_rows,
    make_demo_videos,
    object_facts,
    object_state,
    render_frames,
    render_scene,
    scene_by_name,
    scene_facts,
    standard_scenes,
)

__all__ = [
    "COLORS",
    "MIN_STOP_S",
    "STATIONARY_FRAC",
    "Keyframe",
    "ObjectSpec",
    "SceneSpec",
    "SceneTruth",
    "all_scenes",
    "classify_direction",
    "extra_scenes",
    "gt_rows",
    "make_demo_videos",
    "object_facts",
    "object_state",
    "region",
    "render_frames",
    "render_scene",
    "scene_by_name",
    "scene_facts",
    "standard_scenes",
]
