"""Tests of the second synthetic family, "wild" (fm_assets.synthetic.wild): the scene specs of both seed sets meet the
brief (sizes, rates, durations, 2-8 objects, colours, shapes, speeds, movers, in view most of the time), determinism,
the ground truth against the rasterised objects, and one rendered scene: byte-identical re-render, skip when up to
date, frame count and timestamps, and the illumination change and camera jitter measured from the decoded frames."""

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
from fm_assets.synthetic import wild as W

ALL_SEEDS = (*S.WILD_DEV_SEEDS, *S.WILD_HELDOUT_SEEDS)
RENDER_SEED = 5  # a short dev scene (6 s, 640x360 @ 12 fps) with 6 objects, shadows and occlusions


@pytest.fixture(scope="module")
def scenes() -> dict[int, tuple[W.WildScene, list]]:
    return {s: (sc := S.wild_scene(s), S.wild_gt_rows(sc)) for s in ALL_SEEDS}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Specs (no pixels)


def test_seed_sets_are_fixed_and_disjoint() -> None:
    assert S.WILD_DEV_SEEDS == tuple(range(12)) and S.WILD_HELDOUT_SEEDS == tuple(range(1000, 1012))
    assert S.wild_name(7) == "wild-0007" and S.wild_name(1003) == "wild-1003"


def test_specs_meet_the_brief(scenes: dict[int, tuple[W.WildScene, list]]) -> None:
    for seeds in (S.WILD_DEV_SEEDS, S.WILD_HELDOUT_SEEDS):
        durations = [scenes[s][0].duration_s for s in seeds]
        assert any(d > 10 for d in durations) and any(d <= 10 for d in durations)  # some split into clips
    for seed, (sc, rows) in scenes.items():
        assert sc.name == S.wild_name(seed) and sc.seed == seed
        assert (sc.width, sc.height) in W.FRAME_SIZES and sc.fps in W.FPS_CHOICES
        assert 6.0 <= sc.duration_s <= 16.0 + 1 / sc.fps
        assert 2 <= len(sc.objects) <= 8
        colours = [o.color for o in sc.objects]
        assert set(colours) <= set(S.COLORS) and len(set(colours)) >= len(colours) - 1, sc.name  # mostly distinct
        assert sorted(o.z for o in sc.objects) == list(range(len(sc.objects)))
        for o in sc.objects:
            assert o.shape in W.WILD_SHAPES and o.behaviour in W.BEHAVIOURS
            assert 0.03 <= o.size / sc.diag <= 0.15 and max(o.w, o.h) >= 0.7 * o.size, (sc.name, o.obj_id)
            kfs = o.keyframes
            assert kfs[0].t == 0 and kfs[-1].t == pytest.approx(sc.duration_s, abs=1e-3)
            for a, b in zip(kfs, kfs[1:]):  # piecewise-constant velocities in the realistic range
                v = math.hypot(b.cx - a.cx, b.cy - a.cy) / (b.t - a.t) / sc.diag if b.t > a.t else 0.0
                assert v == 0 or 0.05 - 1e-3 <= v <= 0.35 + 1e-3, (sc.name, o.obj_id, v)
        j = np.array(sc.jitter)
        assert len(j) == len(sc.gain) == sc.n_frames
        assert np.abs(j).max() <= W.MAX_JITTER_PX and j.std(axis=0).min() > 0.2  # jitter present, small
        assert 0.15 - 1e-4 <= max(sc.gain) - min(sc.gain) <= 0.25 + 1e-4  # slow illumination change

        # ground truth: boxes inside the frame, every object in view >= 1 s, >= 2 objects that really move,
        # objects in view most of the time
        by: dict[int, list] = {}
        for f, oid, x, y, w, h, vis in rows:
            assert 1 <= f <= sc.n_frames and 0 <= vis <= 1
            assert x >= 0 and y >= 0 and x + w <= sc.width + 1e-6 and y + h <= sc.height + 1e-6 and w >= 1 and h >= 1
            by.setdefault(oid, []).append((f, x + w / 2, y + h / 2, w, h))
        assert set(by) == {o.obj_id for o in sc.objects}
        movers = 0
        for o in sc.objects:
            seen = by[o.obj_id]
            frames = [r[0] for r in seen]
            assert len(seen) >= sc.fps and frames == list(range(frames[0], frames[-1] + 1)), (sc.name, o.obj_id)
            full = [r for r in seen if abs(r[3] - o.w) < 0.01 and abs(r[4] - o.h) < 0.01]  # boxes not cut by an edge
            path = sum(math.hypot(b[1] - a[1], b[2] - a[2]) for a, b in zip(full, full[1:]) if b[0] == a[0] + 1)
            movers += path >= 0.1 * sc.diag
        assert movers >= 2, sc.name
        assert len(rows) >= 0.6 * len(sc.objects) * sc.n_frames, sc.name


def test_variety_over_each_seed_set(scenes: dict[int, tuple[W.WildScene, list]]) -> None:
    for seeds in (S.WILD_DEV_SEEDS, S.WILD_HELDOUT_SEEDS):
        objs = [o for s in seeds for o in scenes[s][0].objects]
        assert len({o.shape for o in objs}) >= 5
        assert {"static", "late_start", "stop_go", "enter", "exit", "cross"} <= {o.behaviour for o in objs}
        assert len({scenes[s][0].background for s in seeds}) >= 3
        assert any(o.shadow for o in objs)
        assert any(v < 0.5 and w > 0 for s in seeds for *_, w, _h, v in scenes[s][1])  # occlusions
        assert len({len(scenes[s][0].objects) for s in seeds}) >= 4


def test_deterministic_specs(scenes: dict[int, tuple[W.WildScene, list]]) -> None:
    for seed in (0, 7, 1003):
        assert S.wild_scene(seed) == scenes[seed][0]
    assert S.wild_scene(1) != S.wild_scene(2)
    sc, rows = scenes[3]
    head = sc.head(20)
    assert head.n_frames == 20 and S.wild_gt_rows(head) == [r for r in rows if r[0] <= 20]


def test_truth_boxes_are_the_rasterised_objects(scenes: dict[int, tuple[W.WildScene, list]]) -> None:
    """The tight box of each object's rendered coverage (alpha >= 0.5, unoccluded) is its gt box within 1.5 px, and the
    visibility is 1 for an object seen whole."""
    for seed in (RENDER_SEED, 9, 1008):
        sc, rows = scenes[seed]
        lay = W._Layout(sc)
        gt = {(r[0], r[1]): r for r in rows}
        n = 0
        for i in range(0, sc.n_frames, 7):
            for o in sc.objects:
                placed = lay.place(o, i)
                r = gt.get((i + 1, o.obj_id))
                if placed is None:
                    assert r is None
                    continue
                x, y, a = placed
                ys, xs = np.nonzero(a >= 0.5)
                if r is None:  # less than 1 px in view
                    assert len(xs) == 0 or min(np.ptp(xs), np.ptp(ys)) <= 1
                    continue
                box = (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1)
                want = (r[2], r[3], r[2] + r[4], r[3] + r[5])
                assert np.abs(np.subtract(box, want)).max() <= 1.5, (sc.name, i, o.obj_id, box, want)
                n += 1
        assert n > 50
    vis = [r[6] for r in scenes[RENDER_SEED][1]]
    assert max(vis) == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------------------------------
# One rendered scene


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[W.WildTruth, float]:
    out = tmp_path_factory.mktemp("wild")
    t0 = time.perf_counter()
    truth = S.render_wild(RENDER_SEED, out)
    return truth, time.perf_counter() - t0


def test_render_files_and_truth(rendered: tuple[W.WildTruth, float]) -> None:
    tr, seconds = rendered
    assert seconds < 15, f"rendering took {seconds:.1f} s"
    sc = S.wild_scene(RENDER_SEED)
    assert [tr.mp4.name, tr.gt.name, tr.truth_path.name] == ["wild-0005.mp4", "wild-0005.gt.txt", "wild-0005.truth.json"]
    truth = json.loads(tr.truth_path.read_text())
    assert truth == tr.truth
    for key, want in {"scene": "wild-0005", "family": "wild", "seed": RENDER_SEED, "width": sc.width,
                      "height": sc.height, "fps": sc.fps, "n_frames": sc.n_frames}.items():
        assert truth[key] == want
    assert truth["mp4_sha256"] == _sha(tr.mp4) and truth["gt_sha256"] == _sha(tr.gt)
    rows = S.wild_gt_rows(sc)
    lines = tr.gt.read_text().splitlines()
    assert len(lines) == len(rows)
    for line, r in zip(lines, rows):
        f = line.split(",")
        assert len(f) == 10 and f[6:8] == ["1", "-1"] and f[9] == "-1"
        assert (int(f[0]), int(f[1])) == r[:2]
        assert [float(v) for v in f[2:6]] == pytest.approx(r[2:6], abs=0.006)
        assert float(f[8]) == pytest.approx(r[6], abs=6e-4)
    for o, spec in zip(truth["objects"], sorted(sc.objects, key=lambda o: o.obj_id)):
        mine = [r for r in rows if r[1] == spec.obj_id]
        assert (o["obj_id"], o["shape"], o["color"], o["size"]) == (spec.obj_id, spec.shape, spec.color, spec.size)
        assert (o["first_frame"], o["last_frame"], o["n_frames_visible"]) == (mine[0][0], mine[-1][0], len(mine))


def test_render_deterministic(rendered: tuple[W.WildTruth, float], tmp_path: Path) -> None:
    tr, _ = rendered
    again = S.render_wild(RENDER_SEED, tmp_path, force=True)
    assert _sha(again.mp4) == _sha(tr.mp4) and again.gt.read_bytes() == tr.gt.read_bytes()
    assert again.truth_path.read_bytes() == tr.truth_path.read_bytes()
    t0 = time.perf_counter()
    assert S.make_wild_videos(tmp_path, [RENDER_SEED]) == [again.mp4]  # up to date: not rendered again
    assert time.perf_counter() - t0 < 0.5


def test_same_scene_encoded_again_in_one_process_gives_the_same_bytes(tmp_path: Path) -> None:
    # x264's SIMD code gave different bytes for the same frames when they were rendered between encoder calls
    # (three encodes of these 30 frames: three different files); the fixed encoder settings must not
    scene = S.wild_scene(2).head(30)
    shas = {_sha(S.render_wild_scene(scene, tmp_path / str(k), force=True).mp4) for k in range(3)}
    assert len(shas) == 1


def test_render_skipped_when_up_to_date(tmp_path: Path) -> None:
    scene = S.wild_scene(RENDER_SEED).head(12)
    first = S.render_wild_scene(scene, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    t0 = time.perf_counter()
    assert S.render_wild_scene(scene, tmp_path) == first
    assert time.perf_counter() - t0 < 0.5  # nothing rendered
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    good = first.gt.read_bytes()
    first.gt.write_text("broken\n")  # a damaged file is rendered again
    S.render_wild_scene(scene, tmp_path)
    assert first.gt.read_bytes() == good
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_decoded_frames_show_lighting_change_and_jitter(rendered: tuple[W.WildTruth, float]) -> None:
    tr, _ = rendered
    sc = S.wild_scene(RENDER_SEED)
    with av.open(str(tr.mp4)) as c:
        stream = c.streams.video[0]
        decoded = list(c.decode(video=0))
        assert Fraction(stream.average_rate) == sc.fps
    assert len(decoded) == sc.n_frames
    assert [f.pts * f.time_base for f in decoded] == [Fraction(i, sc.fps) for i in range(sc.n_frames)]
    grey = [f.to_ndarray(format="gray").astype(np.float32) for f in decoded]

    # illumination: the per-pixel brightness ratio to frame 0 (median, robust to the objects) follows the gain
    gain = np.asarray(sc.gain) / sc.gain[0]
    ratio = np.array([np.median(g / np.maximum(grey[0], 8)) for g in grey])
    assert np.ptp(ratio) >= 0.12
    assert np.corrcoef(ratio, gain)[0, 1] > 0.95 and np.abs(ratio - gain).max() < 0.08

    # camera jitter: translation of the background (objects and their shadows masked) against frame 0, by ECC
    gt = np.loadtxt(tr.gt, delimiter=",", ndmin=2)

    def background(i: int) -> np.ndarray:
        m = np.ones_like(grey[0], np.uint8)
        for _, _, x, y, w, h, *_ in gt[gt[:, 0] == i + 1]:
            pad = 0.5 * max(w, h) + 6
            m[max(0, int(y - pad)) : int(y + h + pad) + 1, max(0, int(x - pad)) : int(x + w + pad) + 1] = 0
        return m

    jit = np.asarray(sc.jitter)
    measured, want = [], []
    for i in range(0, sc.n_frames, 8):
        warp = np.eye(2, 3, dtype=np.float32)
        _, warp = cv2.findTransformECC(grey[0], grey[i], warp, cv2.MOTION_TRANSLATION,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4),
                                       background(0) & background(i), 5)
        measured.append(warp[:, 2])
        want.append(jit[i] - jit[0])
    measured_a, want_a = np.array(measured), np.array(want)
    assert np.abs(measured_a - want_a).max() < 0.4
    assert np.abs(measured_a).max() > 0.5 and np.abs(measured_a).max() <= 2 * W.MAX_JITTER_PX + 0.4
