"""detections + tracks as Dagster assets on synthetic scenes with known truth, and their failure modes. Through the
`fm` command: tests/e2e/test_perception.py."""


import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from fm_assets.defs.ingest import ingest
from fm_assets.defs.perception import tracks
from fm_assets.evaluation.mot_metrics import evaluate, parse_mot, read_mot
from fm_assets.labels.tracking import mot_text
from fm_assets.synthetic import SceneSpec, render_scene, scene_by_name
from fm_resources.detection.resource import DetectorResource
from fm_resources.detection.types import DetectorConfigError
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.mmdet_trackers import WORKERS
from fm_resources.registry import register_video
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore


def resources(lake_root, detector=None):
    lake = Lake(root=str(lake_root))
    return lake, {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                  "detector": detector or DetectorResource(), "tracker": TrackerResource()}


def run_graph(paths, lake_root, detector=None):
    lake, res = resources(lake_root, detector)
    instance = DagsterInstance.ephemeral()
    out = {}
    for p in paths:
        vid = register_video(str(p), res["video_store"], lake).video_id
        instance.add_dynamic_partitions("videos", [vid])
        out[p.stem] = (vid, materialize([ingest, tracks], partition_key=vid, instance=instance,
                                        resources=res, raise_on_error=False))
    return lake, out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    truths = {n: render_scene(scene_by_name(n), d) for n in ("left_right", "ordered_pair", "late_entry", "camera_pan")}
    truths["static"] = render_scene(SceneSpec(name="static", duration_s=4.0), d)
    return d, truths


@pytest.fixture(scope="module")
def graph(scenes, tmp_path_factory):
    _, truths = scenes
    return run_graph([t.mp4 for t in truths.values()], tmp_path_factory.mktemp("lake"))


def table(lake, name, vid):
    return lake.read_parquet(f"{name}/{vid}.parquet")


def test_all_partitions_succeed(graph):
    _, out = graph
    assert all(r.success for _, r in out.values())


@pytest.mark.parametrize("scene", ["left_right", "ordered_pair", "late_entry"])
def test_tracks_match_the_scene_truth(graph, scenes, scene):
    lake, out = graph
    vid = out[scene][0]
    t = table(lake, "tracks", vid)
    truth = scenes[1][scene]
    gt = read_mot(truth.gt, is_gt=True)
    m = evaluate(gt, parse_mot(mot_text(t, interpolate=True)), n_frames=int(gt[:, 0].max()))
    assert m["MOTA"] >= 0.8 and m["IDF1"] >= 0.8, m
    assert t.select("clip_id", "track_id").n_unique() == len(truth.facts["objects"])


def test_late_object_is_found_after_it_appears(graph, scenes):
    lake, out = graph
    t = table(lake, "tracks", out["late_entry"][0])
    late = [o for o in scenes[1]["late_entry"].facts["objects"] if o["appear_s"] >= 3][0]
    starts = t.group_by("track_id").agg(pl.col("t_s").min())["t_s"].sort().to_list()
    assert starts[0] < 1.0 and late["appear_s"] <= starts[-1] < late["appear_s"] + 1.0


def test_detections_on_every_sampled_frame_with_times(graph):
    lake, out = graph
    d = table(lake, "detections", out["left_right"][0])
    assert d["frame_idx"].unique().sort().to_list() == list(range(0, 200, 2))[: d["frame_idx"].n_unique()]
    assert d["frame_idx"].n_unique() >= 95  # 10 fps sampling of a 25 fps, 8 s clip: 100 frames
    assert ((d["t_s"] - d["frame_idx"] / 25).abs() < 1e-9).all()
    assert ((d["score"] >= 0) & (d["score"] <= 1)).all() and (d["x2"] > d["x1"]).all()
    assert d["mask_rle"].null_count() == 0  # the motion detector gives masks


def test_no_motion_and_dropped_clips_give_empty_tables(graph):
    lake, out = graph
    for scene in ("static", "camera_pan"):
        assert table(lake, "detections", out[scene][0]).is_empty()
        assert table(lake, "tracks", out[scene][0]).is_empty()
    clips = table(lake, "raw_clips", out["camera_pan"][0])
    assert clips["drop_reason"].to_list() == ["camera_motion"]
    assert table(lake, "detections", out["camera_pan"][0]).is_empty()  # dropped clips are not processed


def test_overlay_image_in_metadata_and_lake(graph):
    lake, out = graph
    vid, res = out["ordered_pair"]
    mats = [e.materialization for e in res.get_asset_materialization_events() if e.materialization.asset_key.path == ["tracks"]]
    assert mats[0].metadata["overlay"].value.startswith("![tracks](data:image/png;base64,")
    assert lake.read_bytes(f"overlays/{vid}/tracks.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert mats[0].metadata["tracks"].value == 2


def test_broken_detector_config_fails_before_any_video_is_read(scenes, tmp_path):
    d, truths = scenes
    bad = DetectorResource(backend="mmdet", mmdet_config=str(tmp_path / "missing.py"), mmdet_checkpoint=str(tmp_path / "x.pth"))
    with pytest.raises(DetectorConfigError):
        bad.build()
    lake, out = run_graph([truths["left_right"].mp4], tmp_path / "lake", detector=bad)
    vid, res = out["left_right"]
    assert not res.success
    assert not lake.exists(f"detections/{vid}.parquet") and not lake.exists(f"raw_clips/{vid}.parquet")
    failure = [e for e in res.all_events if e.is_failure][0]
    assert "missing.py" in str(failure.event_specific_data.error.message) or "missing.py" in str(failure.event_specific_data)


def test_a_shot_longer_than_a_clip_keeps_its_track_ids(tmp_path):
    """A 14 s shot is cut into two clips; one tracker follows the whole shot, so each object keeps one track id in
    both clips, and the whole-video MOT export has one id per object."""
    from fm_assets.synthetic import Keyframe, ObjectSpec

    walk = SceneSpec(name="long_walk", fps=10.0, duration_s=14.0, objects=(
        ObjectSpec(1, "object", "red", "box", 70, 60, (Keyframe(0.0, 60, 150), Keyframe(14.0, 580, 170))),
        ObjectSpec(2, "object", "blue", "disc", 60, 60, (Keyframe(0.0, 560, 360), Keyframe(14.0, 80, 330))),
    ))
    truth = render_scene(walk, tmp_path)
    lake, out = run_graph([truth.mp4], tmp_path / "lake")
    vid, result = out["long_walk"]
    assert result.success
    clips = lake.read_parquet(f"raw_clips/{vid}.parquet").filter(pl.col("kept"))
    assert len(clips) == 2
    t = table(lake, "tracks", vid)
    per_track = t.group_by("track_id").agg(pl.col("clip_id").n_unique().alias("clips"), pl.len())
    assert len(per_track) == 2, per_track
    assert per_track["clips"].to_list() == [2, 2]
    gt = read_mot(truth.gt, is_gt=True)
    m = evaluate(gt, parse_mot(mot_text(t, interpolate=True)), n_frames=int(gt[:, 0].max()))
    assert m["IDSW"] == 0 and m["IDF1"] >= 0.9, m


def test_one_decode_pass_feeds_the_scan_detection_tracking_and_pictures(scenes, tmp_path, monkeypatch):
    """The whole per-video graph up to trajectories decodes the video ONCE: the `ingest` step scans it, plans the
    clips and detects each clip as soon as it is planned, keeping its still as it goes by; `tracks` (overlay) and
    `trajectories` (pictures) draw on the stills without decoding again."""
    import fm_assets.defs.ingest as ingest_module
    import fm_assets.defs.perception as perception
    import fm_resources.video as video
    from fm_assets.defs.motion import trajectories

    d, truths = scenes
    lake, res = resources(tmp_path / "lake")
    instance = DagsterInstance.ephemeral()
    vid = register_video(str(truths["ordered_pair"].mp4), res["video_store"], lake).video_id
    instance.add_dynamic_partitions("videos", [vid])
    passes: list[str] = []
    frames = []
    real = video.decode

    def counted(path, *args, **kwargs):
        passes.append(str(path))
        for f in real(path, *args, **kwargs):
            frames.append(f.idx)
            yield f

    for module in (ingest_module, perception, video):
        monkeypatch.setattr(module, "decode", counted)
    result = materialize([ingest, tracks, trajectories], partition_key=vid, instance=instance, resources=res)
    assert result.success
    n_frames = lake.read_parquet(f"videos/{vid}.parquet")["n_frames"][0]
    assert len(passes) == 1 and sorted(frames) == list(range(n_frames)), (passes, len(frames), n_frames)
    assert len(lake.read_parquet(f"detections/{vid}.parquet")) > 0
    clips = lake.read_parquet(f"raw_clips/{vid}.parquet").filter(pl.col("kept"))
    for c in clips.iter_rows(named=True):  # one still per kept clip, a JPEG of the video's size
        still = perception.clip_still(vid, c, res["video_store"], lake)
        assert still is not None and still.shape == (c["height"], c["width"], 3)
    assert len(passes) == 1  # read from the lake, not decoded
    c = clips.row(0, named=True)  # a damaged still: that frame is decoded again, not an error
    lake.write_bytes(perception.still_key(vid, c["clip_id"]), b"not a jpeg")
    again = perception.clip_still(vid, c, res["video_store"], lake)
    assert again is not None and again.shape == (c["height"], c["width"], 3) and len(passes) == 2
    assert lake.read_bytes(f"overlays/{vid}/tracks.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert lake.read_bytes(f"overlays/{vid}/trajectories.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_detections_alone_match_the_one_pass_on_one_grid_per_shot(tmp_path):
    """Several clips per shot at a sampling step > 1: the one-pass `ingest` and `detections` materialized alone
    (a new detector config: the clips are read from the lake, only their frames decoded) give the same rows and
    stills; every clip of a shot samples on the shot's grid (the tracker sees a steady rate across clip borders),
    and the step is recorded."""
    truth = render_scene(scene_by_name("shot_cut"), tmp_path)  # two shots of 4 s
    lake, res = resources(tmp_path / "lake")
    instance = DagsterInstance.ephemeral()
    vid = register_video(str(truth.mp4), res["video_store"], lake).video_id
    instance.add_dynamic_partitions("videos", [vid])
    config = {"ops": {"ingest": {"config": {"min_clip_s": 1.1, "max_clip_s": 1.9, "detections": {"sample_fps": 4.0}}}}}
    assert materialize([ingest], partition_key=vid, instance=instance, resources=res, run_config=config).success
    one_pass = lake.read_parquet(f"detections/{vid}.parquet")
    clips = lake.read_parquet(f"raw_clips/{vid}.parquet")
    stills = {c: lake.read_bytes(f"stills/{vid}/{c}.jpg") for c in clips.filter(pl.col("kept"))["clip_id"]}
    assert len(stills) >= 4 and clips["shot_idx"].n_unique() == 2 and len(one_pass) > 0
    step = 6  # round(25 fps / 4)
    assert set(one_pass["sample_step"]) == {step}
    first = clips.group_by("shot_idx").agg(pl.col("start_frame").min().alias("origin"))
    on_grid = one_pass.join(clips.select("clip_id", "shot_idx"), on="clip_id").join(first, on="shot_idx")
    assert ((on_grid["frame_idx"] - on_grid["origin"]) % step == 0).all()
    assert (clips.filter(pl.col("kept"))["start_frame"] % step != 0).any()  # clips that do not start on the grid

    for c in stills:
        lake.write_bytes(f"stills/{vid}/{c}.jpg", b"")
    assert materialize([ingest], partition_key=vid, instance=instance, resources=res, run_config=config,
                       selection=["detections"]).success
    alone = lake.read_parquet(f"detections/{vid}.parquet")
    assert alone.equals(one_pass)
    assert {c: lake.read_bytes(f"stills/{vid}/{c}.jpg") for c in stills} == stills
    assert lake.read_parquet(f"raw_clips/{vid}.parquet").equals(clips)  # the clips were not planned again


@pytest.mark.parametrize("pool_kind", ["thread", "process"])
def test_clips_detected_in_a_pool_give_the_same_rows_and_stills(scenes, pool_kind, tmp_path):
    """detect_video with two workers (threads, or processes started by a forkserver; the motion detector allows
    it) gives exactly the rows and stills of one worker, in clip order."""
    from fm_assets.labels.tracking import DetectionParams, detect_video, read_still, still_frame
    from fm_resources.detection.motion import MotionDetector
    from fm_resources.video import decode, stream_info

    _, truths = scenes
    path = truths["late_entry"].mp4
    info = stream_info(path)
    fps = float(info.declared_fps)
    # three clips of 1.5 s each, so two are in flight at once
    n = int(3 * 1.5 * fps)
    step = n // 3
    clips = pl.DataFrame({"clip_id": [f"c{k}" for k in range(3)], "start_frame": [k * step for k in range(3)],
                          "end_frame": [(k + 1) * step for k in range(3)]})
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from fm_assets.labels.tracking import clip_pool

    pool = clip_pool(2, pool_kind)  # the pool really is of that kind here (no fallback)
    assert isinstance(pool, {"thread": ThreadPoolExecutor, "process": ProcessPoolExecutor}[pool_kind])
    pool.shutdown()
    runs = [detect_video("v", decode(path), clips, fps, MotionDetector(), DetectionParams(), workers=w,
                         pool_kind=pool_kind) for w in (1, 2)]
    assert len(runs[0].table) and runs[0].table.equals(runs[1].table)
    assert runs[1].table["clip_id"].to_list() == sorted(runs[1].table["clip_id"])
    assert runs[0].frames == runs[1].frames > 0
    assert set(runs[1].stills) == {"c0", "c1", "c2"} and runs[0].stills == runs[1].stills
    # given a sink (the `ingest` step writes each to the lake as it is made), the run holds none of them
    kept: dict = {}
    sunk = detect_video("v", decode(path), clips, fps, MotionDetector(), DetectionParams(), workers=2,
                        pool_kind=pool_kind, keep_still=kept.__setitem__)
    assert kept == runs[0].stills and sunk.stills == {} and sunk.table.equals(runs[0].table)
    # given a spill folder (the `ingest` step's), each clip's rows go there as they come, none are held, and they
    # read back as the same table, in clip order
    spill = tmp_path / "spill"
    spill.mkdir()
    spilt = detect_video("v", decode(path), clips, fps, MotionDetector(), DetectionParams(), workers=2,
                         pool_kind=pool_kind, spill=spill)
    assert spilt.parts == [] and spilt.spilled == 3 and len(list(spill.iterdir())) == 3
    assert spilt.lazy().collect().equals(runs[0].table) and spilt.table.equals(runs[0].table)
    middle = still_frame(step, 2 * step)
    frame = next(f.rgb() for f in decode(path) if f.idx == middle)
    still = read_still(runs[1].stills["c1"], frame.shape[1], frame.shape[0])
    assert np.abs(still.astype(int) - frame.astype(int)).mean() < 4  # the clip's middle frame (JPEG)


class _FrameProbe:
    """A detector for a worker process: one box a frame, labelled by how the frame reached it ("shared": a view of a
    memory map, "copied": pickled bytes or an array of its own); it fails on a clip whose first frame is `fail_at`."""

    name = "probe"
    parallel_clips = True

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at

    def detect_clip(self, frames):
        from fm_assets.labels.types import Detections

        frames = list(frames)
        if self.fail_at is not None and int(frames[0][0, 0, 0]) == self.fail_at:
            raise RuntimeError("probe detector failed on purpose")
        return [Detections([[0, 0, 8, 8]], [0.9], ["shared" if _mapped(f) else "copied"]) for f in frames]


class _NumberedFrame:
    """A decoded frame at 10 fps whose every pixel holds its index (so a detector can tell the clips apart)."""

    def __init__(self, idx: int):
        self.idx, self.t_s, self.rotation = idx, idx / 10, 0

    def rgb(self) -> np.ndarray:
        return np.full((48, 64, 3), self.idx, np.uint8)


def _mapped(a: np.ndarray) -> bool:
    """Whether an array's memory is a memory map (a shared memory block), not bytes or an array of its own."""
    import mmap

    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return isinstance(a.obj if isinstance(a, memoryview) else a, mmap.mmap)


def test_a_process_pool_reads_the_clips_frames_from_shared_memory_and_frees_them():
    """With clip_pool: process, a worker gets its clip's frames as a view of a shared memory block (not pickled
    through a pipe); every block is freed once its clip is done, and also when a worker's clip fails (the error
    reaches the caller)."""
    from pathlib import Path

    from fm_assets.labels.tracking import DetectionParams, detect_video

    clips = pl.DataFrame({"clip_id": [f"c{k}" for k in range(4)], "start_frame": [10 * k for k in range(4)],
                          "end_frame": [10 * (k + 1) for k in range(4)]})

    def blocks() -> set:  # Python's shared memory blocks (not the pool's semaphores, also kept in /dev/shm)
        return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("psm_")}

    before = blocks()
    run = detect_video("v", (_NumberedFrame(i) for i in range(40)), clips, 10.0, _FrameProbe(), DetectionParams(),
                       workers=2, pool_kind="process")
    assert len(run.table) == 40 and set(run.table["label"]) == {"shared"}
    assert blocks() == before
    with pytest.raises(RuntimeError, match="on purpose"):
        detect_video("v", (_NumberedFrame(i) for i in range(40)), clips, 10.0, _FrameProbe(fail_at=10),
                     DetectionParams(), workers=2, pool_kind="process")
    assert blocks() == before


class _SizeProbe:
    """A detector with its own max_side that answers one box over the left half of each frame it is given."""

    name = "size-probe"
    max_side = 100

    def __init__(self):
        self.shapes: set = set()

    def detect_clip(self, frames):
        from fm_assets.labels.types import Detections

        self.shapes |= {f.shape for f in frames}
        return [Detections([[0, 0, f.shape[1] / 2, f.shape[0]]], [0.9], ["object"]) for f in frames]


class _LargeFrame(_NumberedFrame):
    def rgb(self) -> np.ndarray:
        return np.full((96, 128, 3), self.idx, np.uint8)


def test_frames_are_downscaled_to_the_detectors_own_max_side_and_boxes_scaled_back():
    """A detector that declares a max_side gets no larger frames (the motion detector: 960), DetectionParams'
    max_side still caps them lower, and either way the rows' boxes are in the video's own pixels."""
    from fm_assets.labels.tracking import DetectionParams, detect_video
    from fm_resources.detection.motion import MotionDetector

    assert MotionDetector.max_side == 960 and DetectionParams().max_side == 1280
    clips = pl.DataFrame({"clip_id": ["c0"], "start_frame": [0], "end_frame": [10]})
    for params, shape in ((DetectionParams(), (75, 100, 3)), (DetectionParams(max_side=64), (48, 64, 3))):
        probe = _SizeProbe()
        run = detect_video("v", (_LargeFrame(i) for i in range(10)), clips, 10.0, probe, params)
        assert probe.shapes == {shape}
        assert run.table["x2"].to_list() == [64.0] * 10 and run.table["y2"].to_list() == [96.0] * 10


def test_the_shared_memory_blocks_are_reused_from_clip_to_clip(monkeypatch):
    """A clip's block is written again for a later clip once its worker is done with it (a new block costs a page
    fault and zeroing per page): four clips of one size on two workers make two blocks; a longer clip replaces a
    free block; close() leaves none behind. A worker keeps the blocks it has seen mapped, and unmaps those that are
    gone."""
    from pathlib import Path

    from fm_assets.labels import tracking
    from fm_assets.labels.tracking import DetectionParams, detect_video

    def blocks() -> set:
        return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("psm_")}

    before = blocks()
    made: list[int] = []
    room = tracking._shared_room

    def counted(nbytes, where="/dev/shm"):
        made.append(nbytes)
        return room(nbytes, where)

    monkeypatch.setattr(tracking, "_shared_room", counted)
    clips = pl.DataFrame({"clip_id": [f"c{k}" for k in range(4)], "start_frame": [10 * k for k in range(4)],
                          "end_frame": [10 * (k + 1) for k in range(4)]})
    run = detect_video("v", (_NumberedFrame(i) for i in range(40)), clips, 10.0, _FrameProbe(), DetectionParams(),
                       workers=2, pool_kind="process")
    assert len(run.table) == 40 and set(run.table["label"]) == {"shared"}
    clip = 10 * 48 * 64 * 3
    assert made == [2 * clip, clip, clip]  # the pool's room check, then one block per worker, not one per clip
    assert blocks() == before

    frames = [(i, i / 10, np.full((4, 4, 3), i, np.uint8)) for i in range(8)]
    pool = tracking._SharedBlocks()
    a = pool.take(frames[:2], (2, 4, 4, 3))  # room for 3 frames: a longer clip to come fits
    pool.give(a)
    assert pool.take(frames[2:5], (3, 4, 4, 3)) is a  # the same block, written again
    assert np.ndarray((3, 4, 4, 3), np.uint8, buffer=a.buf)[2, 0, 0, 0] == 4
    pool.give(a)
    b = pool.take(frames[:4], (4, 4, 4, 3))  # longer than a: a new block, the smaller free one removed
    assert b is not a and pool.names() == (b.name,) and a.name not in blocks()
    here = tracking._attached(b.name, (b.name,))
    assert np.ndarray((4, 4, 4, 3), np.uint8, buffer=here.buf)[3, 0, 0, 0] == 3
    assert tracking._attached(b.name, (b.name,)) is here  # mapped once
    c = pool.take(frames[:2], (2, 4, 4, 3))
    tracking._attached(c.name, (c.name,))
    assert b.name not in tracking._ATTACHED  # b is not live any more: unmapped
    tracking._ATTACHED.pop(c.name).close()
    pool.give(c)
    monkeypatch.setattr(tracking, "_shared_room", lambda nbytes, where="/dev/shm": False)
    assert pool.take(frames[:3], (3, 4, 4, 3)) is None  # c would take more pages than it holds: no room for them
    assert pool.take(frames[:2], (2, 4, 4, 3)) is c  # as many as it holds: no room needed
    pool.close()
    assert blocks() == before and pool.names() == ()


def test_a_clip_that_does_not_fit_in_shared_memory_is_pickled_to_its_worker(monkeypatch, tmp_path):
    """Where /dev/shm has no room for a clip (a container's is often 64 MB; writing past it kills the process), the
    clip's frames are pickled to the worker instead, with the same rows."""
    from fm_assets.labels import tracking
    from fm_assets.labels.tracking import DetectionParams, detect_video

    assert tracking._shared_room(1024, str(tmp_path))
    assert not tracking._shared_room(10**18, str(tmp_path))
    assert not tracking._shared_room(1024, str(tmp_path / "absent"))

    clips = pl.DataFrame({"clip_id": ["c0", "c1", "c2"], "start_frame": [0, 10, 20], "end_frame": [10, 20, 30]})
    asked: list[int] = []

    def room_at_first(nbytes, where="/dev/shm"):  # room when the pool starts, none later (/dev/shm filled up)
        asked.append(nbytes)
        return len(asked) == 1

    monkeypatch.setattr(tracking, "_shared_room", room_at_first)
    run = detect_video("v", (_NumberedFrame(i) for i in range(30)), clips, 10.0, _FrameProbe(), DetectionParams(),
                       workers=2, pool_kind="process")
    assert len(run.table) == 30 and set(run.table["label"]) == {"copied"}
    assert asked[0] == 2 * 10 * 48 * 64 * 3  # the pool's choice: room for two clips of this size (the workers)


class _WhereProbe:
    """A detector that labels each box by where it ran: in this process ("here") or a worker process ("worker")."""

    name = "where"
    parallel_clips = True

    def __init__(self):
        import os

        self.parent = os.getpid()

    def detect_clip(self, frames):
        import os

        from fm_assets.labels.types import Detections

        where = "here" if os.getpid() == self.parent else "worker"
        return [Detections([[0, 0, 8, 8]], [0.9], [where]) for _ in frames]


def test_processes_detect_unless_shared_memory_has_no_room_for_the_clips_then_threads(monkeypatch):
    """clip_pool: process detects in worker processes; where /dev/shm has no room for a clip per worker when the
    pool starts (a container's 64 MB), the pass uses threads instead of pickling every clip to a worker."""
    from fm_assets.labels import tracking
    from fm_assets.labels.tracking import DetectionParams, detect_video

    clips = pl.DataFrame({"clip_id": ["c0", "c1", "c2"], "start_frame": [0, 10, 20], "end_frame": [10, 20, 30]})

    def labels() -> set:
        run = detect_video("v", (_NumberedFrame(i) for i in range(30)), clips, 10.0, _WhereProbe(),
                           DetectionParams(), workers=2, pool_kind="process")
        assert len(run.table) == 30
        return set(run.table["label"])

    assert labels() == {"worker"}
    monkeypatch.setattr(tracking, "_shared_room", lambda nbytes, where="/dev/shm": False)
    assert labels() == {"here"}


def test_ingesting_a_long_video_stops_the_idle_tracking_worker(scenes, tmp_path):
    """The tracking worker a run starts ahead (it imports torch and mmdet while the video is decoded) serves a short
    video; a video that `tracks` will track on every core (PARALLEL_FRAMES sampled frames or more, from what its
    container declares) gets workers started for it then, so `ingest` stops the idle one instead of leaving it
    beside the detector's workers for minutes."""
    from fractions import Fraction

    from fm_assets.labels.tracking import PARALLEL_FRAMES
    from fm_assets.synthetic.generator import write_h264

    long_mp4 = tmp_path / "long.mp4"  # 10 fps, every frame sampled: PARALLEL_FRAMES of them (5 minutes)
    still = np.zeros((32, 48, 3), np.uint8)
    write_h264(long_mp4, ((i, still) for i in range(PARALLEL_FRAMES)), 48, 32, Fraction(10))
    lake, res = resources(tmp_path / "lake")
    instance = DagsterInstance.ephemeral()
    try:
        for path, stops in ((scenes[1]["left_right"].mp4, False), (long_mp4, True)):
            vid = register_video(str(path), res["video_store"], lake).video_id
            instance.add_dynamic_partitions("videos", [vid])
            WORKERS.warm()
            assert materialize([ingest], partition_key=vid, instance=instance, resources=res).success
            assert WORKERS.running() is not stops, path.name
    finally:
        WORKERS.close()
