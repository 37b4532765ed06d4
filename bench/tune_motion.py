"""Benchmark and tune the embedded `motion` detector (fm_resources.motion.MotionDetector) + mmdet's ByteTracker.

For every video: decode all frames (fm_resources.video.decode), optionally sample them at a fixed rate
(``--fps 10``: the first frame at or after every 1/10 s, as the pipeline samples), run the detector on all of
them as ONE clip, track with mmdet's ByteTracker (fresh per video), and score the tracks with TrackEval's
CLEAR (MOTA), Identity (IDF1) and HOTA metrics against MOTChallenge ground truth, on the evaluated frames only
(IoU similarity, as TrackEval's MotChallenge2DBox does; MOT15 / synthetic gt have no distractor classes).
Speed = evaluated frames / (detector + tracker wall time), decoding excluded.

Videos: ../shared/data/videos/TUD-Campus.mp4 (gt ../shared/data/mot/TUD-Campus/gt.txt), the synthetic demo
scenes (fm_assets.synthetic.make_demo_videos, each with <name>.gt.txt), and car-detection.mp4 / box.mp4
(no gt: detection and track counts only).

Usage (from the repository root)::

    .venv/bin/python bench/tune_motion.py                        # all videos, full rate and 10 fps
    .venv/bin/python bench/tune_motion.py --only TUD-Campus --fps 0
    .venv/bin/python bench/tune_motion.py --check-metrics        # sample_tracker_output.txt: MOTA 0.526 IDF1 0.558
    .venv/bin/python bench/tune_motion.py --det '{"min_diff": 20}' --trk '{"init_track_thr": 0.6}'
    .venv/bin/python bench/tune_motion.py --grid                 # small detector x tracker grid on all gt videos
    .venv/bin/python bench/tune_motion.py --only TUD-Campus --draw /tmp/vis   # PNGs: gt green, tracks red
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TUD_GT = SHARED / "mot" / "TUD-Campus" / "gt.txt"
TUD_SAMPLE = SHARED / "mot" / "TUD-Campus" / "sample_tracker_output.txt"

TRACKER_DEFAULTS = dict(
    obj_score_thrs=dict(high=0.6, low=0.1), init_track_thr=0.7, weight_iou_with_det_scores=True,
    match_iou_thrs=dict(high=0.1, low=0.5, tentative=0.3), num_frames_retain=30, num_tentatives=3,
)


# ---------------------------------------------------------------------------------------------------- metrics
def load_mot(path: Path) -> np.ndarray:
    a = np.loadtxt(path, delimiter=",", ndmin=2)
    return a[:, :6] if len(a) else np.zeros((0, 6))


def trackeval_data(gt: np.ndarray, tr: np.ndarray, frames: list[int]) -> dict:
    """TrackEval's per-sequence data dict (as MotChallenge2DBox.get_preprocessed_seq_data builds it) for the
    1-based `frames`, with IoU of xywh boxes as similarity."""
    from trackeval.datasets._base_dataset import _BaseDataset

    gt_ids, tr_ids, sims = [], [], []
    for f in frames:
        g, t = gt[gt[:, 0] == f], tr[tr[:, 0] == f]
        gt_ids.append(g[:, 1].astype(int))
        tr_ids.append(t[:, 1].astype(int))
        sims.append(_BaseDataset._calculate_box_ious(g[:, 2:6].copy(), t[:, 2:6].copy(), box_format="xywh"))
    gmap = {v: k for k, v in enumerate(sorted(set(np.concatenate(gt_ids).tolist())))}
    tmap = {v: k for k, v in enumerate(sorted(set(np.concatenate(tr_ids).tolist())))}
    return dict(
        num_timesteps=len(frames), num_gt_ids=len(gmap), num_tracker_ids=len(tmap),
        num_gt_dets=int(sum(len(x) for x in gt_ids)), num_tracker_dets=int(sum(len(x) for x in tr_ids)),
        gt_ids=[np.array([gmap[v] for v in x], int) for x in gt_ids],
        tracker_ids=[np.array([tmap[v] for v in x], int) for x in tr_ids],
        similarity_scores=sims,
    )


def mot_metrics(gt: np.ndarray, tr: np.ndarray, frames: list[int]) -> dict:
    from trackeval.metrics import CLEAR, HOTA, Identity

    d = trackeval_data(gt, tr, frames)
    c = CLEAR({"PRINT_CONFIG": False, "THRESHOLD": 0.5}).eval_sequence(d)
    i = Identity({"PRINT_CONFIG": False, "THRESHOLD": 0.5}).eval_sequence(d)
    h = HOTA().eval_sequence(d)
    return dict(MOTA=float(c["MOTA"]), IDF1=float(i["IDF1"]), HOTA=float(np.mean(h["HOTA"])),
                MOTP=float(c["MOTP"]), FP=int(c["CLR_FP"]), FN=int(c["CLR_FN"]), IDSW=int(c["IDSW"]),
                GT=int(d["num_gt_dets"]))


# ---------------------------------------------------------------------------------------------------- pipeline
def decode_frames(path: Path, fps: float) -> tuple[list[np.ndarray], list[int]]:
    """RGB frames and their 1-based frame numbers over the source video; fps=0: every frame."""
    from fm_resources.video import decode

    frames, numbers, next_t = [], [], None
    for k, fr in enumerate(decode(path)):
        if fps > 0:
            if next_t is not None and fr.t_s < next_t - 1e-6:
                continue
            next_t = (fr.t_s if next_t is None else next_t) + 1.0 / fps
            while fr.t_s >= next_t - 1e-6:  # never fall behind on a gap
                next_t += 1.0 / fps
        frames.append(fr.rgb())
        numbers.append(k + 1)
    return frames, numbers


def make_tracker(params: dict):
    from mmdet.models.trackers import ByteTracker
    from mmdet.utils import register_all_modules

    register_all_modules()
    return ByteTracker(motion=dict(type="KalmanFilter"), **params)


def track(dets, params: dict) -> list[tuple[int, int, np.ndarray, float]]:
    """(frame index in clip, track id, xyxy, score) rows; a fresh tracker per call."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    tracker = make_tracker(params)
    rows = []
    for i, det in enumerate(dets):
        ds = DetDataSample(metainfo=dict(frame_id=i))
        ds.pred_instances = InstanceData(
            bboxes=torch.from_numpy(det.boxes), scores=torch.from_numpy(det.scores),
            labels=torch.zeros(len(det), dtype=torch.long),
        )
        out = tracker.track(ds)
        for b, s, tid in zip(out.bboxes.numpy(), out.scores.numpy(), out.instances_id.numpy()):
            rows.append((i, int(tid), b.astype(np.float64), float(s)))
    return rows


def rows_to_mot(rows, numbers: list[int]) -> np.ndarray:
    out = [(numbers[i], tid + 1, b[0], b[1], b[2] - b[0], b[3] - b[1]) for i, tid, b, _ in rows]
    return np.array(out, np.float64).reshape(-1, 6)


def run_one(frames, numbers, gt, det_params: dict, trk_params: dict, repeat: int = 1) -> dict:
    from fm_resources.motion import MotionDetector

    det = MotionDetector(**det_params)
    best_det = best_trk = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        dets = det.detect_clip(frames)
        t1 = time.perf_counter()
        rows = track(dets, trk_params)
        t2 = time.perf_counter()
        best_det, best_trk = min(best_det, t1 - t0), min(best_trk, t2 - t1)
    res = dict(frames=len(frames), dets=int(sum(len(d) for d in dets)), tracks=len({r[1] for r in rows}),
               det_s=best_det, trk_s=best_trk, fps=len(frames) / (best_det + best_trk),
               persons=int(sum(lbl == "person" for d in dets for lbl in d.labels)))
    if gt is not None:
        res.update(mot_metrics(gt, rows_to_mot(rows, numbers), numbers))
    res["_dets"], res["_rows"] = dets, rows
    return res


# ---------------------------------------------------------------------------------------------------- videos
def videos(only: list[str] | None) -> list[tuple[str, Path, Path | None]]:
    from fm_assets.synthetic import make_demo_videos

    vids = []
    if (SHARED / "videos" / "TUD-Campus.mp4").exists():
        vids.append(("TUD-Campus", SHARED / "videos" / "TUD-Campus.mp4", TUD_GT))
    synth_dir = Path(os.environ.get("FM_SYNTH_DIR", Path(tempfile.gettempdir()) / "fm_synthetic_scenes"))
    for p in make_demo_videos(synth_dir):
        vids.append((p.stem, p, p.with_suffix(".gt.txt")))
    for name in ("car-detection", "box"):
        if (SHARED / "videos" / f"{name}.mp4").exists():
            vids.append((name, SHARED / "videos" / f"{name}.mp4", None))
    if only:
        vids = [v for v in vids if v[0] in only]
    return vids


def draw(out_dir: Path, name: str, frames, numbers, gt, res) -> None:
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    by_frame: dict[int, list] = {}
    for i, tid, b, s in res["_rows"]:
        by_frame.setdefault(i, []).append((tid, b, s))
    for i in range(0, len(frames), max(1, len(frames) // 12)):
        img = cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR).copy()
        if gt is not None:
            for r in gt[gt[:, 0] == numbers[i]]:
                x, y, w, h = r[2:6].astype(int)
                cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 1)
        d = res["_dets"][i]
        for b, s, lbl in zip(d.boxes.astype(int), d.scores, d.labels):
            cv2.rectangle(img, tuple(b[:2]), tuple(b[2:]), (255, 200, 0), 1)
            cv2.putText(img, f"{s:.2f}{'P' if lbl == 'person' else ''}", (int(b[0]), int(b[3]) - 3),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 200, 0), 1)
        for tid, b, s in by_frame.get(i, []):
            b = b.astype(int)
            cv2.rectangle(img, tuple(b[:2]), tuple(b[2:]), (0, 0, 255), 2)
            cv2.putText(img, str(tid), (int(b[0]) + 2, int(b[1]) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 2)
        cv2.imwrite(str(out_dir / f"{name}_{numbers[i]:04d}.png"), img)


def fmt(name: str, fps_tag: str, r: dict) -> str:
    base = f"| {name} | {fps_tag} | {r['frames']} | {r['dets']} | {r['persons']} | {r['tracks']} | {r['fps']:.1f} |"
    if "MOTA" in r:
        base += (f" {r['MOTA']:.3f} | {r['IDF1']:.3f} | {r['HOTA']:.3f} | {r['FP']} | {r['FN']} | {r['IDSW']} |")
    else:
        base += " - | - | - | - | - | - |"
    return base


HEADER = ("| video | rate | frames | dets | person dets | tracks | det+track fps "
          "| MOTA | IDF1 | HOTA | FP | FN | IDSW |\n" + "|---" * 13 + "|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="video names (TUD-Campus, left_right, ..., car-detection, box)")
    ap.add_argument("--fps", type=float, nargs="*", default=[0, 10], help="sampling rates; 0 = every frame")
    ap.add_argument("--det", default="{}", help="MotionDetector parameters, JSON")
    ap.add_argument("--trk", default="{}", help="ByteTracker parameters overriding the defaults, JSON")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (best of)")
    ap.add_argument("--grid", action="store_true",
                    help="a small detector x tracker grid on the gt videos (cells: MOTA/IDF1)")
    ap.add_argument("--check-metrics", action="store_true", help="score sample_tracker_output.txt and exit")
    ap.add_argument("--draw", type=Path, help="write PNGs of detections / tracks / gt here")
    args = ap.parse_args()

    if args.check_metrics:
        m = mot_metrics(load_mot(TUD_GT), load_mot(TUD_SAMPLE), list(range(1, 72)))
        print(f"sample_tracker_output.txt: MOTA {m['MOTA']:.3f} IDF1 {m['IDF1']:.3f} HOTA {m['HOTA']:.3f} "
              f"IDSW {m['IDSW']} (py-motmetrics reference: MOTA 0.526 IDF1 0.558, 7 id switches)")
        return

    import cv2
    import torch

    cv2.setNumThreads(os.cpu_count() or 1)
    torch.set_num_threads(1)
    det_params = json.loads(args.det)
    trk_params = {**TRACKER_DEFAULTS, **json.loads(args.trk)}
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, opencv {cv2.__version__}, torch {torch.__version__}")
    print(f"detector: {det_params or 'defaults'}; tracker: {json.dumps(trk_params)}\n")

    data = {}
    for name, path, gt_path in videos(args.only):
        for fps in args.fps:
            frames, numbers = decode_frames(path, fps)
            data[(name, fps)] = (frames, numbers, load_mot(gt_path) if gt_path else None)

    if args.grid:
        grid_det = [dict(), dict(min_diff=14.0), dict(min_diff=24.0), dict(noise_k=3.0), dict(noise_k=5.0),
                    dict(split_valley=0.45), dict(hog_split_aspect=0.45, hog_hit=0.0, hog_min_person=0.5)]
        grid_trk = [dict(), dict(init_track_thr=0.6), dict(init_track_thr=0.8), dict(num_tentatives=2),
                    dict(match_iou_thrs=dict(high=0.2, low=0.5, tentative=0.3)),
                    dict(match_iou_thrs=dict(high=0.1, low=0.3, tentative=0.3)),
                    dict(weight_iou_with_det_scores=False), dict(obj_score_thrs=dict(high=0.5, low=0.1))]
        gt_items = [(k, v) for k, v in data.items() if v[2] is not None]
        print("| detector | tracker | " + " | ".join(f"{n}@{f:g}" for (n, f), _ in gt_items)
              + " | mean MOTA | mean IDF1 |\n|---|---|" + "---|" * (len(gt_items) + 2))
        from fm_resources.motion import MotionDetector

        for dp in grid_det:
            det = MotionDetector(**{**det_params, **dp})
            dets = {k: det.detect_clip(v[0]) for k, v in gt_items}
            for tp in grid_trk:
                cells, motas, idf1s = [], [], []
                for k, (frames, numbers, gt) in gt_items:
                    m = mot_metrics(gt, rows_to_mot(track(dets[k], {**trk_params, **tp}), numbers), numbers)
                    cells.append(f"{m['MOTA']:.3f}/{m['IDF1']:.3f}")
                    motas.append(m["MOTA"])
                    idf1s.append(m["IDF1"])
                print(f"| {json.dumps(dp)} | {json.dumps(tp)} | " + " | ".join(cells)
                      + f" | {np.mean(motas):.3f} | {np.mean(idf1s):.3f} |", flush=True)
        return

    print(HEADER)
    for (name, fps), (frames, numbers, gt) in data.items():
        r = run_one(frames, numbers, gt, det_params, trk_params, repeat=args.repeat)
        print(fmt(name, "all" if fps == 0 else f"{fps:g} fps", r), flush=True)
        if args.draw:
            draw(args.draw, f"{name}_{'all' if fps == 0 else f'{fps:g}fps'}", frames, numbers, gt, r)


if __name__ == "__main__":
    main()
