"""The `trajectories` asset on a rendered scene with known motion: the trajectory overlay and speed plot
(fm_assets.labels.plots) as Markdown images in the materialization's metadata, and the same PNGs in the lake."""

import base64

import polars as pl
from dagster import DagsterInstance, materialize

from fm_assets.labels import plots
from tests.helpers import near_colour, png_pixels


def test_trajectories_asset_shows_the_pictures_and_saves_them(tmp_path):
    """On a rendered scene with known motion (the red box goes left, the blue ball right): the materialization
    has both pictures as Markdown images and the lake has them under overlays/<video_id>/."""
    from fm_assets.defs.ingest import ingest
    from fm_assets.defs.motion import trajectories
    from fm_assets.defs.perception import tracks
    from fm_assets.synthetic import render_scene, scene_by_name
    from fm_resources.detection.resource import DetectorResource
    from fm_resources.lake import Lake, LakeIOManager
    from fm_resources.registry import register_video
    from fm_resources.trackers import TrackerResource
    from fm_resources.video import VideoStore

    lake = Lake(root=str(tmp_path / "lake"))
    mp4 = render_scene(scene_by_name("left_right"), tmp_path / "scenes").mp4
    vid = register_video(str(mp4), VideoStore(), lake).video_id
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", [vid])
    res = materialize([ingest, tracks, trajectories], partition_key=vid, instance=instance,
                      resources={"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                                 "detector": DetectorResource(), "tracker": TrackerResource()})
    assert res.success
    (mat,) = res.asset_materializations_for_node("trajectories")
    for name in ("trajectories", "speed"):
        md = mat.metadata[name].value
        prefix = f"![{name}](data:image/png;base64,"
        assert md.startswith(prefix) and len(md) < 150_000
        data = base64.b64decode(md[len(prefix):-1])
        assert data == lake.read_bytes(f"overlays/{vid}/{name}.png")
        img = png_pixels(data)
        assert img.shape[1] == 640
    overlay = png_pixels(lake.read_bytes(f"overlays/{vid}/trajectories.png"))
    traj = lake.read_parquet(f"trajectories/{vid}.parquet").filter(pl.col("kept")).sort("track_id")
    assert len(traj) == 2
    scale = 640 / traj["width"][0]
    for k, r in enumerate(traj.iter_rows(named=True)):  # each path's middle point is drawn in its colour
        p = r["path"][len(r["path"]) // 2]
        assert near_colour(overlay, p["ncx"] * r["width"] * scale, p["ncy"] * r["height"] * scale, plots.PALETTE[k])
