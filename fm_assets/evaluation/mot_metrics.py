"""MOTA, IDF1 and HOTA for MOTChallenge-format tracks, with TrackEval's metric classes (CLEAR, Identity,
HOTA). py-motmetrics 1.4 is not used for scoring: it calls np.asfarray, which NumPy 2 removed.

The per-sequence data dict is built as TrackEval's MotChallenge2DBox builds it for 2D MOT 2015-style ground
truth (no distractor classes): boxes per 1-based frame over the whole sequence, ids relabelled to 0..n-1, IoU
similarity. Ground-truth rows whose `conf` column is 0 are ignored, as MOTChallenge does.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np


def read_mot(path: Path, is_gt: bool = False) -> np.ndarray:
    """Rows (frame, id, x, y, w, h, conf) of a MOTChallenge text file."""
    return parse_mot(Path(path).read_text(), is_gt)


def parse_mot(text: str, is_gt: bool = False) -> np.ndarray:
    """Rows (frame, id, x, y, w, h, conf) of MOTChallenge text; ground-truth rows with conf 0 are dropped."""
    rows = [line.split(",")[:7] for line in text.splitlines() if line.strip()]
    arr = np.array(rows, dtype=float).reshape(-1, 7) if rows else np.zeros((0, 7))
    if is_gt:
        arr = arr[arr[:, 6] != 0]
    return arr


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes a (n,4) and b (m,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def sequence_data(gt: np.ndarray, pred: np.ndarray, n_frames: int | None = None) -> dict:
    """TrackEval's per-sequence dict for one sequence."""
    n = int(n_frames or max(gt[:, 0].max(initial=0), pred[:, 0].max(initial=0)))
    gt_ids = {v: i for i, v in enumerate(np.unique(gt[:, 1]))}
    tr_ids = {v: i for i, v in enumerate(np.unique(pred[:, 1]))}
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_timesteps": n,
            "num_gt_ids": len(gt_ids), "num_tracker_ids": len(tr_ids),
            "num_gt_dets": len(gt), "num_tracker_dets": len(pred)}
    for f in range(1, n + 1):
        g, p = gt[gt[:, 0] == f], pred[pred[:, 0] == f]
        data["gt_ids"].append(np.array([gt_ids[v] for v in g[:, 1]], dtype=int))
        data["tracker_ids"].append(np.array([tr_ids[v] for v in p[:, 1]], dtype=int))
        data["similarity_scores"].append(_iou(g[:, 2:6], p[:, 2:6]))
    return data


def evaluate(gt: np.ndarray, pred: np.ndarray, n_frames: int | None = None) -> dict[str, float]:
    """MOTA, MOTP, IDF1, HOTA, DetA, AssA, IDSW, FP, FN, MT, ML for one sequence."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    data = sequence_data(gt, pred, n_frames)
    with contextlib.redirect_stdout(io.StringIO()):  # TrackEval prints its config
        clear = CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}).eval_sequence(data)
        ident = Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False}).eval_sequence(data)
        hota = HOTA().eval_sequence(data)
    return {
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDF1": float(ident["IDF1"]),
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])), "AssA": float(np.mean(hota["AssA"])),
        "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]),
        "MT": int(clear["MT"]), "ML": int(clear["ML"]), "gt_ids": data["num_gt_ids"], "pred_ids": data["num_tracker_ids"],
    }
