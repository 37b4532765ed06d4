"""`fm eval grounded`: GroundMoRe's J, F and J&F for motion-grounded questions (answer = one object's masks over
time, EMPTY outside the time window of the asked-about motion).

Metrics (GroundMoRe's evaluate_groundmore.py with DAVIS 2017's db_eval_iou / db_eval_boundary, reproduced here)
------------------------------------------------------------------------------------------------------------------
- Frames: per question, 20 frames of its clip, ``np.linspace(0, n - 1, num=20, dtype=int)`` over the clip's n
  frames (numpy's int cast TRUNCATES: 100 frames give 0, 5, 10, 15, 20, 26, ...; a clip of fewer than 20 frames
  repeats frames, and the repeats count, as in GroundMoRe). The clip's frames are, with the lake as ground truth,
  the source video's decoded frames start_frame .. end_frame - 1 of `raw_clips` (frame indices of the source
  video, as in `tracks.frame_idx`); with a `fm export groundmore` folder (or GroundMoRe's own data) as ground
  truth, the exported frames 0 .. n_frames - 1 of the clip (images/frame_k.jpg).
- J: IoU of the binary masks; 1 when both are empty (so an empty prediction is right outside the window).
- F: DAVIS's boundary F-measure. Boundaries: a pixel is on the boundary when it differs from its right, lower
  or lower-right neighbour (DAVIS's seg2bmap: 1 px wide, offset half a pixel toward the origin; the last row
  compares only rightwards, the last column only downwards, the bottom-right pixel never is). Tolerance:
  r = ceil(0.008 * sqrt(h^2 + w^2)) pixels (7 px at 640x480; a tolerance >= 1 is taken as pixels), and a
  boundary pixel matches when a boundary pixel of the other mask lies in the disk x^2 + y^2 <= r^2 around it
  (dilation with that disk). precision = matched predicted / predicted boundary pixels, recall = matched truth /
  truth boundary pixels, F = 2PR / (P + R) (0 when P + R = 0); both boundaries empty: F = 1; one empty: F = 0.
- Per question J and F are the means over the 20 frames; a group's J and F are the means over its questions;
  J&F = (J + F) / 2; reported per q_type (causal, sequential, counterfactual, descriptive) and overall, in
  percent like the paper.

Ground truth (``--gt``)
-----------------------
Default: the lake. Every kept grounded question of `qa_pairs` (``--split`` restricts to the videos of one split of
the `splits` table). The mask on a sampled frame f is EMPTY unless the frame's time t(f) is inside the window,
``action_start_s - 0.5 ms <= t(f) <= action_end_s + 0.5 ms`` (windows are stored rounded to 1 ms); inside it is
the target track's shape on f: its box linearly interpolated between the tracker's sampled frames (any gap, as
`tracking.mot_text` does for MOT; empty before the track's first and after its last box), filled as the pixels
[floor(x1), ceil(x2)) x [floor(y1), ceil(y2)), or, where the detection matched to the track box (IoU >= 0.5) on
the nearest sampled frame has an instance mask (`detections.mask_rle`), that mask moved by the change of the box
centre. Frame times t(f) are interpolated from the clip's sampled frames (`tracks.t_s`, so variable frame rate is
honoured) and extrapolated with the clip's fps.

``--gt DIR``: a `fm export groundmore` folder (or GroundMoRe's own layout): DIR/groundmore_<split>.json (every
such file with ``--split all``) and DIR/groundmore_videos/VID/masks/frame_kkkkkk.png. The mask on frame k is
``png_k == obj_id`` inside the window GroundMoRe's evaluator derives from the "MM:SS" action_start / action_end
and the clip start in the key's _MMSS_MMSS tail, frames (start - clip start) * fps .. (end - clip start) * fps - 1
(fps 6, GroundMoRe's; fm's export writes the same window as action_start_frame / action_end_frame, and a
disagreement is reported), else empty; a missing mask file is an empty mask. Question ids are the export's keys (the lake's
qa_id), or "VID/exp_id" when the keys repeat across videos (GroundMoRe's own "0", "1", ...).

Predictions (``--pred DIR``), one entry per question id, frames in the ground truth's frame index space
--------------------------------------------------------------------------------------------------------
- masks: DIR/<qa_id>/<frame:05d>.png, a palette, grey or binary PNG of the frame's size; pixels != 0 are the
  object (RGB: any channel != 0). Names "12.png" and "frame_000012.png" are read too.
- RLE: DIR/<qa_id>.json = {"frames": {"<frame>": {"size": [h, w], "counts": "..."} | null}} (COCO RLE, compressed
  string or uncompressed list counts, decoded with pycocotools).
- boxes: DIR/<qa_id>.json = {"frames": {"<frame>": [x1, y1, x2, y2] | null}}, pixels, x2 > x1 and y2 > y1,
  filled as [floor(x1), ceil(x2)) x [floor(y1), ceil(y2)) like the ground truth's boxes. RLE and boxes may be
  mixed in one file; other keys of the file are ignored.
Only the 20 sampled frames are read (``--write-tasks FILE`` lists them per question); a sampled frame a
prediction does not have is an EMPTY mask.

Bad input is reported per question (table + the ``--out`` JSON) and scored, never skipped: a question without a
prediction is ``missing`` (J = F = 0 for the question), an unreadable file or a JSON without a "frames" object is
``broken`` (J = F = 0), a frame whose mask has the wrong size or cannot be decoded counts J = F = 0 for that
frame (``partial``); prediction ids that are not questions are listed as extra and ignored.

Baseline: ``--baseline largest-moving`` writes, per question, the boxes of the kept (moving) trajectory of the
question's clip with the largest mean box area over its whole track (not the window: it is never empty inside
the track's span), then scores them.

Results go to the terminal, to ``--out`` (JSON, with every question and its per-frame J and F) and to the lake:
eval_grounded/<run>.parquet (one row per q_type and `overall`, in percent; DuckDB view `eval_grounded`) and
eval_grounded/questions/<run>.parquet (one row per question, J, F and JF in [0, 1], status and problems).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from fm_assets.export.groundmore import evaluator_window
from fm_assets.labels.masks import TrackPath, box_mask, decode_rle, shape_mask

if TYPE_CHECKING:
    import numpy as np


N_FRAMES = 20
BOUND_TH = 0.008
Q_TYPES = ("causal", "sequential", "counterfactual", "descriptive")
WINDOW_TOL_S = 5e-4
BASELINES = ("largest-moving",)
_FRAME_NAME = re.compile(r"^(?:frame_)?(\d+)$")


# --------------------------------------------------------------------------------------------------
# Metrics


def sample_indices(n: int, k: int = N_FRAMES) -> np.ndarray:
    """GroundMoRe's frame sampling: k indices into n frames, np.linspace(0, n - 1, k) truncated to int."""
    import numpy as np

    if n <= 0:
        raise ValueError("a clip without frames cannot be sampled")
    return np.linspace(0, n - 1, num=k, dtype=int)


def tolerance_px(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """DAVIS's boundary tolerance: bound_th itself when >= 1 (pixels), else ceil(bound_th * image diagonal)."""
    import numpy as np

    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape[:2])))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS's seg2bmap: pixels that differ from their right, lower or lower-right neighbour."""
    import numpy as np

    seg = np.asarray(mask).astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: the pixels with x^2 + y^2 <= radius^2."""
    import numpy as np

    r = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(r, r)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mask IoU; 1 when both masks are empty."""
    import numpy as np

    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask sizes differ: {gt.shape} vs {pred.shape}")
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """DAVIS's boundary F-measure of a predicted mask against the truth (see the module doc)."""
    import cv2
    import numpy as np

    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask sizes differ: {gt.shape} vs {pred.shape}")
    gt_b, fg_b = boundary_map(gt), boundary_map(pred)
    n_gt, n_fg = int(gt_b.sum()), int(fg_b.sum())
    if n_gt == 0 and n_fg == 0:
        return 1.0
    if n_gt == 0 or n_fg == 0:
        return 0.0
    kernel = disk(tolerance_px(gt.shape, bound_th))
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(fg_b & gt_dil) / n_fg
    recall = np.count_nonzero(gt_b & fg_dil) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------------
# Ground truth


@dataclass
class GTQuestion:
    """One grounded question with its 20 sampled frames and, per frame, the truth's shape (None = empty):
    ("box", (x1, y1, x2, y2)), ("rle", rle_json, (dx, dy), box) or ("png", path, obj_id)."""

    qa_id: str
    video_id: str
    clip_id: str
    q_type: str
    question: str
    answer: str | None
    target: int
    height: int
    width: int
    frames: list[int]  # the sampled frames, in the ground truth's frame space (what predictions are keyed by)
    inside: list[bool]  # frame inside the action window
    shapes: list[tuple | None]
    source_frames: list[int | None] = field(default_factory=list)  # the same frames as source-video indices
    times: list[float | None] = field(default_factory=list)  # seconds from the start of the source video
    window: tuple = ()

    def mask(self, i: int) -> np.ndarray:
        return shape_mask(self.shapes[i], self.height, self.width)


def frame_times(frames: list[int], clip: dict, anchors: list[tuple[int, float]]) -> list[float]:
    """Presentation times of source frames of a clip: interpolated between anchor (frame_idx, t_s) pairs (the
    clip's sampled frames) and extrapolated with the clip's fps outside them."""
    import numpy as np

    pts = dict(anchors)
    pts.setdefault(int(clip["start_frame"]), float(clip["start_s"]))
    fx = np.array(sorted(pts), dtype=float)
    ty = np.array([pts[int(f)] for f in fx], dtype=float)
    fps = float(clip.get("fps") or 0) or 25.0
    out = []
    for f in frames:
        if f < fx[0]:
            out.append(float(ty[0] - (fx[0] - f) / fps))
        elif f > fx[-1]:
            out.append(float(ty[-1] + (f - fx[-1]) / fps))
        else:
            out.append(float(np.interp(f, fx, ty)))
    return out


def lake_ground_truth(qa_pairs, raw_clips, tracks, detections=None, split_of: dict[str, str] | None = None,
                      split: str = "all") -> tuple[list[GTQuestion], list[dict]]:
    """The kept grounded questions of the lake with their sampled frames and truth shapes, and the questions that
    cannot be scored (clip missing, ...) with the reason."""
    import polars as pl

    problems: list[dict] = []
    if qa_pairs is None or not len(qa_pairs):
        return [], problems
    qa = qa_pairs.filter(pl.col("grounded").fill_null(False) & pl.col("kept").fill_null(False)).sort("qa_id")
    if split != "all":
        split_of = split_of or {}
        qa = qa.filter(pl.col("video_id").map_elements(lambda v: split_of.get(v) == split, return_dtype=pl.Boolean))
    clips = {c["clip_id"]: c for c in raw_clips.iter_rows(named=True)} if raw_clips is not None else {}
    by_clip = {k[0]: g for k, g in tracks.group_by("clip_id")} if tracks is not None and len(tracks) else {}
    dets_by_clip = {}
    if detections is not None and len(detections) and "mask_rle" in detections.columns:
        dets_by_clip = {k[0]: g for k, g in detections.filter(pl.col("mask_rle").is_not_null()).group_by("clip_id")}
    out: list[GTQuestion] = []
    paths: dict[tuple[str, int], TrackPath] = {}
    for q in qa.iter_rows(named=True):
        clip = clips.get(q["clip_id"])
        if clip is None:
            problems.append({"qa_id": q["qa_id"], "problem": f"clip {q['clip_id']} not in raw_clips"})
            continue
        n = int(clip["end_frame"]) - int(clip["start_frame"])
        if n <= 0 or not clip.get("width") or not clip.get("height"):
            problems.append({"qa_id": q["qa_id"], "problem": f"clip {q['clip_id']} has no frames or no size"})
            continue
        if q["target_track_id"] is None or q["action_start_s"] is None or q["action_end_s"] is None:
            problems.append({"qa_id": q["qa_id"], "problem": "no target_track_id or action window"})
            continue
        ctracks = by_clip.get(q["clip_id"])
        frames = [int(clip["start_frame"]) + int(i) for i in sample_indices(n)]
        anchors = [] if ctracks is None else list(ctracks.select("frame_idx", "t_s").unique().iter_rows())
        times = frame_times(frames, clip, anchors)
        t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
        inside = [t0 - WINDOW_TOL_S <= t <= t1 + WINDOW_TOL_S for t in times]
        tid = int(q["target_track_id"])
        key = (q["clip_id"], tid)
        if key not in paths:
            rows = ctracks.filter(pl.col("track_id") == tid) if ctracks is not None else None
            paths[key] = TrackPath(rows if rows is not None else pl.DataFrame(
                schema={"frame_idx": pl.Int32, "x1": pl.Float64, "y1": pl.Float64, "x2": pl.Float64, "y2": pl.Float64}),
                dets_by_clip.get(q["clip_id"]))
        path = paths[key]
        if path.span is None:
            problems.append({"qa_id": q["qa_id"], "problem": f"target track {tid} has no boxes in tracks "
                                                             "(its truth is empty on every frame)", "scored": True})
        shapes = [path.shape_at(f) if ins else None for f, ins in zip(frames, inside)]
        out.append(GTQuestion(
            qa_id=q["qa_id"], video_id=q["video_id"], clip_id=q["clip_id"], q_type=str(q["q_type"] or "unknown"),
            question=q["question"], answer=q.get("answer_text"), target=tid, height=int(clip["height"]),
            width=int(clip["width"]), frames=frames, inside=inside, shapes=shapes, source_frames=list(frames),
            times=times, window=(t0, t1)))
    return out, problems


def export_ground_truth(root: Path, split: str = "all") -> tuple[list[GTQuestion], list[dict]]:
    """The questions of a `fm export groundmore` folder (or GroundMoRe's own layout); see the module doc."""
    from PIL import Image

    root = Path(root)
    files = sorted(root.glob("groundmore_*.json")) if split == "all" else [root / f"groundmore_{split}.json"]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FileNotFoundError(f"no groundmore_{'*' if split == 'all' else split}.json in {root}")
    problems: list[dict] = []
    entries = []
    for f in files:
        try:
            videos = json.loads(f.read_text())["videos"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f}: not a GroundMoRe annotation file ({exc})") from exc
        for vid, entry in videos.items():
            for exp_id, q in (entry.get("questions") or {}).items():
                entries.append((vid, entry, str(exp_id), q))
    counts: dict[str, int] = {}
    for _, _, exp_id, _ in entries:
        counts[exp_id] = counts.get(exp_id, 0) + 1
    unique = all(c == 1 for c in counts.values())
    out: list[GTQuestion] = []
    for vid, entry, exp_id, q in entries:
        qid = exp_id if unique else f"{vid}/{exp_id}"
        vdir = root / "groundmore_videos" / vid
        n = entry.get("n_frames")
        if n is None:
            imgs = vdir / "images"
            n = len([p for p in imgs.iterdir() if p.is_file()]) if imgs.is_dir() else 0
        n = int(n)
        if n <= 0:
            problems.append({"qa_id": qid, "problem": f"video {vid} has no frames in {vdir / 'images'}"})
            continue
        height, width = entry.get("height"), entry.get("width")
        if not height or not width:
            first = next(iter(sorted((vdir / "masks").glob("*.png"))), None) if (vdir / "masks").is_dir() else None
            if first is None:
                problems.append({"qa_id": qid, "problem": f"video {vid}: no size and no mask files"})
                continue
            width, height = Image.open(first).size
        # GroundMoRe's rule, as its evaluator applies it: the window comes from the "MM:SS" strings and the key's
        # _MMSS_MMSS start, at the export's fps (6, GroundMoRe's, unless the export says otherwise)
        try:
            a, b = evaluator_window(q["action_start"], q["action_end"], vid, int(entry.get("fps") or 6))
        except (KeyError, ValueError) as exc:
            problems.append({"qa_id": qid, "problem": f"no usable action_start / action_end ({exc!r})"})
            continue
        if "action_start_frame" in q and (int(q["action_start_frame"]), int(q["action_end_frame"])) != (a, b):
            problems.append({"qa_id": qid, "problem": f"action_start_frame / action_end_frame "
                             f"{q['action_start_frame']}..{q['action_end_frame']} disagree with the MM:SS window "
                             f"{a}..{b}, which is used"})
        frames = [int(i) for i in sample_indices(n)]
        inside = [a <= k <= b for k in frames]
        obj = int(q["obj_id"])
        shapes = [("png", str(vdir / "masks" / f"frame_{k:06d}.png"), obj) if ins else None
                  for k, ins in zip(frames, inside)]
        src = entry.get("source_frames")
        src_frames = [int(src[k]) if src and k < len(src) else None for k in frames]
        rel = entry.get("frame_times_s")
        times = [float(entry["start_s"]) + rel[k] if rel and k < len(rel) and "start_s" in entry else None
                 for k in frames]
        out.append(GTQuestion(
            qa_id=qid, video_id=str(entry.get("video_id") or vid), clip_id=str(entry.get("clip_id") or vid),
            q_type=str(q.get("q_type") or "unknown").lower(), question=q.get("question", ""),
            answer=q.get("answer"), target=obj, height=int(height), width=int(width), frames=frames,
            inside=inside, shapes=shapes, source_frames=src_frames, times=times, window=(a, b)))
    return out, problems


# --------------------------------------------------------------------------------------------------
# Predictions


@dataclass
class Prediction:
    """A question's predicted masks on the sampled frames: frame -> mask, or an error string (that frame counts
    as wrong). `status`: ok, missing (no entry), broken (unusable as a whole), partial (some frames wrong)."""

    kind: str | None
    masks: dict[int, np.ndarray | str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    status: str = "ok"


def _frame_key(key) -> int | None:
    m = _FRAME_NAME.match(str(key).strip())
    return int(m.group(1)) if m else None


def _png_mask(path: Path, height: int, width: int) -> np.ndarray | str:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("1", "L", "P", "I", "I;16", "F"):
                arr = np.array(img)
                m = arr != 0
            else:
                m = np.array(img.convert("RGB")).any(axis=2)
    except Exception as exc:  # PIL raises many kinds
        return f"unreadable PNG {path.name}: {type(exc).__name__}: {exc}"
    if m.shape != (height, width):
        return f"{path.name}: mask is {m.shape[1]}x{m.shape[0]}, the frame is {width}x{height}"
    return m


def _json_mask(value, height: int, width: int) -> np.ndarray | str | None:
    """None (empty) for null / [], a mask, or an error string."""
    if value is None or (isinstance(value, list) and not value):
        return None
    if isinstance(value, dict):
        if "size" not in value or "counts" not in value:
            return "RLE without 'size' and 'counts'"
        try:
            size = [int(v) for v in value["size"]]
        except (TypeError, ValueError):
            return f"bad RLE size {value['size']!r}"
        if size != [height, width]:
            return f"RLE size {size} (h, w), the frame is [{height}, {width}]"
        try:
            m = decode_rle(value)
        except Exception as exc:
            return f"undecodable RLE: {type(exc).__name__}: {exc}"
        if m.shape != (height, width):
            return f"RLE decodes to {m.shape}, the frame is ({height}, {width})"
        return m
    if isinstance(value, list) and len(value) == 4:
        try:
            box = [float(v) for v in value]
        except (TypeError, ValueError):
            return f"box with non-numbers {value!r}"
        if not all(math.isfinite(v) for v in box):
            return f"box with non-finite values {value!r}"
        if box[2] <= box[0] or box[3] <= box[1]:
            return f"box {value!r} needs x2 > x1 and y2 > y1"
        return box_mask(box, height, width)
    return f"neither an RLE object, a [x1, y1, x2, y2] box nor null: {str(value)[:60]}"


def read_prediction(pred_dir: Path, q: GTQuestion) -> Prediction:
    """The prediction for q read from pred_dir (see the module doc for the layouts)."""
    pred_dir = Path(pred_dir)
    folder, file = pred_dir / q.qa_id, pred_dir / f"{q.qa_id}.json"
    wanted = set(q.frames)
    if folder.is_dir():
        pred = Prediction("png")
        if file.exists():
            pred.problems.append(f"both {q.qa_id}/ and {q.qa_id}.json exist: the PNG folder is used")
        found: dict[int, Path] = {}
        for p in sorted(folder.iterdir()):
            k = _frame_key(p.stem) if p.suffix.lower() == ".png" else None
            if k is None:
                pred.problems.append(f"ignored {p.name} (not <frame>.png)")
                continue
            if k in found:
                pred.problems.append(f"frame {k} given twice ({found[k].name}, {p.name}): the first is used")
                continue
            found[k] = p
        for k in sorted(wanted & set(found)):
            pred.masks[k] = _png_mask(found[k], q.height, q.width)
    elif file.exists():
        try:
            doc = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            return Prediction("json", problems=[f"unreadable JSON {file.name}: {exc}"], status="broken")
        frames = doc.get("frames") if isinstance(doc, dict) else None
        if not isinstance(frames, dict):
            return Prediction("json", problems=[f"{file.name} has no \"frames\" object"], status="broken")
        pred = Prediction("json")
        seen: set[int] = set()
        for key, value in frames.items():
            k = _frame_key(key)
            if k is None:
                pred.problems.append(f"ignored frame key {key!r} (not a frame index)")
                continue
            if k in seen:
                pred.problems.append(f"frame {k} given twice: the first is used")
                continue
            seen.add(k)
            if k in wanted:
                m = _json_mask(value, q.height, q.width)
                if m is not None:
                    pred.masks[k] = m
        kinds = {type(v).__name__ for v in frames.values() if v}
        pred.kind = "boxes" if kinds == {"list"} else "rle" if kinds == {"dict"} else "json"
    else:
        return Prediction(None, problems=["no prediction (counted as J = F = 0)"], status="missing")
    bad = {k: v for k, v in pred.masks.items() if isinstance(v, str)}
    for k, msg in sorted(bad.items()):
        pred.problems.append(f"frame {k}: {msg} (counted as J = F = 0)")
    if bad:
        pred.status = "partial"
    return pred


def prediction_ids(pred_dir: Path) -> set[str]:
    """Question ids present in a prediction folder (folders and .json files, nested VID/exp_id too)."""
    pred_dir = Path(pred_dir)
    ids: set[str] = set()
    if not pred_dir.is_dir():
        return ids
    for p in pred_dir.rglob("*"):
        rel = p.relative_to(pred_dir)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        if p.is_file() and p.suffix == ".json":
            ids.add(str(rel.with_suffix("")))
        elif p.is_file() and p.suffix.lower() == ".png":
            ids.add(str(rel.parent))
    return ids


# --------------------------------------------------------------------------------------------------
# Scoring


def score_question(q: GTQuestion, pred: Prediction, bound_th: float = BOUND_TH) -> dict:
    """J and F of one question: the means over its sampled frames (0 for a missing or broken prediction)."""
    import numpy as np

    row = {"qa_id": q.qa_id, "video_id": q.video_id, "clip_id": q.clip_id, "q_type": q.q_type,
           "status": pred.status, "pred_kind": pred.kind, "problems": list(pred.problems), "frames": q.frames,
           "inside": q.inside}
    if pred.status in ("missing", "broken"):
        row.update(J=0.0, F=0.0, JF=0.0, frame_J=[0.0] * len(q.frames), frame_F=[0.0] * len(q.frames))
        return row
    cache: dict[int, tuple[float, float]] = {}
    js, fs = [], []
    for i, f in enumerate(q.frames):
        if f not in cache:
            p = pred.masks.get(f)
            if isinstance(p, str):
                cache[f] = (0.0, 0.0)
            else:
                gt = q.mask(i)
                pm = p if p is not None else np.zeros_like(gt)
                cache[f] = (jaccard(gt, pm), f_measure(gt, pm, bound_th))
        js.append(cache[f][0])
        fs.append(cache[f][1])
    j, fm = float(np.mean(js)), float(np.mean(fs))
    row.update(J=j, F=fm, JF=(j + fm) / 2, frame_J=js, frame_F=fs)
    return row


def summarize(rows: list[dict]) -> list[dict]:
    """Per q_type (the four GroundMoRe types, then any other) and overall: questions, missing, broken, and the
    means J, F and J&F = (J + F) / 2 in percent."""
    import numpy as np

    types = list(Q_TYPES) + sorted({r["q_type"] for r in rows} - set(Q_TYPES))
    out = []
    for name, group in [(t, [r for r in rows if r["q_type"] == t]) for t in types] + [("overall", rows)]:
        j = 100 * float(np.mean([r["J"] for r in group])) if group else None
        f = 100 * float(np.mean([r["F"] for r in group])) if group else None
        out.append({"q_type": name, "questions": len(group),
                    "missing": sum(r["status"] == "missing" for r in group),
                    "broken": sum(r["status"] == "broken" for r in group),
                    "partial": sum(r["status"] == "partial" for r in group),
                    "J": j, "F": f, "JF": (j + f) / 2 if group else None})
    return out


def evaluate(questions: list[GTQuestion], pred_dir: Path, bound_th: float = BOUND_TH) -> dict:
    """Score every question against pred_dir: per-question rows, the summary and the extra prediction ids."""
    rows = [score_question(q, read_prediction(pred_dir, q), bound_th) for q in questions]
    known = {q.qa_id for q in questions}
    extra = sorted(prediction_ids(pred_dir) - known)
    return {"questions": rows, "summary": summarize(rows), "extra_ids": extra}


# --------------------------------------------------------------------------------------------------
# Baseline


def largest_moving(trajectories, tracks) -> dict[str, int]:
    """clip_id -> the kept (moving) trajectory's track_id with the largest mean box area over its whole track
    (ties: the smaller track id)."""
    import polars as pl

    if trajectories is None or not len(trajectories) or tracks is None or not len(tracks):
        return {}
    moving = trajectories.filter(pl.col("kept").fill_null(False))
    if "moved" in moving.columns:
        moving = moving.filter(pl.col("moved").fill_null(True))
    areas = (tracks.join(moving.select("clip_id", "track_id"), on=["clip_id", "track_id"])
             .group_by("clip_id", "track_id")
             .agg(((pl.col("x2") - pl.col("x1")) * (pl.col("y2") - pl.col("y1"))).mean().alias("area"))
             .sort(["clip_id", "area", "track_id"], descending=[False, True, False]))
    return {r["clip_id"]: int(r["track_id"]) for r in areas.unique("clip_id", keep="first").iter_rows(named=True)}


def write_baseline(questions: list[GTQuestion], trajectories, tracks, out_dir: Path) -> dict:
    """DIR/<qa_id>.json boxes of the largest moving object of each question's clip on the question's sampled
    frames (null where that track has no box). Returns counts."""
    import polars as pl

    out_dir = Path(out_dir)
    pick = largest_moving(trajectories, tracks)
    by_clip = {k[0]: g for k, g in tracks.group_by("clip_id")} if tracks is not None and len(tracks) else {}
    paths: dict[tuple[str, int], TrackPath] = {}
    n_written = n_empty = 0
    for q in questions:
        tid = pick.get(q.clip_id)
        frames: dict[str, list | None] = {}
        if tid is not None and q.clip_id in by_clip:
            key = (q.clip_id, tid)
            if key not in paths:
                paths[key] = TrackPath(by_clip[q.clip_id].filter(pl.col("track_id") == tid))
            for f, src in zip(q.frames, q.source_frames or [None] * len(q.frames)):
                box = paths[key].box_at(src) if src is not None else None
                frames[str(f)] = [round(float(v), 2) for v in box] if box is not None else None
        else:
            n_empty += 1
        target = out_dir / f"{q.qa_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"frames": frames, "baseline": "largest-moving", "track_id": tid}))
        n_written += 1
    return {"written": n_written, "without_object": n_empty}


# --------------------------------------------------------------------------------------------------
# Results in the lake, and the inputs of the command (fm_assets.cli.eval_grounded / eval_mot)


def write_lake_grounded(result: dict, lake) -> list[str]:
    """eval_grounded/<run>.parquet (summary rows) and eval_grounded/questions/<run>.parquet."""
    from datetime import datetime

    import polars as pl

    created = datetime.fromisoformat(result["created"]).astimezone(UTC)
    meta = {"run_name": result["run_name"], "created_at": created, "gt": result["gt"]["source"],
            "split": result["gt"]["split"], "pred": result["pred"], "baseline": result["baseline"]}
    meta_schema = {"run_name": pl.String, "created_at": pl.Datetime("us", "UTC"), "gt": pl.String,
                   "split": pl.String, "pred": pl.String, "baseline": pl.String}
    summary = pl.DataFrame([{**meta, **{k: r[k] for k in ("q_type", "questions", "missing", "broken", "partial")},
                             "J": r["J"], "F": r["F"], "JF": r["JF"]} for r in result["summary"]],
                           schema={**meta_schema, "q_type": pl.String, "questions": pl.Int64, "missing": pl.Int64,
                                   "broken": pl.Int64, "partial": pl.Int64, "J": pl.Float64, "F": pl.Float64,
                                   "JF": pl.Float64})
    questions = pl.DataFrame([{**meta, "qa_id": r["qa_id"], "video_id": r["video_id"], "clip_id": r["clip_id"],
                               "q_type": r["q_type"], "status": r["status"], "pred_kind": r["pred_kind"],
                               "J": r["J"], "F": r["F"], "JF": r["JF"],
                               "problems": "; ".join(r["problems"]) or None} for r in result["questions"]],
                             schema={**meta_schema, "qa_id": pl.String, "video_id": pl.String, "clip_id": pl.String,
                                     "q_type": pl.String, "status": pl.String, "pred_kind": pl.String,
                                     "J": pl.Float64, "F": pl.Float64, "JF": pl.Float64, "problems": pl.String})
    return [lake.write_parquet(f"eval_grounded/{result['run_name']}.parquet", summary),
            lake.write_parquet(f"eval_grounded/questions/{result['run_name']}.parquet", questions)]


def load_ground_truth(args, wh) -> tuple[list[GTQuestion], list[dict], str]:
    """(questions, problems, description of the source) from --gt DIR or the lake."""
    if args.gt:
        qs, probs = export_ground_truth(Path(args.gt), args.split)
        return qs, probs, str(Path(args.gt).resolve())
    tables = set(wh.tables())
    missing = [t for t in ("qa_pairs", "raw_clips", "tracks") if t not in tables]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} in the lake yet (run `fm run PATH` or `fm demo` first, "
                                "or give --gt DIR)")
    split_of = None
    if args.split != "all":
        if "splits" not in tables:
            raise FileNotFoundError("no splits table in the lake yet (run `fm run PATH`), or use --split all")
        split_of = dict(wh.query("select video_id, split from splits").iter_rows())
    qa = wh.query("select * from qa_pairs where grounded and kept")
    clip_list = "select distinct clip_id from qa_pairs where grounded and kept"
    clips = wh.query("select * from raw_clips")
    tracks = wh.query(f"select * from tracks where clip_id in ({clip_list})")
    dets = None
    if "detections" in tables:
        dets = wh.query("select clip_id, frame_idx, x1, y1, x2, y2, mask_rle from detections "
                        f"where mask_rle is not null and clip_id in ({clip_list})")
    qs, probs = lake_ground_truth(qa, clips, tracks, dets, split_of, args.split)
    return qs, probs, "lake"


def write_tasks(questions: list[GTQuestion], path: Path, source: str) -> None:
    """What a model must predict: per question its text, clip, frame size and the 20 frames to predict."""
    space = "source video frame index" if source == "lake" else "exported frame index (images/frame_k.jpg)"
    doc = {"ground_truth": source, "frame_space": space, "questions": [
        {"qa_id": q.qa_id, "video_id": q.video_id, "clip_id": q.clip_id, "q_type": q.q_type, "question": q.question,
         "width": q.width, "height": q.height, "frames": q.frames, "source_frames": q.source_frames,
         "times_s": q.times} for q in questions]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
