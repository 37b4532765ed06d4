"""Tests of the synthetic scene generator's rendering: speed, determinism, timestamps, ground truth vs pixels, the
facts files, the extra scenes (camera pan, shot cut). Its pure parts: tests/unit/test_synthetic.py."""

from __future__ import annotations

import hashlib
import json
import math
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from fm_assets import synthetic as S

REQUIRED = {"left_right", "up_down", "toward_away", "stop_and_go", "back_and_forth", "late_entry", "ordered_pair"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _decode(path: Path, wanted: set[int] | None = None) -> dict[int, av.VideoFrame]:
    with av.open(str(path)) as c:
        return {i: f for i, f in enumerate(c.decode(video=0)) if wanted is None or i in wanted}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("scenes")
    t0 = time.perf_counter()
    S.make_demo_videos(out)
    return out, time.perf_counter() - t0


def _facts(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.facts.json").read_text())


def _obj(facts: dict, obj_id: int) -> dict:
    return next(o for o in facts["objects"] if o["obj_id"] == obj_id)


def test_render_all_standard_scenes_fast(rendered: tuple[Path, float]) -> None:
    out, seconds = rendered
    assert seconds < 30, f"rendering the standard scenes took {seconds:.1f} s"
    for s in S.standard_scenes():
        for suffix in (".mp4", ".gt.txt", ".facts.json"):
            assert (out / f"{s.name}{suffix}").stat().st_size > 0


def test_deterministic_bytes(rendered: tuple[Path, float], tmp_path: Path) -> None:
    out, _ = rendered
    spec = S.scene_by_name("ordered_pair")
    a = S.render_scene(spec, tmp_path / "a", seed=0)
    b = S.render_scene(spec, tmp_path / "b", seed=0)
    c = S.render_scene(spec, tmp_path / "c", seed=1)
    assert _sha(a.mp4) == _sha(b.mp4) == _sha(out / "ordered_pair.mp4") == a.facts["mp4_sha256"]
    assert a.gt.read_bytes() == b.gt.read_bytes() and a.facts_path.read_bytes() == b.facts_path.read_bytes()
    assert _sha(c.mp4) != _sha(a.mp4)
    assert c.gt.read_bytes() == a.gt.read_bytes()  # the seed changes textures, not motion


def test_make_demo_videos_skips_identical_files(rendered: tuple[Path, float], tmp_path: Path) -> None:
    out, _ = rendered
    paths = S.make_demo_videos(tmp_path, scenes=["ordered_pair", "shot_cut"])
    assert [p.name for p in paths] == ["ordered_pair.mp4", "shot_cut.mp4"]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    t0 = time.perf_counter()
    assert S.make_demo_videos(tmp_path, scenes=["ordered_pair", "shot_cut"]) == paths
    assert time.perf_counter() - t0 < 0.5  # nothing re-rendered
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    paths[0].write_bytes(b"broken")  # a damaged file is rendered again
    S.make_demo_videos(tmp_path, scenes=["ordered_pair"])
    assert _sha(paths[0]) == _sha(out / "ordered_pair.mp4")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_pts_are_index_over_fps(rendered: tuple[Path, float]) -> None:
    out, _ = rendered
    spec = S.scene_by_name("late_entry")
    frames = _decode(out / "late_entry.mp4")
    assert len(frames) == spec.n_frames == 200
    for i, f in frames.items():
        assert Fraction(f.pts) * f.time_base == Fraction(i, 25)
        assert (f.width, f.height, f.format.name) == (640, 480, "yuv420p")
    with av.open(str(out / "late_entry.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].average_rate == 25


def _hsv_of(color: str) -> np.ndarray:
    return cv2.cvtColor(np.uint8([[S.COLORS[color]]]), cv2.COLOR_RGB2HSV)[0, 0].astype(int)


def _colour_mask(rgb: np.ndarray, color: str) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(int)
    hue = _hsv_of(color)[0]
    dh = np.abs(hsv[..., 0] - hue)
    dh = np.minimum(dh, 180 - dh)
    return (dh <= 8) & (hsv[..., 1] >= 128) & (hsv[..., 2] >= 80)


def _gt(out: Path, name: str) -> dict[tuple[int, int], tuple[float, float, float, float]]:
    rows = {}
    for line in (out / f"{name}.gt.txt").read_text().splitlines():
        f, i, x, y, w, h, *_ = line.split(",")
        rows[(int(f), int(i))] = (float(x), float(y), float(w), float(h))
    return rows


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_gt_matches_drawn_objects(rendered: tuple[Path, float], name: str) -> None:
    out, _ = rendered
    spec = S.scene_by_name(name)
    gt = _gt(out, name)
    wanted = {0, spec.n_frames // 3, 2 * spec.n_frames // 3, spec.n_frames - 1, 90, 100}
    for i, frame in _decode(out / f"{name}.mp4", wanted).items():
        rgb = frame.to_ndarray(format="rgb24")
        for obj in spec.objects:
            mask = _colour_mask(rgb, obj.color)
            if (i + 1, obj.obj_id) not in gt:
                assert mask.sum() < 20, f"{name} frame {i}: object {obj.obj_id} drawn but not in gt"
                continue
            x, y, w, h = gt[(i + 1, obj.obj_id)]
            ys, xs = np.nonzero(mask)
            area = w * h * (math.pi / 4 if obj.shape == "disc" else 1.0)
            assert 0.75 * area < len(xs) < 1.15 * area, f"{name} frame {i} obj {obj.obj_id}"
            assert abs(xs.mean() - (x + w / 2 - 0.5)) < 2.0, f"{name} frame {i} obj {obj.obj_id}"
            assert abs(ys.mean() - (y + h / 2 - 0.5)) < 2.0, f"{name} frame {i} obj {obj.obj_id}"


def test_gt_file_format(rendered: tuple[Path, float]) -> None:
    out, _ = rendered
    lines = (out / "late_entry.gt.txt").read_text().splitlines()
    keys = []
    for line in lines:
        parts = line.split(",")
        assert len(parts) == 10 and parts[6:] == ["1", "-1", "-1", "-1"]
        keys.append((int(parts[0]), int(parts[1])))
    assert keys == sorted(keys) and keys[0] == (1, 1) and max(k[0] for k in keys) == 200
    assert min(f for f, i in keys if i == 2) == 89  # appears at 3.5 s: first frame index 88 (3.52 s)


def test_facts_of_standard_scenes(rendered: tuple[Path, float]) -> None:
    out, _ = rendered
    f = _facts(out, "left_right")
    assert (_obj(f, 1)["direction"], _obj(f, 2)["direction"]) == ("left", "right")
    assert _obj(f, 1)["start_region"] == "top-right" and _obj(f, 1)["end_region"] == "top-left"
    assert _obj(f, 1)["dx"] == pytest.approx(-400 / 640, abs=1e-4) and _obj(f, 1)["dy"] == 0
    assert _obj(f, 1)["distance"] == pytest.approx(400 / 800)
    assert _obj(f, 1)["mean_speed"] == pytest.approx(0.5 / 6, abs=1e-4)

    f = _facts(out, "up_down")
    assert (_obj(f, 1)["direction"], _obj(f, 2)["direction"]) == ("up", "down")

    f = _facts(out, "toward_away")
    assert (_obj(f, 1)["direction"], _obj(f, 2)["direction"]) == ("toward", "away")

    o = _obj(_facts(out, "stop_and_go"), 1)
    assert o["n_stops"] == 2 and o["repetitions"] == 0
    kinds = [(s["kind"], s["direction"]) for s in o["segments"] if s["kind"] == "move"]
    assert kinds == [("move", "right"), ("move", "right"), ("move", "up")]
    assert any(s["kind"] == "stop" and s["t1"] - s["t0"] >= 1.0 and s["t0"] > o["onset_s"] for s in o["segments"])

    o = _obj(_facts(out, "back_and_forth"), 1)
    assert o["repetitions"] == 3 and o["n_stops"] == 0 and o["distance"] > 2

    f = _facts(out, "late_entry")
    assert _obj(f, 2)["appear_s"] >= 3 and _obj(f, 2)["segments"][0]["t0"] == _obj(f, 2)["appear_s"]

    f = _facts(out, "ordered_pair")
    a, b = _obj(f, 1), _obj(f, 2)
    assert a["end_s"] < b["onset_s"]
    pair = next(p for p in f["pairs"] if (p["a"], p["b"]) == (1, 2))
    assert pair["a_starts_first"] and pair["a_ends_first"] and pair["onset_gap_s"] == pytest.approx(3.5)
    back = next(p for p in f["pairs"] if (p["a"], p["b"]) == (2, 1))
    assert not back["a_starts_first"] and back["onset_gap_s"] == pytest.approx(-3.5)

    for s in S.standard_scenes():
        f = _facts(out, s.name)
        assert f["n_frames"] == round(s.duration_s * 25) and f["fps"] == 25.0 and f["scene"] == s.name
        assert all(o["moved"] and o["onset_s"] is not None for o in f["objects"])


def test_extra_scenes_pan_and_cut(tmp_path: Path) -> None:
    pan = S.render_scene(S.scene_by_name("camera_pan"), tmp_path)
    frames = _decode(pan.mp4, {0, 25})
    g0, g1 = (cv2.cvtColor(frames[i].to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY).astype(np.float32)
              for i in (0, 25))
    # background moves -40 px/s: frame 25 (1 s) matches frame 0 shifted 40 px to the left
    errors = {s: float(np.abs(g0[:, s:] - g1[:, : g1.shape[1] - s]).mean()) for s in range(0, 61, 2)}
    assert min(errors, key=errors.get) == 40 and errors[40] < 0.3 * errors[0]

    cut = S.render_scene(S.scene_by_name("shot_cut"), tmp_path)
    frames = _decode(cut.mp4, {98, 99, 100, 101})
    means = [frames[i].to_ndarray(format="rgb24").reshape(-1, 3).mean(0) for i in (98, 99, 100, 101)]
    assert np.abs(means[0] - means[1]).max() < 3 and np.abs(means[2] - means[3]).max() < 3
    assert np.abs(means[1] - means[2]).max() > 30  # the cut at 4.0 s = frame 100
