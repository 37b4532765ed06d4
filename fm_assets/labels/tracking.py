"""Pure functions behind `detections` and `tracks`: frame sampling, the detector over a video's clips, the tracker
over a clip, table rows, track labels, overlays, MOT."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import polars as pl
from PIL import Image

from fm_assets.labels.ids import seed_for
from fm_assets.labels.params import check_bounds, param
from fm_assets.labels.types import Detections, TrackedBox, VideoFrame


@dataclass(frozen=True)
class DetectionParams:
    """Which frames the detector sees, and at what size."""

    sample_fps: float = param(10.0, "frames per second given to the detector (0 < fps; >= video fps = every frame)",
                              gt=0)
    max_side: int = param(1280, "frames are downscaled so that the longer side is at most this", ge=64)

    def __post_init__(self) -> None:
        check_bounds(self)


class ClipDetector(Protocol):
    """A detector (fm_resources.detection.types.Detector): one Detections per frame of one clip."""

    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...


def sample_step(video_fps: float | None, sample_fps: float | None) -> int:
    """Every k-th decoded frame is sampled: k = round(video fps / sample fps), at least 1 (None = every frame)."""
    if not sample_fps or not video_fps or video_fps <= sample_fps:
        return 1
    return max(1, int(round(video_fps / sample_fps)))


def sampled_frames(start_frame: int, end_frame: int, step: int) -> list[int]:
    return list(range(start_frame, end_frame, step))


# Hue sectors (OpenCV hue 0-179) of the colour names; brown = dark orange/red, pink = light magenta/red
_HUES = ((8, "red"), (20, "orange"), (33, "yellow"), (78, "green"), (96, "cyan"), (130, "blue"), (150, "purple"),
         (170, "magenta"), (180, "red"))


def colour_name(pixels: np.ndarray) -> str | None:
    """The dominant colour name of RGB pixels (n x 3 uint8): each pixel is named (black / white / gray by
    value and saturation, else by hue; dark orange is brown, light red or magenta pink) and the most frequent
    name wins. None for fewer than 16 pixels."""
    if len(pixels) < 16:
        return None
    hsv = cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(int)
    h, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.array([name for _, name in _HUES])[np.searchsorted([b for b, _ in _HUES], h, side="right").clip(0, len(_HUES) - 1)]
    names = np.where((names == "orange") & (val < 150), "brown", names)
    names = np.where(np.isin(names, ["red", "magenta"]) & (sat < 130) & (val > 170), "pink", names)
    grey = sat < 60
    names = np.where(grey & (val >= 190), "white", np.where(grey & (val < 190), "gray", names))
    names = np.where(val < 50, "black", names)
    values, counts = np.unique(names, return_counts=True)
    return str(values[np.argmax(counts)])


def box_colour(image: np.ndarray, box, mask_rle: dict | None = None) -> str | None:
    """colour_name of a box's pixels in an RGB image: the mask's pixels where there is a mask, else the
    central half of the box (less background)."""
    from pycocotools import mask as mask_utils

    hgt, wid = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(wid, x2), min(hgt, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    if mask_rle is not None:
        m = mask_utils.decode({"size": mask_rle["size"], "counts": mask_rle["counts"].encode("ascii")})
        if m.shape == (hgt, wid) and m[y1:y2, x1:x2].any():
            return colour_name(image[y1:y2, x1:x2][m[y1:y2, x1:x2] > 0])
    qx, qy = (x2 - x1) // 4, (y2 - y1) // 4
    return colour_name(image[y1 + qy : y2 - qy, x1 + qx : x2 - qx].reshape(-1, 3))


def detection_rows(video_id: str, clip_id: str, frame_idx: int, t_s: float, det: Detections, scale: float,
                   step: int, image: np.ndarray | None = None) -> list[dict]:
    """Rows of the detections table for one frame; boxes are scaled back to source pixels; `color` named from
    the detector's input `image` where given."""
    rows = []
    for k in range(len(det)):
        x1, y1, x2, y2 = (float(v) * scale for v in det.boxes[k])
        mask = det.masks[k] if det.masks is not None else None
        rows.append({
            "color": box_colour(image, det.boxes[k], mask) if image is not None else None,
            "video_id": video_id, "clip_id": clip_id, "frame_idx": frame_idx, "t_s": t_s, "det_idx": k,
            "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": float(det.scores[k]), "label": det.labels[k],
            "person_score": float(det.extra["person_score"][k]) if "person_score" in det.extra else None,
            "mask_rle": json.dumps(mask, separators=(",", ":")) if mask is not None else None,
            "sample_step": step,
        })
    return rows


def frame_detections(rows: pl.DataFrame) -> Detections:
    """The Detections of one frame back from its table rows (sorted by det_idx)."""
    if rows.is_empty():
        return Detections.empty()
    rows = rows.sort("det_idx")
    return Detections(rows.select("x1", "y1", "x2", "y2").to_numpy(), rows["score"].to_numpy(), rows["label"].to_list())


def track_label(labels: list[str]) -> str:
    """A track's label (or colour) is the majority of its detections' (ties broken by name, deterministically)."""
    counts = Counter(labels)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def track_rows(video_id: str, clip_id: str, frames: Sequence[tuple[int, float | None, pl.DataFrame]],
               tracked: list[list[TrackedBox]]) -> list[dict]:
    """Rows of the tracks table for one clip: frames = (frame_idx, t_s, that frame's detection rows)."""
    rows: list[dict[str, Any]] = []
    for (frame_idx, t_s, det_rows), boxes in zip(frames, tracked):
        ordered = det_rows.sort("det_idx") if not det_rows.is_empty() else None
        labels = ordered["label"].to_list() if ordered is not None else []
        det_colours = ordered["color"].to_list() if ordered is not None and "color" in ordered.columns else []
        for b in boxes:
            rows.append({
                "video_id": video_id, "clip_id": clip_id, "track_id": b.track_id, "frame_idx": frame_idx, "t_s": t_s,
                "x1": float(b.box[0]), "y1": float(b.box[1]), "x2": float(b.box[2]), "y2": float(b.box[3]),
                "score": b.score, "det_label": labels[b.det_index] if 0 <= b.det_index < len(labels) else None,
                "det_color": det_colours[b.det_index] if 0 <= b.det_index < len(det_colours) else None,
            })
    by_track: dict[int, list[str]] = {}
    colours: dict[int, list[str]] = {}
    for r in rows:
        if r["det_label"] is not None:
            by_track.setdefault(r["track_id"], []).append(r["det_label"])
        if r["det_color"] is not None:
            colours.setdefault(r["track_id"], []).append(r["det_color"])
    for r in rows:
        r["label"] = track_label(by_track.get(r["track_id"], ["object"]))
        r["color"] = track_label(colours[r["track_id"]]) if r["track_id"] in colours else None
        del r["det_label"], r["det_color"]
    return rows


def detect_video(video_id: str, frames: Iterable[VideoFrame], clips: pl.DataFrame, fps: float, detector: ClipDetector,
                 p: DetectionParams) -> tuple[list[dict], int, float]:
    """Run the detector over every kept clip's sampled frames, in one pass over the video's decoded `frames`
    (stopped after the last clip). Returns (rows, n_frames, seconds spent in the detector)."""
    step = sample_step(fps, p.sample_fps)
    wanted = {}
    for c in clips.sort("start_frame").iter_rows(named=True):
        for f in sampled_frames(c["start_frame"], c["end_frame"], step):
            wanted[f] = c["clip_id"]
    ends = {c["clip_id"]: c["end_frame"] for c in clips.iter_rows(named=True)}
    rows, n_frames, busy = [], 0, 0.0
    batch: list[tuple[int, float, np.ndarray]] = []
    current = None

    def flush():
        nonlocal busy
        if not batch:
            return
        started = time.perf_counter()
        dets = detector.detect_clip([img for _, _, img in batch])
        busy += time.perf_counter() - started
        for (idx, t, img), det in zip(batch, dets):
            rows.extend(detection_rows(video_id, current, idx, t, det, scale, step, img))
        batch.clear()

    scale = 1.0
    last = max(ends.values()) if ends else 0
    for fr in frames if wanted else ():
        if fr.idx >= last:
            break
        clip_id = wanted.get(fr.idx)
        if clip_id is None:
            continue
        if clip_id != current:
            flush()
            current = clip_id
        img = fr.rgb()
        longest = max(img.shape[:2])
        scale = max(1.0, longest / p.max_side)
        if scale > 1.0:
            img = cv2.resize(img, (round(img.shape[1] / scale), round(img.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        batch.append((fr.idx, fr.t_s, img))
        n_frames += 1
    flush()
    return rows, n_frames, busy


def clip_track_rows(video_id: str, clip: dict, dets: pl.DataFrame,
                    track_clip: Callable[[list[Detections]], list[list[TrackedBox]]]) -> tuple[list[dict], int]:
    """Rows of the tracks table for one clip: every sampled frame of the clip (with or without boxes) goes to
    `track_clip` (a fresh tracker over the clip's Detections, e.g. TrackerResource.track_clip) in time order.
    Returns (rows, frames fed to the tracker); a clip without detections has no tracks."""
    if dets.is_empty():
        return [], 0
    step = int(dets["sample_step"][0])
    by_frame = dets.partition_by("frame_idx", as_dict=True)
    frames = []
    for f in sampled_frames(clip["start_frame"], clip["end_frame"], step):
        fr = by_frame.get((f,), dets.clear())
        frames.append((f, float(fr["t_s"][0]) if len(fr) else None, fr))
    tracked = track_clip([frame_detections(fr) for _, _, fr in frames])
    return track_rows(video_id, clip["clip_id"], frames, tracked), len(frames)


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id * 7919)
    h = int(rng.integers(0, 180))
    hsv = np.array([[[h, 220, 255]]], dtype=np.uint8)
    r, g, b = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return r, g, b


def draw_tracks(image: np.ndarray, tracks: pl.DataFrame, at_frame: int | None = None, width: int = 960) -> bytes:
    """PNG of the tracks over an RGB keyframe: each track's centre path, and its box + id + label at the
    keyframe (or at its last observation before it)."""
    img = image.copy()
    scale = 1.0
    if img.shape[1] > width:
        scale = width / img.shape[1]
        img = cv2.resize(img, (width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    thick = max(1, round(img.shape[1] / 480))
    for (clip_id, track_id), t in tracks.sort("frame_idx").group_by(["clip_id", "track_id"], maintain_order=True):
        colour = _colour(seed_for(clip_id, track_id) % 100000)
        cx = ((t["x1"] + t["x2"]) / 2 * scale).to_numpy()
        cy = ((t["y1"] + t["y2"]) / 2 * scale).to_numpy()
        pts = np.stack([cx, cy], axis=1).round().astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, thick, cv2.LINE_AA)
        shown = t.filter(pl.col("frame_idx") <= at_frame) if at_frame is not None else t
        row = (shown if not shown.is_empty() else t).row(-1, named=True)
        p1 = (int(row["x1"] * scale), int(row["y1"] * scale))
        p2 = (int(row["x2"] * scale), int(row["y2"] * scale))
        cv2.rectangle(img, p1, p2, colour, thick)
        cv2.putText(img, f"{track_id} {row['label']}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thick, colour, thick, cv2.LINE_AA)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def mot_text(tracks: pl.DataFrame, interpolate: bool = True) -> str:
    """MOTChallenge lines `frame,id,x,y,w,h,score,-1,-1,-1` for ONE video: frames 1-based over the source
    video's decoded frames; ids renumbered 1.. over (clip, track); with `interpolate`, boxes are linearly
    interpolated over the frames skipped by sampling between two observations of a track."""
    if tracks.is_empty():
        return ""
    t = tracks.sort("clip_id", "track_id", "frame_idx")
    keys = t.select("clip_id", "track_id").unique(maintain_order=True)
    ids = {(c, k): i + 1 for i, (c, k) in enumerate(keys.iter_rows())}
    lines: list[tuple[int, int, float, float, float, float, float]] = []
    for (clip_id, track_id), g in t.group_by(["clip_id", "track_id"], maintain_order=True):
        gid = ids[(clip_id, track_id)]
        f = g["frame_idx"].to_numpy()
        b = g.select("x1", "y1", "x2", "y2").to_numpy()
        s = g["score"].to_numpy()
        for i in range(len(f)):
            lines.append((int(f[i]) + 1, gid, *b[i], float(s[i])))
            if interpolate and i + 1 < len(f) and f[i + 1] - f[i] > 1:
                for fr in range(int(f[i]) + 1, int(f[i + 1])):
                    w = (fr - f[i]) / (f[i + 1] - f[i])
                    lines.append((fr + 1, gid, *((1 - w) * b[i] + w * b[i + 1]), float(min(s[i], s[i + 1]))))
    lines.sort(key=lambda r: (r[0], r[1]))
    return "".join(
        f"{fr},{i},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{sc:.4f},-1,-1,-1\n" for fr, i, x1, y1, x2, y2, sc in lines
    )
