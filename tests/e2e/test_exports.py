"""`fm run` on a synthetic video, then the real `fm` console script exports llamafactory, fm-json and groundmore:
manifests, LLaMA-Factory's own conversion of every record, decodable clips."""

from __future__ import annotations

import json
from dataclasses import replace

from fm_assets.labels.schemas import SPLITS, frame
from fm_assets.synthetic import render_scene, scene_by_name
from fm_resources.lake import Lake
from tests.conftest import run_fm
from tests.helpers import decoded_frames, lake_table, manifest_ok, sharegpt_convert

try:  # the splits asset's pure function, when that module is there
    from fm_assets.labels.splits import assign_splits
except ImportError:  # pragma: no cover
    assign_splits = None


def test_fm_export_end_to_end(fm_home, tmp_path):
    """`fm run` on a synthetic video, then the real `fm` console script exports all three formats."""
    videos = tmp_path / "videos"
    render_scene(replace(scene_by_name("left_right"), duration_s=6.0), videos)
    res = run_fm("run", str(videos), "-q", home=fm_home)
    assert res.returncode == 0, res.stderr
    lake = Lake(root=str(fm_home / "lake"))
    if not lake.exists("splits/all.parquet"):  # `fm run` does not materialize the splits (yet): put them there
        vids = lake_table(lake, "videos").select("video_id", "status")
        splits = assign_splits(vids, (1.0, 0.0, 0.0)) if assign_splits else \
            frame([{"video_id": v, "split": "train"} for v in vids["video_id"]], SPLITS)
        lake.write_parquet("splits/all.parquet", splits)
    for fmt in ("llamafactory", "fm-json", "groundmore"):
        out = tmp_path / fmt
        res = run_fm("export", fmt, str(out), home=fm_home)
        assert res.returncode == 0, res.stderr
        assert "wrote" in res.stdout and "counts:" in res.stdout
        manifest = manifest_ok(out)
        assert manifest["format"] == fmt and manifest["skipped"] == []
    info = json.loads((tmp_path / "llamafactory" / "dataset_info.json").read_text())
    assert info and any(name.startswith("fm_motion_") for name in info)
    split = next(iter(info)).rsplit("_", 1)[1]
    for _name, attr in info.items():
        for rec in json.loads((tmp_path / "llamafactory" / attr["file_name"]).read_text()):
            conv = sharegpt_convert(rec, attr, tmp_path / "llamafactory")
            assert len(decoded_frames(conv["videos"][0])) >= 100  # 6 s at 25 fps, in one or more clips
    assert list((tmp_path / "fm-json" / split / "videos").glob("*.mp4"))
    assert json.loads((tmp_path / "groundmore" / f"groundmore_{split}.json").read_text())["videos"]
