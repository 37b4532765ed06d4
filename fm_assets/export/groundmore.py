"""GroundMoRe's layout: questions JSON and per-clip frames with palette masks, as its evaluator reads them (see
common.py)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import polars as pl

from fm_assets.export.common import (
    SPLIT_NAMES,
    ExportError,
    Out,
    Source,
    frame_window,
    kept_clips,
    kept_questions,
    per_clip_counts,
    plan_clips,
    reason,
    split_map,
    write_manifest,
)
from fm_assets.labels.masks import TrackPath, shape_mask

GROUNDMORE_TYPES = {"causal": "Causal", "sequential": "Sequential", "counterfactual": "Counterfactual",
                    "descriptive": "Descriptive"}



def davis_palette() -> list[int]:
    """The DAVIS / GroundMoRe colour map (index 0 black), 256 RGB triples flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal



def palette_png(ids: np.ndarray) -> bytes:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(ids.astype(np.uint8)))
    img.putpalette(davis_palette())
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()



def _paint(paths: dict[int, TrackPath], f: int, height: int, width: int) -> tuple[np.ndarray, dict[int, str]]:
    """The palette image of frame f (pixel = track id, 0 background; smaller objects over larger ones) and the
    kind of shape each present track got ('mask' or 'box'). Each track's shape on f is eval_grounded's lake ground
    truth (TrackPath.shape_at, shape_mask), so `fm eval grounded` scores the same object either way."""
    canvas = np.zeros((height, width), np.uint8)
    present = []
    for tid, path in paths.items():
        shape = path.shape_at(f)
        if shape is not None:
            box = shape[3] if shape[0] == "rle" else shape[1]
            present.append(((box[2] - box[0]) * (box[3] - box[1]), tid, shape))
    kinds = {}
    for _, tid, shape in sorted(present, key=lambda p: (-p[0], p[1])):
        m = shape_mask(shape, height, width)
        if m.any():
            canvas[m] = tid
            kinds[tid] = "mask" if shape[0] == "rle" else "box"
    return canvas, kinds



def _time_str(seconds: int) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"



def groundmore_vid(clip: dict) -> str:
    """`<clip_id>_MMSS_MMSS`: GroundMoRe's video keys end with the clip's start and end (whole seconds)."""
    a, b = int(math.floor(clip["start_s"])), int(math.ceil(clip["end_s"]))
    return f"{clip['clip_id']}_{a // 60:02d}{a % 60:02d}_{b // 60:02d}{b % 60:02d}"



def _kind(kinds: list[str]) -> str:
    s = set(kinds)
    return "mixed" if len(s) > 1 else (s.pop() if s else "box")



def export_groundmore(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, tracks: pl.DataFrame,
                      detections: pl.DataFrame | None, splits: pl.DataFrame | None, source: Source, out: Path,
                      fps: float = 6.0, jpeg_quality: int = 90) -> dict:
    """GroundMoRe annotation JSON per split, frames and palette masks per clip (see the module doc)."""
    split_of = split_map(splits)
    if fps <= 0:
        raise ExportError(f"--fps must be positive, got {fps}")
    w = Out(out)
    qa, n_rejected = kept_questions(qa_pairs)
    g = qa.filter(pl.col("grounded").fill_null(False))
    n_q = per_clip_counts(g)
    clips = kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = plan_clips(sorted(n_q), clips, split_of, n_q, skipped)
    dets = detections.filter(pl.col("mask_rle").is_not_null()) if detections is not None and len(detections) \
        else pl.DataFrame(schema={"clip_id": pl.String, "frame_idx": pl.Int32, "x1": pl.Float32, "y1": pl.Float32,
                                  "x2": pl.Float32, "y2": pl.Float32, "mask_rle": pl.String})
    meta: dict[str, dict] = {s: {} for s in SPLIT_NAMES}
    all_kinds: list[str] = []
    counts = {"clips": 0, "frames": 0, "questions": 0}
    for vid, vclips in plan.items():
        done: set[int] = set()
        try:
            for k, picked in _iter_sampled(source(vid), vclips, fps, jpeg_quality):
                done.add(k)
                clip = vclips[k]
                skip = _groundmore_clip(w, clip, picked, g.filter(pl.col("clip_id") == clip["clip_id"]),
                                        tracks.filter(pl.col("clip_id") == clip["clip_id"]),
                                        dets.filter(pl.col("clip_id") == clip["clip_id"]), fps, meta, all_kinds, counts)
                skipped += [{"clip_id": clip["clip_id"], "video_id": vid, **s} for s in skip]
        except Exception as exc:  # the source is gone or broken: its remaining clips are skipped, not the export
            for k, c in enumerate(vclips):
                if k not in done:
                    skipped.append({"clip_id": c["clip_id"], "video_id": vid, "reason": reason(exc),
                                    "questions": n_q.get(c["clip_id"], 0)})
    for split, videos in meta.items():
        if videos:
            w.json(f"groundmore_{split}.json", {"videos": videos}, kind="annotations", videos=len(videos),
                   questions=sum(len(v["questions"]) for v in videos.values()))
    counts["rejected_not_exported"] = n_rejected
    counts["questions_skipped"] = sum(s["questions"] for s in skipped)
    return write_manifest(out, "groundmore", w.files, counts=counts, skipped=skipped, fps=fps,
                          mask_kind=_kind(all_kinds), splits={s: len(v) for s, v in meta.items()},
                          scorer_rule="frame k of question q: (masks/frame_k.png == obj_id) if action_start_frame <= k "
                                      "<= action_end_frame else empty")



def _groundmore_clip(w: Out, clip: dict, picked: list[tuple], questions_df: pl.DataFrame, ctracks: pl.DataFrame,
                     cdets: pl.DataFrame, fps: float, meta: dict, all_kinds: list[str], counts: dict) -> list[dict]:
    """Write one clip's frames, masks and annotation entry; returns what was skipped (clip or questions)."""
    cid = clip["clip_id"]
    if not picked:
        return [{"questions": len(questions_df),
                 "reason": f"no frame of the source in [{clip['start_s']:.3f}, {clip['end_s']:.3f}) s"}]
    if len(ctracks) and int(ctracks["track_id"].max()) > 255:
        return [{"questions": len(questions_df), "reason": "more than 255 track ids: palette masks hold ids 1-255"}]
    shapes = {int(t): TrackPath(ctracks.filter(pl.col("track_id") == t), cdets)
              for t in sorted(ctracks["track_id"].unique().to_list())}
    key = groundmore_vid(clip)
    height, width = picked[0][3]
    kinds_per_frame = []
    for k, (idx, _t, image, _size) in enumerate(picked):
        ids, kinds = _paint(shapes, idx, height, width)
        w.bytes(f"groundmore_videos/{key}/images/frame_{k:06d}.jpg", image, kind="image", clip_id=cid)
        w.bytes(f"groundmore_videos/{key}/masks/frame_{k:06d}.png", palette_png(ids), kind="mask", clip_id=cid)
        kinds_per_frame.append(kinds)
    times = [t for _, t, _, _ in picked]
    skipped, questions = [], {}
    for q in questions_df.iter_rows(named=True):
        if q["target_track_id"] is None or q["action_start_s"] is None or q["action_end_s"] is None:
            skipped.append({"qa_id": q["qa_id"], "questions": 1, "reason": "grounded question without object or window"})
            continue
        tid = int(q["target_track_id"])
        t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
        f0, f1 = frame_window(times, t0, t1)
        obj_kinds = [kinds_per_frame[k][tid] for k in range(f0, f1 + 1) if tid in kinds_per_frame[k]] \
            if f0 is not None else []
        if not obj_kinds:
            skipped.append({"qa_id": q["qa_id"], "questions": 1,
                            "reason": "the answer object has no mask on any exported frame of its window"})
            continue
        # GroundMoRe's "MM:SS": the clip's start second (as in the key) plus the rounded offset into the clip
        s0 = int(math.floor(clip["start_s"]))
        a = s0 + int(math.floor(t0 - clip["start_s"] + 0.5))
        b = max(a + 1, s0 + int(math.floor(t1 - clip["start_s"] + 0.5)))
        mk = _kind(obj_kinds)
        all_kinds.append(mk)
        questions[q["qa_id"]] = {
            "question": q["question"], "answer": q["answer_text"], "obj_id": tid,
            "q_type": GROUNDMORE_TYPES.get(q["q_type"], q["q_type"]),
            "action_start": _time_str(a), "action_end": _time_str(b),
            "action_start_s": round(t0 - clip["start_s"], 3), "action_end_s": round(t1 - clip["start_s"], 3),
            "action_start_frame": f0, "action_end_frame": f1, "mask_kind": mk, "frames_with_object": len(obj_kinds)}
    meta[clip["split"]][key] = {
        "questions": questions, "clip_id": cid, "video_id": clip["video_id"], "start_s": clip["start_s"],
        "end_s": clip["end_s"], "fps": fps, "n_frames": len(picked), "width": width, "height": height,
        "frame_times_s": [round(t - clip["start_s"], 4) for t in times],
        "source_frames": [idx for idx, _, _, _ in picked]}
    counts["clips"] += 1
    counts["frames"] += len(picked)
    counts["questions"] += len(questions)
    return skipped



def _iter_sampled(path: Path, clips: list[dict], fps: float, quality: int):
    """Yield (index into clips, frames) as each clip completes, in one decode pass over the video; frames are
    (source frame index, time, JPEG, (height, width)) of the first frame at or after every 1/fps of the clip,
    upright."""
    from fm_assets.labels.plots import jpeg
    from fm_resources.video import decode

    out: dict[int, list] = {k: [] for k in range(len(clips))}
    nxt = {k: float(c["start_s"]) for k, c in enumerate(clips)}
    pending = sorted(out, key=lambda k: (clips[k]["end_s"], k))
    step = 1.0 / fps
    for f in decode(path, None, min(c["start_s"] for c in clips), max(c["end_s"] for c in clips)):
        while pending and clips[pending[0]]["end_s"] - 1e-9 <= f.t_s:
            k = pending.pop(0)
            yield k, out.pop(k)
        for k in out:
            c = clips[k]
            if not (c["start_s"] - 1e-9 <= f.t_s < c["end_s"] - 1e-9) or f.t_s + 1e-9 < nxt[k]:
                continue
            rgb = f.rgb()
            out[k].append((f.idx, f.t_s, jpeg(rgb, quality), rgb.shape[:2]))
            nxt[k] = c["start_s"] + (int((f.t_s - c["start_s"]) / step + 1e-9) + 1) * step
    while pending:
        k = pending.pop(0)
        yield k, out.pop(k)



def question_masks(out: Path, split: str, vid: str, exp_id: str) -> list[np.ndarray]:
    """Rebuild one question's ground-truth masks from a groundmore export, as GroundMoRe's evaluator does: the
    object's pixels of every frame's palette mask inside [action_start_frame, action_end_frame], empty outside."""
    from PIL import Image

    entry = json.loads((out / f"groundmore_{split}.json").read_text())["videos"][vid]
    q = entry["questions"][exp_id]
    masks = []
    for k in range(entry["n_frames"]):
        ids = np.array(Image.open(out / "groundmore_videos" / vid / "masks" / f"frame_{k:06d}.png"))
        inside = q["action_start_frame"] <= k <= q["action_end_frame"]
        masks.append((ids == q["obj_id"]) if inside else np.zeros_like(ids, dtype=bool))
    return masks
