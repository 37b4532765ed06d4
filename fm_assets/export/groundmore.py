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
    ExportError,
    Out,
    Source,
    kept_clips,
    kept_questions,
    per_clip_counts,
    plan_clips,
    reason,
    split_map,
    write_manifest,
)
from fm_assets.labels.masks import TrackPath, shape_mask
from fm_assets.labels.splits import SPLIT_NAMES

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


def whole_seconds(clip: dict) -> tuple[int, int]:
    """The whole seconds of a clip, [ceil(start_s), floor(end_s)): what GroundMoRe's `MMSS_MMSS` key and "MM:SS"
    windows can name. The export covers exactly this span (empty for a clip that holds no whole second)."""
    a = int(math.ceil(float(clip["start_s"]) - 1e-6))
    b = int(math.floor(float(clip["end_s"]) + 1e-6))
    return a, max(a, b)


def groundmore_vid(clip: dict) -> str:
    """`<clip_id>_MMSS_MMSS`: GroundMoRe's video keys end with the exported span's start and end (whole seconds of
    the source video); its evaluator reads the start from the key's last 9 characters."""
    a, b = whole_seconds(clip)
    return f"{clip['clip_id']}_{a // 60:02d}{a % 60:02d}_{b // 60:02d}{b % 60:02d}"


def seconds_window(t0: float, t1: float, span: tuple[int, int]) -> tuple[int, int] | None:
    """A motion window [t0, t1] (seconds of the source) as GroundMoRe's whole seconds [a, b) inside the exported span:
    each end rounded to the nearest second, at least one second long; None when nothing of it is inside."""
    s0, e0 = span
    a = max(s0, int(math.floor(t0 + 0.5)))
    b = min(e0, int(math.floor(t1 + 0.5)))
    if b <= a:
        if t1 < s0 or t0 >= e0:
            return None
        b = min(e0, a + 1)
        a = b - 1
    return (a, b) if s0 <= a < b <= e0 else None


def inward_window(t0: float, t1: float, span: tuple[int, int]) -> tuple[int, int] | None:
    """The whole seconds [ceil(t0), floor(t1)) inside the motion window and the span, or None when under a second."""
    a = max(span[0], int(math.ceil(t0 - 1e-6)))
    b = min(span[1], int(math.floor(t1 + 1e-6)))
    return (a, b) if b > a else None


def evaluator_window(action_start: str, action_end: str, vid: str, fps: int = 6) -> tuple[int, int]:
    """GroundMoRe's evaluate_groundmore.py arithmetic: the inclusive frame window of a question, from its "MM:SS"
    strings and the clip start in the key's `_MMSS_MMSS` tail: (start - clip_start) * fps .. (end - clip_start) *
    fps - 1."""
    tail = vid[-9:].split("_")[0]
    clip_start = _seconds(f"{tail[:2]}:{tail[2:]}")
    return (_seconds(action_start) - clip_start) * fps, (_seconds(action_end) - clip_start) * fps - 1


def _seconds(text: str) -> int:
    """'SS', 'MM:SS' or 'HH:MM:SS' as seconds (GroundMoRe's time strings)."""
    parts = [int(x) for x in str(text).split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, sec = parts[-3:]
    return h * 3600 + m * 60 + sec


def _kind(kinds: list[str]) -> str:
    s = set(kinds)
    return "mixed" if len(s) > 1 else (s.pop() if s else "box")


def export_groundmore(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, tracks: pl.DataFrame,
                      detections: pl.DataFrame | None, splits: pl.DataFrame | None, source: Source, out: Path,
                      fps: float = 6.0, jpeg_quality: int = 90) -> dict:
    """GroundMoRe annotation JSON per split, frames and palette masks per clip (see the module doc)."""
    split_of = split_map(splits)
    if fps <= 0 or fps != int(fps):
        raise ExportError(f"--fps must be a positive whole number (GroundMoRe's evaluator uses 6), got {fps}")
    fps = int(fps)
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
    for split, videos in meta.items():  # every split's file, empty or not: the evaluator opens groundmore_test.json
        w.json(f"groundmore_{split}.json", {"videos": videos}, kind="annotations", videos=len(videos),
               questions=sum(len(v["questions"]) for v in videos.values()))
    counts["rejected_not_exported"] = n_rejected
    counts["questions_skipped"] = sum(s["questions"] for s in skipped)
    return write_manifest(out, "groundmore", w.files, counts=counts, skipped=skipped, fps=fps,
                          mask_kind=_kind(all_kinds), splits={s: len(v) for s, v in meta.items()},
                          scorer_rule="frame k of question q: (masks/frame_k.png == obj_id) if (action_start - key start) "
                                      "* fps <= k <= (action_end - key start) * fps - 1 (whole seconds, GroundMoRe's "
                                      "evaluator; = action_start_frame .. action_end_frame) else empty")


def _groundmore_clip(w: Out, clip: dict, picked: list[tuple], questions_df: pl.DataFrame, ctracks: pl.DataFrame,
                     cdets: pl.DataFrame, fps: float, meta: dict, all_kinds: list[str], counts: dict) -> list[dict]:
    """Write one clip's frames, masks and annotation entry; returns what was skipped (clip or questions)."""
    cid = clip["clip_id"]
    if not picked:
        return [{"questions": len(questions_df),
                 "reason": f"no whole second of the source with frames in [{clip['start_s']:.3f}, {clip['end_s']:.3f}) s"}]
    # palette masks hold object ids 1-255: the clip's tracks are numbered 1.. in track id order (track ids are
    # unique within the video, so they can exceed 255 in a long shot); the annotation keeps the track id too
    palette = {int(t): k + 1 for k, t in enumerate(sorted(ctracks["track_id"].unique().to_list()))}
    if len(palette) > 255:
        return [{"questions": len(questions_df), "reason": "more than 255 tracks in the clip: palette masks hold ids 1-255"}]
    shapes = {palette[t]: TrackPath(ctracks.filter(pl.col("track_id") == t), cdets) for t in palette}
    key = groundmore_vid(clip)
    height, width = picked[0][3]
    kinds_per_frame = []
    for k, (idx, _t, image, _size) in enumerate(picked):
        ids, kinds = _paint(shapes, idx, height, width)
        w.bytes(f"groundmore_videos/{key}/images/frame_{k:06d}.jpg", image, kind="image", clip_id=cid)
        w.bytes(f"groundmore_videos/{key}/masks/frame_{k:06d}.png", palette_png(ids), kind="mask", clip_id=cid)
        kinds_per_frame.append(kinds)
    times = [t for _, t, _, _ in picked]
    span = whole_seconds(clip)
    skipped, questions = [], {}
    for q in questions_df.iter_rows(named=True):
        if q["target_track_id"] is None or q["action_start_s"] is None or q["action_end_s"] is None:
            skipped.append({"qa_id": q["qa_id"], "questions": 1, "reason": "grounded question without object or window"})
            continue
        tid = palette.get(int(q["target_track_id"]), 0)
        t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
        # GroundMoRe's rule: frame k of the question is inside exactly when the evaluator's arithmetic on the
        # "MM:SS" strings says so; exported frame k is the frame on screen at span start + k / fps. The window
        # rounded to the nearest seconds, or else rounded inwards, whichever has the object on every frame
        best = None
        for secs in dict.fromkeys(w for w in (seconds_window(t0, t1, span), inward_window(t0, t1, span)) if w):
            f0, f1 = (secs[0] - span[0]) * fps, min(len(picked), (secs[1] - span[0]) * fps) - 1
            obj_kinds = [kinds_per_frame[k][tid] for k in range(f0, f1 + 1) if tid in kinds_per_frame[k]]
            if best is None or len(obj_kinds) / (f1 - f0 + 1) > len(best[3]) / (best[2] - best[1] + 1):
                best = (secs, f0, f1, obj_kinds)
        if best is None:
            skipped.append({"qa_id": q["qa_id"], "questions": 1,
                            "reason": f"the window [{t0:.2f}, {t1:.2f}] s holds no whole second of the exported span "
                                      f"[{span[0]}, {span[1]}) s"})
            continue
        secs, f0, f1, obj_kinds = best
        if not obj_kinds:
            skipped.append({"qa_id": q["qa_id"], "questions": 1,
                            "reason": "the answer object has no mask on any exported frame of its window"})
            continue
        mk = _kind(obj_kinds)
        all_kinds.append(mk)
        questions[q["qa_id"]] = {
            "question": q["question"], "answer": q["answer_text"], "obj_id": tid,
            "track_id": int(q["target_track_id"]),
            "q_type": GROUNDMORE_TYPES.get(q["q_type"], q["q_type"]),
            "action_start": _time_str(secs[0]), "action_end": _time_str(secs[1]),
            "action_start_s": round(t0 - span[0], 3), "action_end_s": round(t1 - span[0], 3),
            "action_start_frame": f0, "action_end_frame": f1, "mask_kind": mk, "frames_with_object": len(obj_kinds)}
    meta[clip["split"]][key] = {
        "questions": questions, "clip_id": cid, "video_id": clip["video_id"], "start_s": float(span[0]),
        "end_s": float(span[1]), "clip_start_s": clip["start_s"], "clip_end_s": clip["end_s"], "fps": fps,
        "n_frames": len(picked), "width": width, "height": height,
        "frame_times_s": [round(t - span[0], 4) for t in times],
        "source_frames": [idx for idx, _, _, _ in picked]}
    counts["clips"] += 1
    counts["frames"] += len(picked)
    counts["questions"] += len(questions)
    return skipped


def _iter_sampled(path: Path, clips: list[dict], fps: int, quality: int):
    """Yield (index into clips, frames) as each clip completes, in one decode pass over the video. A clip's frames
    are one per 1/fps over its whole seconds [s0, e0): frame k is the frame on screen at s0 + k / fps (the last
    decoded frame at or before that time; the first frame of the clip before its first frame), so there are exactly
    (e0 - s0) * fps of them whatever the video's frame rate. Entries: (source frame index, time, JPEG, (h, w))."""
    from fm_assets.labels.plots import jpeg
    from fm_resources.video import decode

    ticks = {}
    for k, c in enumerate(clips):
        s0, e0 = whole_seconds(c)
        ticks[k] = [s0 + i / fps for i in range((e0 - s0) * fps)]
    out: dict[int, list] = {k: [] for k in range(len(clips))}
    held: dict[int, object] = {}  # clip -> the last frame of the clip seen so far
    encoded: dict[int, tuple] = {}  # source frame index -> its entry (a frame can fill several ticks)

    def entry(f) -> tuple:
        if f.idx not in encoded:
            rgb = f.rgb()
            encoded[f.idx] = (f.idx, f.t_s, jpeg(rgb, quality), rgb.shape[:2])
            keep = {h.idx for h in held.values()} | {f.idx}  # only held frames can fill a tick again
            for idx in [i for i in encoded if i not in keep]:
                del encoded[idx]
        return encoded[f.idx]

    def fill(k: int, until: float, f) -> None:  # ticks of clip k before `until` show frame f
        todo = ticks[k]
        while len(out[k]) < len(todo) and todo[len(out[k])] < until - 1e-9:
            out[k].append(entry(f))

    pending = sorted(out, key=lambda k: (clips[k]["end_s"], k))
    for f in decode(path, None, min(c["start_s"] for c in clips), max(c["end_s"] for c in clips)):
        while pending and clips[pending[0]]["end_s"] - 1e-9 <= f.t_s:
            k = pending.pop(0)
            if k in held:
                fill(k, math.inf, held[k])
            yield k, out.pop(k)
        for k in list(out):
            c = clips[k]
            if not (c["start_s"] - 1e-9 <= f.t_s < c["end_s"] - 1e-9):
                continue
            if k in held:
                fill(k, f.t_s - 1e-6, held[k])  # ticks before this frame showed the previous one
            elif ticks[k] and f.t_s > ticks[k][0] + 1e-6:
                fill(k, f.t_s + 1e-6, f)  # the clip's first frame also stands for the ticks before it
            held[k] = f
    while pending:
        k = pending.pop(0)
        if k in held:
            fill(k, math.inf, held[k])
        yield k, out.pop(k)


def question_masks(out: Path, split: str, vid: str, exp_id: str) -> list[np.ndarray]:
    """Rebuild one question's ground-truth masks from a groundmore export, as GroundMoRe's evaluator does: the
    object's pixels of every frame's palette mask inside the window its evaluator derives from the question's "MM:SS"
    strings and the key (evaluator_window), empty outside."""
    from PIL import Image

    entry = json.loads((out / f"groundmore_{split}.json").read_text())["videos"][vid]
    q = entry["questions"][exp_id]
    first, last = evaluator_window(q["action_start"], q["action_end"], vid, int(entry["fps"]))
    masks = []
    for k in range(entry["n_frames"]):
        ids = np.array(Image.open(out / "groundmore_videos" / vid / "masks" / f"frame_{k:06d}.png"))
        inside = first <= k <= last
        masks.append((ids == q["obj_id"]) if inside else np.zeros_like(ids, dtype=bool))
    return masks
