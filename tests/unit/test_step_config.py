"""The `ingest` step makes three assets: each asset's config version covers only its own knobs (a new detector
setting reruns `detections`, not the clips), and a run config written for the old layout (a `detections` op) is
read in the new one."""

from fm_assets.cli.run import one_pass_config
from fm_resources.lake import asset_config, config_version

OUTPUTS = ["videos", "raw_clips", "detections"]


def test_each_asset_of_a_step_is_versioned_by_its_own_part_of_the_config():
    config = {"min_clip_s": 5.0, "max_clip_s": 10.0, "detections": {"sample_fps": 10.0, "max_side": 1280}}
    other_detector = {**config, "detections": {"sample_fps": 5.0, "max_side": 1280}}
    other_clips = {**config, "max_clip_s": 8.0}
    for asset in ("videos", "raw_clips"):
        assert asset_config(config, asset, OUTPUTS) == {"min_clip_s": 5.0, "max_clip_s": 10.0}
        assert config_version(asset_config(other_detector, asset, OUTPUTS)) == \
            config_version(asset_config(config, asset, OUTPUTS))
        assert config_version(asset_config(other_clips, asset, OUTPUTS)) != \
            config_version(asset_config(config, asset, OUTPUTS))
    assert asset_config(config, "detections", OUTPUTS) == {"sample_fps": 10.0, "max_side": 1280}
    assert config_version(asset_config(other_detector, "detections", OUTPUTS)) != \
        config_version(asset_config(config, "detections", OUTPUTS))
    assert config_version(asset_config(other_clips, "detections", OUTPUTS)) == \
        config_version(asset_config(config, "detections", OUTPUTS))
    # a one-asset step: its whole config, map-valued fields included
    tracks = {"bridge_gap_s": 2.0, "weights": {"a": 1.0}}
    assert asset_config(tracks, "tracks", ["result"]) == tracks


def test_a_run_config_of_the_old_layout_is_read_in_the_new_one():
    notes: list[str] = []
    old = {"ops": {"detections": {"config": {"sample_fps": 5}}, "ingest": {"config": {"max_clip_s": 8}},
                   "splits": {"config": {"train": 0.6}}}, "resources": {"detector": {"config": {"backend": "motion"}}}}
    new = one_pass_config(old, notes)
    assert new == {"ops": {"ingest": {"config": {"max_clip_s": 8, "detections": {"sample_fps": 5}}},
                           "splits": {"config": {"train": 0.6}}},
                   "resources": {"detector": {"config": {"backend": "motion"}}}}
    assert len(notes) == 1 and "ops.ingest.config.detections" in notes[0]
    # today's layout and no config pass unchanged, without a note
    assert one_pass_config(new, notes) is new and one_pass_config(None, notes) is None and len(notes) == 1
    # both given: the new layout's values win
    both = {"ops": {"detections": {"config": {"sample_fps": 5, "max_side": 640}},
                    "ingest": {"config": {"detections": {"sample_fps": 2}}}}}
    assert one_pass_config(both, [])["ops"]["ingest"]["config"]["detections"] == {"sample_fps": 2, "max_side": 640}
