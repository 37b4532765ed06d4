"""The mmdet backend on randomly initialised RTMDet-tiny / RTMDet-Ins-tiny models (no weights downloaded).

Checkpoints are written the way mmdet/mmengine write them (state_dict + meta.dataset_meta.classes), with a
3-class head ("person", "car", "dog") and a 320x320 test scale to stay fast on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fm_assets.labels.types import Detections
from fm_resources.detection.mmdet import (
    DetectorConfigError,
    MMDetDetector,
    build_random_model,
    decode_mask,
    load_checkpoint_file,
    resolve_config,
    save_checkpoint,
)

CLASSES = ("person", "car", "dog")
H, W = 240, 320
TINY = "rtmdet_tiny_8xb32-300e_coco"
TINY_INS = "rtmdet-ins_tiny_8xb32-300e_coco"
SMALL_TEST = """
_base_ = {base!r}
model = dict(bbox_head=dict(num_classes={n}))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=True),
    dict(type='Pad', size=(320, 320), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline{metainfo}))
"""


class NotAWeight:  # an arbitrary Python object in a checkpoint: refused by torch's weights_only loader
    pass


build_random = build_random_model


def save_mmdet_checkpoint(model, path, classes=CLASSES, **extra) -> str:
    return save_checkpoint(model, path, classes, **extra)


def frames(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Noise with a few bright rectangles moving right: something for the detector to look at."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        f = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        f[60:140, 40 + 10 * t:100 + 10 * t] = (230, 40, 40)
        f[150:220, 200 - 8 * t:280 - 8 * t] = (40, 200, 90)
        out.append(f)
    return out


def canonical(d: Detections, keep=None) -> np.ndarray:
    """Rows (x1, y1, x2, y2, score, label id) in a fixed order: random init ties many scores (float32 near 0.5),
    and the order of boxes with tied scores is arbitrary."""
    keep = np.ones(len(d), bool) if keep is None else keep
    ids = np.array([CLASSES.index(label) for label in d.labels], np.float64)
    rows = np.hstack([d.boxes, d.scores[:, None], ids[:, None]]).astype(np.float64)[keep]
    keys = np.hstack([np.round(rows[:, :4], 1), rows[:, 5:]])
    return rows[np.lexsort(keys.T[::-1])]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mmdet")
    base = str(resolve_config(TINY))
    config = d / "rtmdet_tiny_3cls.py"
    config.write_text(SMALL_TEST.format(base=base, n=3, metainfo=""))
    named = d / "rtmdet_tiny_3cls_named.py"
    named.write_text(SMALL_TEST.format(base=base, n=3, metainfo=", metainfo=dict(classes=('cat', 'bus', 'kite'))"))
    model = build_random(config)
    return {
        "dir": d,
        "config": str(config),
        "named_config": str(named),
        "model": model,
        "ckpt": save_mmdet_checkpoint(model, d / "rtmdet_tiny_3cls.pth"),
    }


@pytest.fixture(scope="module")
def det0(files):
    return MMDetDetector(files["config"], files["ckpt"], score_thr=0.0, batch_size=5)


@pytest.fixture(scope="module")
def results0(det0):
    return det0.detect_clip(frames())


# ---- plumbing ------------------------------------------------------------------------------------------------


def test_one_detections_per_frame_with_sane_boxes_scores_and_labels(det0, results0):
    assert det0.name == "mmdet:rtmdet_tiny_3cls"
    assert det0.class_names == list(CLASSES)
    assert len(results0) == 5
    for d in results0:
        assert isinstance(d, Detections)
        assert len(d) > 0  # score_thr=0: random init still scores every prior
        assert d.boxes.shape == (len(d), 4) and d.boxes.dtype == np.float32
        assert (d.boxes[:, [0, 2]] >= 0).all() and (d.boxes[:, [0, 2]] <= W).all()
        assert (d.boxes[:, [1, 3]] >= 0).all() and (d.boxes[:, [1, 3]] <= H).all()
        assert (d.boxes[:, 2] >= d.boxes[:, 0]).all() and (d.boxes[:, 3] >= d.boxes[:, 1]).all()
        assert d.scores.shape == (len(d),) and (d.scores >= 0).all() and (d.scores <= 1).all()
        assert set(d.labels) <= set(CLASSES)
        assert d.masks is None  # a box-only model


def test_empty_clip_and_bad_frames(det0):
    assert det0.detect_clip([]) == []
    with pytest.raises(ValueError, match="same|differs"):
        det0.detect_clip([np.zeros((H, W, 3), np.uint8), np.zeros((H + 2, W, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        det0.detect_clip([np.zeros((H, W, 3), np.float32)])


def test_score_threshold_keeps_exactly_the_boxes_above_it(files, results0):
    thr = float(np.quantile(results0[0].scores, 0.5))  # random init: pick a threshold that splits the boxes
    det = MMDetDetector(files["config"], files["ckpt"], score_thr=thr)
    assert det.batch_size == 8
    results = det.detect_clip(frames())
    for full, cut in zip(results0, results):
        assert (cut.scores >= thr).all()
        keep = full.scores >= thr
        # the model's own score_thr is raised to ours; greedy NMS keeps a box or not by the boxes scoring higher
        # (all above thr too), and thr is above the 300th best score (max_per_img): the same boxes survive
        assert 0 < len(cut) == int(keep.sum())
        np.testing.assert_allclose(canonical(full, keep), canonical(cut), atol=1e-3)


def test_batches_of_2_give_what_one_batch_of_5_gives(files, results0):
    det = MMDetDetector(files["config"], files["ckpt"], score_thr=0.0, batch_size=2)
    results = det.detect_clip(frames())
    assert len(results) == len(results0) == 5
    for a, b in zip(results0, results):
        assert len(a) == len(b)
        np.testing.assert_allclose(canonical(a), canonical(b), atol=1e-3)


def test_frames_are_fed_as_bgr(det0, monkeypatch):
    seen = []
    real = det0._pipeline

    def spy(data):
        seen.append(data["img"].copy())
        return real(data)

    monkeypatch.setattr(det0, "_pipeline", spy)
    f = frames(1)[0]
    det0.detect_clip([f])
    np.testing.assert_array_equal(seen[0], f[..., ::-1])


# ---- class names ---------------------------------------------------------------------------------------------


def test_labels_are_the_checkpoints_class_names(det0, results0, files):
    for d in results0:
        assert d.labels == [CLASSES[i] for i in d.extra["label_id"]]
    # the checkpoint's names win over the config's metainfo
    det = MMDetDetector(files["named_config"], files["ckpt"], score_thr=0.0, lazy=True).validate()
    assert det.class_names == list(CLASSES)


def test_class_names_fall_back_to_config_metainfo_then_placeholders(files):
    bare = save_mmdet_checkpoint(files["model"], files["dir"] / "no_meta.pth", classes=None)
    assert MMDetDetector(files["named_config"], bare).class_names == ["cat", "bus", "kite"]
    # 3 classes, no names anywhere (the config's CocoDataset has 80): placeholders rather than wrong COCO names
    assert MMDetDetector(files["config"], bare).class_names == ["class_0", "class_1", "class_2"]


def test_an_80_class_head_without_names_gets_coco_names(files):
    small = {"test_dataloader.dataset.pipeline.1.scale": (320, 320),
             "test_dataloader.dataset.pipeline.2.size": (320, 320)}
    model = build_random(TINY, small)
    bare = save_mmdet_checkpoint(model, files["dir"] / "coco80_no_meta.pth", classes=None)
    det = MMDetDetector(TINY, bare, cfg_options=small, score_thr=0.0)
    assert det.name == f"mmdet:{TINY}"
    assert len(det.class_names) == 80 and det.class_names[0] == "person" and det.class_names[2] == "car"
    (d,) = det.detect_clip(frames(1))
    assert len(d) > 0 and set(d.labels) <= set(det.class_names)


def test_classes_keeps_only_those(files, results0):
    det = MMDetDetector(files["config"], files["ckpt"], score_thr=0.0, classes=["dog", "car"])
    results = det.detect_clip(frames())
    for full, some in zip(results0, results):
        assert set(some.labels) <= {"dog", "car"}
        assert len(some) == sum(label in ("dog", "car") for label in full.labels)


# ---- masks ---------------------------------------------------------------------------------------------------


def test_an_instance_mask_model_gives_coco_rles_of_the_frame_size(files):
    opts = {
        "model.bbox_head.num_classes": 3,
        "test_dataloader.dataset.pipeline.1.scale": (320, 320),
        "test_dataloader.dataset.pipeline.2.size": (320, 320),
        "model.test_cfg.max_per_img": 20,
    }
    ckpt = save_mmdet_checkpoint(build_random(TINY_INS, opts), files["dir"] / "rtmdet_ins_3cls.pth")
    det = MMDetDetector(TINY_INS, ckpt, cfg_options=opts, score_thr=0.0, batch_size=2)
    assert det.name == f"mmdet:{TINY_INS}"
    results = det.detect_clip(frames(3))
    assert len(results) == 3
    for d in results:
        assert len(d) > 0 and d.masks is not None and len(d.masks) == len(d)
        for rle in d.masks:
            assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
            m = decode_mask(rle)
            assert m.shape == (H, W) and m.dtype == bool
        assert set(d.labels) <= set(CLASSES)


# ---- configuration errors (all raised by the constructor, before any frame) ----------------------------------


def test_config_names_resolve_inside_mmdets_packaged_configs():
    p = resolve_config(TINY)
    assert p.name == f"{TINY}.py" and ".mim" in p.parts and p.is_file()
    assert resolve_config(f"{TINY}.py") == p
    assert resolve_config(f"mmdet::rtmdet/{TINY}.py") == p


@pytest.mark.parametrize("config", ["/no/such/dir/model.py", "no_such_config_8xb32-300e_coco"])
def test_missing_config(config, files):
    with pytest.raises(DetectorConfigError, match="config") as e:
        MMDetDetector(config, files["ckpt"])
    assert e.value.path == config and "no such file" in e.value.reason


def test_broken_configs(files, tmp_path):
    syntax = tmp_path / "broken.py"
    syntax.write_text("model = dict(type='RTMDet',\n")
    with pytest.raises(DetectorConfigError, match="cannot be loaded") as e:
        MMDetDetector(syntax, files["ckpt"])
    assert e.value.path == str(syntax)
    unknown = tmp_path / "unknown_type.py"
    unknown.write_text(f"_base_ = {files['config']!r}\nmodel = dict(type='NoSuchDetector')\n")
    with pytest.raises(DetectorConfigError, match="cannot be built"):
        MMDetDetector(unknown, files["ckpt"])
    no_model = tmp_path / "no_model.py"
    no_model.write_text("x = 1\n")
    with pytest.raises(DetectorConfigError, match="model"):
        MMDetDetector(no_model, files["ckpt"])


def test_the_error_is_the_projects_configuration_error(files, tmp_path):
    from fm_resources.detection import types

    with pytest.raises(types.DetectorConfigError):
        MMDetDetector(files["config"], tmp_path / "nope.pth")
    assert issubclass(DetectorConfigError, ValueError)


def test_missing_checkpoint(files, tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(DetectorConfigError, match="no such file") as e:
        MMDetDetector(files["config"], path)
    assert e.value.path == path and path in str(e.value)


def test_garbage_checkpoint(files, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch checkpoint\n" * 100)
    with pytest.raises(DetectorConfigError, match="not a torch checkpoint") as e:
        MMDetDetector(files["config"], junk)
    assert e.value.path == str(junk)


def test_checkpoint_with_the_wrong_number_of_classes(files):
    # a 3-class checkpoint under the stock 80-class COCO config
    with pytest.raises(DetectorConfigError, match="do not fit") as e:
        MMDetDetector(TINY, files["ckpt"])
    assert "num_classes" in e.value.reason and "rtm_cls" in e.value.reason


def test_checkpoint_meta_disagreeing_with_the_head(files):
    five = save_mmdet_checkpoint(files["model"], files["dir"] / "five_names.pth", classes=("a", "b", "c", "d", "e"))
    with pytest.raises(DetectorConfigError, match="5 classes but the head"):
        MMDetDetector(files["config"], five)


def test_checkpoint_of_another_architecture(files, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.layer.0.weight": torch.zeros(4, 4)}}, other)
    with pytest.raises(DetectorConfigError, match="none of its 1 tensors"):
        MMDetDetector(files["config"], other)
    headless = tmp_path / "headless.pth"
    state = {k: v for k, v in files["model"].state_dict().items() if not k.startswith("bbox_head.")}
    torch.save({"state_dict": state}, headless)
    with pytest.raises(DetectorConfigError, match="detection head"):
        MMDetDetector(files["config"], headless)


def test_unknown_classes_and_devices(files):
    with pytest.raises(DetectorConfigError, match="classes"):
        MMDetDetector(files["config"], files["ckpt"], classes=["unicorn"])
    with pytest.raises(DetectorConfigError, match="device"):
        MMDetDetector(files["config"], files["ckpt"], device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DetectorConfigError, match="CUDA is not available"):
            MMDetDetector(files["config"], files["ckpt"], device="cuda:0")


def test_a_full_runner_checkpoint_loads_without_unsafe_unpickling(files):
    """torch>=2.6 loads weights_only; a Runner checkpoint's message_hub holds numpy values and HistoryBuffers."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("test_mmdet_backend")
    hub.update_scalar("train/loss", np.float64(1.25))
    hub.update_info("seed_array", np.arange(3))
    path = save_mmdet_checkpoint(files["model"], files["dir"] / "epoch_1.pth", message_hub=hub.state_dict(),
                                 optimizer={"state": {}, "param_groups": [{"lr": np.float32(0.004)}]})
    det = MMDetDetector(files["config"], path)
    assert det.class_names == list(CLASSES)


def test_untrusted_python_objects_need_trust_checkpoint(files, tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": files["model"].state_dict(), "meta": {"dataset_meta": {"classes": CLASSES},
                                                                     "extra": NotAWeight()}}, path)
    with pytest.raises(DetectorConfigError, match="trust_checkpoint=True") as e:
        load_checkpoint_file(path)
    assert "NotAWeight" in e.value.reason
    assert isinstance(load_checkpoint_file(path, trust=True)["meta"]["extra"], NotAWeight)


def test_url_checkpoints_go_through_mmengines_loader(files, monkeypatch):
    """No network here: stand in for mmengine's download (load_url) and check the URL path is used."""
    import mmengine.runner.checkpoint as mm_ckpt

    urls = []

    def fake_load_url(url, model_dir=None, map_location=None, **kw):
        urls.append(url)
        return torch.load(files["ckpt"], map_location=map_location)

    monkeypatch.setattr(mm_ckpt, "load_url", fake_load_url)
    url = "https://download.example.org/rtmdet_tiny_3cls.pth"
    det = MMDetDetector(files["config"], url)
    assert urls == [url] and det.class_names == list(CLASSES)

    def offline(url, **kw):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mm_ckpt, "load_url", offline)
    with pytest.raises(DetectorConfigError, match="could not download") as e:
        MMDetDetector(files["config"], url)
    assert e.value.path == url


def test_half_precision_needs_cuda(files):
    with pytest.raises(DetectorConfigError, match="CUDA"):
        MMDetDetector(files["config"], files["ckpt"], fp16=True, lazy=True)


def test_the_gpu_bench_says_when_there_is_no_cuda_and_runs_on_the_cpu(tmp_path):
    """bench/gpu_detector.py: without CUDA it says so and exits 0; its timing code runs (here on the CPU, a tiny
    pass) and batching does not change what is detected."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    if not torch.cuda.is_available():
        p = subprocess.run([sys.executable, "bench/gpu_detector.py"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0 and "no CUDA device here" in p.stdout, p.stdout + p.stderr
    from fm_assets.synthetic import render_scene, scene_by_name

    video = render_scene(scene_by_name("left_right"), tmp_path).mp4
    out = tmp_path / "gpu.json"
    p = subprocess.run([sys.executable, "bench/gpu_detector.py", "--device", "cpu", "--batches", "1", "2",
                        "--frames", "4", "--repeats", "1", "--no-e2e", "--video", str(video), "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json.loads(out.read_text())["throughput"]
    assert [r["batch"] for r in rows] == [1, 2] and all(r["frames_per_s"] > 0 and r["frames"] == 4 for r in rows)
    assert rows[0]["boxes"] == rows[1]["boxes"]
