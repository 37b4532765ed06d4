"""fm_assets.labels.plots: the trajectories overlay and speed plot on synthetic scenes with known paths (pixels are
checked where the paths must be drawn) and PNG budgets. The `trajectories` asset's metadata and lake files:
tests/assets/test_plots.py."""

import base64

import numpy as np
import polars as pl
import pytest

from fm_assets.labels import plots
from fm_assets.labels.motion_facts import TRAJECTORY_SCHEMA
from tests.helpers import near_colour, png_pixels

W, H = 640, 480
BG = 100  # grey background of the synthetic frame


def _track(track_id: int, xs, ys, t0: float = 0.0, dt: float = 0.1, clip_id: str = "v-00000000-000", size=0.1,
           label: str = "car", color: str | None = "white", direction: str = "right", kept: bool = True) -> dict:
    xs, ys = np.broadcast_arrays(np.atleast_1d(np.asarray(xs, float)), np.atleast_1d(np.asarray(ys, float)))
    path = [{"t": t0 + k * dt, "ncx": float(x), "ncy": float(y), "nw": size, "nh": size}
            for k, (x, y) in enumerate(zip(xs, ys))]
    dist = float(np.hypot(np.diff(xs * W), np.diff(ys * H)).sum() / np.hypot(W, H))
    return {"video_id": "v-00000000", "clip_id": clip_id, "track_id": track_id, "label": label, "color": color,
            "t_start": path[0]["t"], "t_end": path[-1]["t"], "n_points": len(path), "width": W, "height": H,
            "path": path, "distance": dist, "direction": direction, "kept": kept,
            "drop_reason": None if kept else "static"}


def _frame(rows: list[dict]) -> pl.DataFrame:
    full = [{k: r.get(k) for k in TRAJECTORY_SCHEMA} for r in rows]
    return pl.DataFrame(full, schema=TRAJECTORY_SCHEMA, orient="row")


def _clip(clip_id="v-00000000-000", start_frame=0, end_frame=100, start_s=0.0, end_s=4.0) -> dict:
    return {"clip_id": clip_id, "start_frame": start_frame, "end_frame": end_frame, "start_s": start_s,
            "end_s": end_s, "width": W, "height": H, "kept": True}


def _scene() -> pl.DataFrame:
    """Track 1 goes right along y = H/2 (x from 0.2 W to 0.8 W); track 2 goes up along x = 0.3 W (y from 0.8 H
    to 0.2 H); track 3 is static and dropped (never drawn)."""
    n = 41
    return _frame([
        _track(1, np.linspace(0.2, 0.8, n), 0.5, direction="right"),
        _track(2, 0.3, np.linspace(0.8, 0.2, n), label="person", color=None, direction="up"),
        _track(3, [0.9] * 5, 0.9, kept=False, direction="stationary"),
    ])


def test_overlay_draws_each_kept_path_where_the_track_is():
    image = np.full((H, W, 3), BG, np.uint8)
    img = plots.trajectory_panel(image, _scene(), width=W)
    assert img.shape[1] == W and img.shape[0] > H  # the picture, then the legend strip under it
    red, blue = plots.PALETTE[0], plots.PALETTE[1]  # colours in track-id order of the drawn (kept) tracks
    # track 1 along y = H/2, track 2 along x = 0.3 W
    for fx in (0.35, 0.45, 0.6, 0.7):  # (track 2 crosses at x = 0.3 W, drawn over track 1)
        assert near_colour(img, fx * W, H / 2, red), fx
    for fy in (0.7, 0.45, 0.3):
        assert near_colour(img, 0.3 * W, fy * H, blue), fy
    # off the paths the (dimmed) background shows, in no track colour
    dimmed = round(BG * 0.7 + 16)
    for x, y in ((0.5 * W, 0.75 * H), (0.6 * W, 0.3 * H), (0.9 * W, 0.9 * H)):  # (0.9, 0.9): the dropped track
        assert np.abs(img[int(y), int(x)].astype(int) - dimmed).max() <= 2, (x, y)
    # the arrow head's wings at the end of track 1 (pointing right): above and below the path, behind the tip
    end_x, y0, head = 0.8 * W, H / 2, 5 * 2
    assert near_colour(img, end_x - 0.5 * head, y0 - 0.5 * head, red, r=1)
    assert near_colour(img, end_x - 0.5 * head, y0 + 0.5 * head, red, r=1)
    assert not near_colour(img, 0.5 * W, y0 - 0.5 * head, red, r=1)  # no wings mid-path
    # the track's box at its end: the box's left edge is 0.05 W left of the end centre
    assert near_colour(img, end_x - 0.05 * W, y0 + 0.03 * H, red, r=2)
    # legend strip: a swatch per drawn track, in its colour (exact: filled rectangles)
    strip = img[H:]
    assert (strip == np.array(red, np.uint8)).all(axis=2).sum() >= 50
    assert (strip == np.array(blue, np.uint8)).all(axis=2).sum() >= 50
    assert (strip == np.array(plots.PALETTE[2], np.uint8)).all(axis=2).sum() == 0  # track 3 is not listed


def test_overlay_scales_normalised_paths_to_any_frame_size():
    image = np.full((240, 320, 3), BG, np.uint8)  # half the size of the frame the tracks came from
    img = plots.trajectory_panel(image, _scene(), width=480)
    assert img.shape[1] == 480 and img.shape[0] > 360
    assert near_colour(img, 0.5 * 480, 0.5 * 360, plots.PALETTE[0])
    assert near_colour(img, 0.3 * 480, 0.6 * 360, plots.PALETTE[1])


def test_a_gap_in_a_track_is_not_bridged():
    xs = np.r_[np.linspace(0.1, 0.3, 11), np.linspace(0.7, 0.9, 11)]
    t = np.r_[np.arange(11) * 0.1, 3.0 + np.arange(11) * 0.1]
    row = _track(1, xs, 0.5)
    row["path"] = [{**p, "t": float(tt)} for p, tt in zip(row["path"], t)]
    img = plots.trajectory_panel(np.full((H, W, 3), BG, np.uint8), _frame([row]), width=W)
    assert near_colour(img, 0.2 * W, H / 2, plots.PALETTE[0]) and near_colour(img, 0.75 * W, H / 2, plots.PALETTE[0])
    assert not near_colour(img, 0.5 * W, H / 2, plots.PALETTE[0], r=3)  # 1.9 s without boxes: no line


def test_overlay_tiles_clips_and_shows_missing_frames_black():
    scene = _scene()
    other = scene.with_columns(pl.lit("v-00000000-001").alias("clip_id"))
    traj = pl.concat([scene, other, scene.with_columns(pl.lit("v-00000000-002").alias("clip_id"))])
    clips = pl.DataFrame([_clip(), _clip("v-00000000-001", 100, 200, 4.0, 8.0),
                          _clip("v-00000000-002", 200, 300, 8.0, 12.0)])
    chosen = plots.clip_panels(traj, clips, max_clips=2)
    assert [c["clip_id"] for c in chosen] == ["v-00000000-000", "v-00000000-001"]  # ties: earliest first
    assert [c["frame_idx"] for c in chosen] == [49, 149]  # middle frames
    frames = {"v-00000000-000": np.full((H, W, 3), BG, np.uint8)}
    img = plots.trajectory_overlay(frames, traj, chosen, width=640)
    assert img.shape[1] == 2 * 320 + 4  # two panels of half the width side by side
    left, right = img[:240, :320], img[:240, 324:]
    assert near_colour(left, 160, 120, plots.PALETTE[0]) and near_colour(right, 160, 120, plots.PALETTE[0])
    assert (right[230, 10] < 20).all() and (left[230, 10] > 60).all()  # no frame for clip 2: black


def test_clip_panels_prefers_clips_with_more_kept_tracks():
    one = _frame([_track(1, np.linspace(0.2, 0.8, 5), 0.5, clip_id="c-0")])
    two = _frame([_track(k, np.linspace(0.2, 0.8, 5), 0.1 * k, clip_id="c-1") for k in (1, 2)])
    none = _frame([_track(1, [0.5] * 5, 0.5, clip_id="c-2", kept=False)])
    clips = pl.DataFrame([_clip("c-0", 0, 10), _clip("c-1", 10, 20), _clip("c-2", 20, 30)])
    traj = pl.concat([one, two, none])
    assert [c["clip_id"] for c in plots.clip_panels(traj, clips, max_clips=1)] == ["c-1"]
    assert [c["clip_id"] for c in plots.clip_panels(traj, clips)] == ["c-0", "c-1"]  # in time order
    assert plots.clip_panels(none, clips) == []


def test_speeds_of_a_constant_motion():
    row = _track(1, np.linspace(0.2, 0.8, 41), 0.5)  # 0.6 W in 4 s
    t, v = plots.speeds(row["path"], W, H)
    assert len(t) == 40 and t[0] == pytest.approx(0.05)
    assert np.allclose(v, 0.6 * W / 4 / np.hypot(W, H))


def test_speed_plot_draws_each_track_at_its_speed():
    traj = _scene()
    series = plots.speed_series(traj, [_clip()])
    assert [s[3] for s in series] == ["#1 car (white)", "#2 person"]  # legend texts, drawn tracks only
    img = plots.speed_plot(series, width=640, height=240, t_range=(0.0, 4.0))
    assert img.shape[1] == 640 and img.shape[0] > 240  # plot, then the legend strip
    ax = plots.speed_axes([(s[0], s[1]) for s in series], 640, 240, (0.0, 4.0))
    v1, v2 = 0.6 * W / 4 / np.hypot(W, H), 0.6 * H / 4 / np.hypot(W, H)
    assert ax.v_max >= max(v1, v2)
    for t in (1.0, 2.0, 3.0):
        x, y = ax.px(t, v1)
        assert near_colour(img, x, y, plots.PALETTE[0])
        x, y = ax.px(t, v2)
        assert near_colour(img, x, y, plots.PALETTE[1])
    x, y = ax.px(2.0, ax.v_max * 0.95)
    assert not near_colour(img, x, y, plots.PALETTE[0], r=3)  # nothing near the top of the plot
    strip = img[240:]
    assert (strip == np.array(plots.PALETTE[0], np.uint8)).all(axis=2).sum() >= 50


def test_encode_png_keeps_the_budget():
    plot = plots.speed_plot(plots.speed_series(_scene(), [_clip()]), t_range=(0, 4))
    small = plots.encode_png(plot)
    assert png_pixels(small).shape == plot.shape and len(small) < 150_000  # a plain plot: full colour, full size
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    data = plots.encode_png(noise, max_bytes=60_000)
    img = png_pixels(data)
    assert len(data) <= 60_000 and img.shape[2] == 3 and img.shape[1] <= 640
    assert img.shape[1] / img.shape[0] == pytest.approx(640 / 480, rel=0.02)


def test_md_image_is_a_data_uri_of_the_png():
    data = plots.encode_png(np.zeros((8, 8, 3), np.uint8))
    md = plots.md_image(data, "speed")
    assert md.startswith("![speed](data:image/png;base64,") and md.endswith(")")
    assert base64.b64decode(md[len("![speed](data:image/png;base64,"):-1]) == data


def test_trajectory_pictures_of_a_video():
    traj = _scene()
    clip = {**_clip(), "frame_idx": 49}
    pics = plots.trajectory_pictures(traj, [clip], {49: np.full((H, W, 3), BG, np.uint8)})
    assert set(pics) == {"trajectories", "speed"}
    overlay, speed = png_pixels(pics["trajectories"]), png_pixels(pics["speed"])
    assert overlay.shape[1] == 640 and speed.shape[1] == 640
    assert all(len(p) < 150_000 for p in pics.values())
    assert near_colour(overlay, 0.5 * W, 0.5 * H, plots.PALETTE[0])


def test_tracks_overlay_stays_under_the_metadata_budget():
    """The `tracks` overlay goes into the event log of every run: a frame that compresses badly (noise, full HD)
    still comes out as a PNG under plots.MAX_BYTES, and no smaller than it needs to be to get there."""
    from fm_assets.labels.tracking import draw_tracks

    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    rows = [{"clip_id": "v-00000001-000", "track_id": 3, "frame_idx": i, "x1": 400.0 + 10 * i, "y1": 300.0,
             "x2": 700.0 + 10 * i, "y2": 800.0, "label": "person"} for i in range(5)]
    png = draw_tracks(frame, pl.DataFrame(rows), at_frame=4)
    assert len(png) <= plots.MAX_BYTES
    img = png_pixels(png)
    height, width = img.shape[:2]
    assert 200 <= width < 960 and abs(height / width - 9 / 16) < 0.01  # smaller, the shape kept
    flat = draw_tracks(np.full((480, 640, 3), 90, np.uint8), pl.DataFrame(rows), at_frame=4)
    assert png_pixels(flat).shape[:2] == (480, 640)  # a picture that fits is not made smaller


@pytest.mark.parametrize("size, out", [((576, 768), (240, 320)), ((1080, 1920), (720, 1280)), ((1080, 1920), (180, 320)),
                                       ((481, 641), (160, 214)), ((100, 100), (100, 100)), ((90, 120), (180, 240))])
def test_shrink_keeps_the_picture_where_it_was(size, out):
    """shrink (the detector's downscale) gives the size asked for, keeps a square where it was (its centroid within a
    quarter of an output pixel) and its brightness, stays close to a one-step area average on textured frames
    (what it stands in for), and returns a frame of the right size as it is."""
    import cv2

    h0, w0 = size
    h1, w1 = out
    img = np.full((h0, w0, 3), 40, np.uint8)
    y0, y1, x0, x1 = h0 // 3, h0 // 3 + h0 // 5, w0 // 2, w0 // 2 + w0 // 6
    img[y0:y1, x0:x1] = 220
    small = plots.shrink(img, w1, h1)
    assert small.shape == (h1, w1, 3) and small.dtype == np.uint8
    if (h1, w1) == (h0, w0):
        assert small is img
        return
    sy, sx = h1 / h0, w1 / w0
    lum = small[..., 0].astype(float) - 40
    ys, xs = np.mgrid[0:h1, 0:w1]
    cy, cx = (lum * ys).sum() / lum.sum(), (lum * xs).sum() / lum.sum()
    assert abs(cy - ((y0 + y1) / 2 * sy - 0.5)) < 0.25 and abs(cx - ((x0 + x1) / 2 * sx - 0.5)) < 0.25
    assert abs(lum.sum() * (1 / (sx * sy)) - 180 * (y1 - y0) * (x1 - x0)) < 0.02 * 180 * (y1 - y0) * (x1 - x0)
    noise = np.random.default_rng(0).integers(0, 256, (h0 // 8 + 1, w0 // 8 + 1, 3), dtype=np.uint8)
    textured = cv2.resize(noise, (w0, h0), interpolation=cv2.INTER_CUBIC)  # detail at a few pixels' scale
    if w1 < w0:
        area = cv2.resize(textured, (w1, h1), interpolation=cv2.INTER_AREA)
        assert np.abs(plots.shrink(textured, w1, h1).astype(int) - area).mean() < 2.0
