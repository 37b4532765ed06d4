"""Exports of the label lake to other tools' formats. Each export writes its files atomically (temp file +
rename, through `Lake`), removes a previous manifest first and writes `manifest.json` last, with counts and
the size and sha256 of every file: a folder with a manifest is a complete export.

Formats (`fm export FORMAT OUT_DIR`):

mot
    One MOTChallenge text file per video (<video_id>.txt), frames 1-based over the source video's frames.

llamafactory (needs the `splits` table and the source videos)
    LLaMA-Factory's ShareGPT / OpenAI-style multimodal video format: point `dataset_dir` at OUT_DIR
    (`media_dir` defaults to it) and train on `dataset: fm_motion_train` (or `fm_motion_train,fm_grounded_train`)::

        OUT/dataset_info.json              one entry per non-empty file: formatting sharegpt, columns {messages,
                                           videos}, tags {role_tag: role, content_tag: content, user_tag: user,
                                           assistant_tag: assistant}
        OUT/fm_motion_<split>.json         kept multiple-choice questions (grounded = false)
        OUT/fm_grounded_<split>.json       kept grounded questions, answered as JSON text (see below)
        OUT/videos/<clip_id>.mp4           each referenced clip cut from its source video (H.264, yuv420p,
                                           exactly the frames with presentation time in [start_s, end_s))

    A multiple-choice record::

        {"messages": [{"role": "user", "content": "<video>QUESTION\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\n"
                                                   "Answer with the option's letter."},
                      {"role": "assistant", "content": "B"}],
         "videos": ["videos/<clip_id>.mp4"], "qa_id": "...", "category": "motion_recognition"}

    Grounded questions (GroundMoRe-style: the answer is an object over a time window) go to their own datasets,
    `fm_grounded_<split>`, so nobody trains on them by accident and anyone can mix them in: they are the only
    labels that teach *where* and *when*, and box text is how VLM fine-tuning encodes grounding (masks cannot go
    through a chat template). The assistant answers with compact JSON: the object's referring expression, the
    window in seconds from the start of the clip, and the object's tracked box every 0.5 s in that window,
    normalised [x1, y1, x2, y2] (3 decimals)::

        {"object": "the red object", "start_s": 0.5, "end_s": 6.5,
         "boxes": [{"t": 0.5, "bbox": [0.75, 0.229, 0.875, 0.354]}, ...]}

    Every record has exactly one `<video>` placeholder and one video; roles alternate user / assistant; rows
    with kept = false (rejected LLM questions) are never exported.

fm-json (needs the `splits` table and the source videos)
    FoundationMotion's reference layout (reference-pipeline.md steps 5-7), one folder per split, so the
    reference's own caption / QA scripts can run on OUT/<split>/clips (mp4 and trajectory JSON side by side)::

        OUT/<split>/clips/<clip_id>.mp4    the clip (as for llamafactory)
        OUT/<split>/clips/<clip_id>.json   {"detected_objects": {"<label>_<1000+i>": {"class_name", "class_id",
                                           "track_id", "bbox": [[x1, y1, x2, y2] | null per frame of the mp4]}}}
                                           kept tracks in track_id order, class_id indexes the sorted labels,
                                           boxes normalised to [0, 1] with 4 decimals, from the smoothed path
                                           (linear between its samples, null where the track is absent or lost for
                                           more than 0.5 s); no person / hand entries (no keypoint model here)
        OUT/<split>/captions/<clip_id>.json {"caption", "aspects", "writer", "prompt_version"} (clips whose
                                           caption failed have none)
        OUT/<split>/qa/<clip_id>.json      {"questions": [{"question", "A", "B", "C", "D", "answer",
                                           "correct_answer" (the reference's name, same letter), "category",
                                           "qa_id", "source", "verified"}],
                                           "grounded": [{"question", "answer", "object" (key in detected_objects),
                                           "track_id", "q_type", "action_start_s", "action_end_s" (seconds from the
                                           clip start), "action_start_frame", "action_end_frame" (inclusive mp4
                                           frame indices), "qa_id"}], "metadata": {...}}
        OUT/<split>/clips.json             index: one entry per clip (ids, source times and frames, files)

groundmore (needs the `splits` table and the source videos)
    GroundMoRe's layout, as its evaluator (evaluate_groundmore.py) reads it: run that from OUT_DIR with
    video_root "./groundmore_videos/" and meta_file "groundmore_<split>.json"::

        OUT/groundmore_<split>.json        {"videos": {VID: {"questions": {qa_id: {"question", "answer",
                                           "obj_id", "q_type", "action_start", "action_end", ...}}, ...}}}
        OUT/groundmore_videos/VID/images/frame_000000.jpg   frames of the clip at `fps` (default 6, GroundMoRe's)
        OUT/groundmore_videos/VID/masks/frame_000000.png    palette PNG (mode "P") per frame: pixel = obj_id

    VID is `<clip_id>_MMSS_MMSS` (GroundMoRe keys end with the clip's start and end in the source video, which
    its evaluator parses). `answer` is the object's referring expression, `obj_id` its track id, `q_type`
    Causal / Sequential / Counterfactual / Descriptive. `action_start` / `action_end` are GroundMoRe's "MM:SS"
    strings (whole seconds; the clip's start second plus the rounded offset into the clip, so the evaluator's
    `(action - clip_start) * fps` lands on the right frame to within 0.5 s); the exact window is in
    `action_start_s` / `action_end_s` (seconds from the clip start) and `action_start_frame` /
    `action_end_frame` (inclusive indices of the exported frames), which a scorer should use.

    One mask file per frame holds ALL objects of the clip (every tracked object, pixel value = its track id,
    smaller boxes painted over larger ones). The ground truth of a question is rebuilt from it and the
    question's window, exactly as GroundMoRe's evaluator does: frame k's mask is (png_k == obj_id) when
    action_start_frame <= k <= action_end_frame and EMPTY otherwise (`question_masks` does this). Masks come
    from the detector's instance masks (`detections.mask_rle`, decoded with pycocotools, the detection matched
    to the track box by IoU) where there are some, else the track's box filled; `mask_kind` ("mask", "box" or
    "mixed") says which, per question and in the manifest. Between the tracker's sampled frames the box is
    interpolated linearly (any gap, as for MOT) and the mask of the nearest sampled frame is moved by the change
    of the box centre: the same shapes as `fm eval grounded`'s ground truth from the lake.

A clip whose source video cannot be read any more (moved, deleted, changed since labeling) is not exported:
it is listed under `skipped` in the manifest with the reason (and how many questions it held); the rest of the
export is written. Videos without a split (new since `splits` was materialized) are skipped the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from fm_assets.eval_grounded import TrackPath, shape_mask
from fm_assets.tracking import mot_text
from fm_resources.lake import Lake

SPLIT_NAMES = ("train", "val", "test")
VIDEO_TOKENS = ("<video>", "<image>", "<audio>")  # LLaMA-Factory's placeholders; never inside question text
MCQ_SUFFIX = "Answer with the option's letter."
GROUNDED_SUFFIX = ("Answer with the object, the time span of the motion asked about (seconds from the start of the "
                   "video) and the object's boxes in that span (normalised [x1, y1, x2, y2], every 0.5 s) as JSON.")
LLAMAFACTORY_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
GROUNDMORE_TYPES = {"causal": "Causal", "sequential": "Sequential", "counterfactual": "Counterfactual",
                    "descriptive": "Descriptive"}

Source = Callable[[str], Path]  # video_id -> local path of its source video (raises when it cannot be had)


class ExportError(Exception):
    """The lake lacks what an export needs (the message says what to run)."""


def write_manifest(out: Path, fmt: str, files: list[dict], **extra) -> dict:
    manifest = {"format": fmt, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "n_files": len(files), "bytes": sum(int(f.get("bytes") or 0) for f in files), "files": files,
                **extra}
    Lake(root=str(out)).write_json("manifest.json", manifest)
    return manifest


def export_mot(tracks: pl.DataFrame, video_ids: list[str], out: Path, interpolate: bool = True) -> dict:
    """One MOTChallenge text file per video (<video_id>.txt), frames 1-based over the source video's frames."""
    out.mkdir(parents=True, exist_ok=True)
    lake = Lake(root=str(out))
    files = []
    for vid in sorted(video_ids):
        text = mot_text(tracks.filter(pl.col("video_id") == vid), interpolate=interpolate)
        data = text.encode()
        lake.write_bytes(f"{vid}.txt", data)
        files.append({"path": f"{vid}.txt", "video_id": vid, "lines": text.count("\n"),
                      "ids": len({line.split(",")[1] for line in text.splitlines()}),
                      "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return write_manifest(out, "mot", files, interpolated=interpolate)


def manifest_summary(manifest: dict) -> str:
    return json.dumps({k: v for k, v in manifest.items() if k not in ("files", "skipped")})


# --------------------------------------------------------------------------------------------------
# Plumbing shared by the dataset exports


class _Out:
    """Writes files under OUT atomically and records path, size and sha256 of each for the manifest."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.root = out
        self.lake = Lake(root=str(out))
        self.lake.delete("manifest.json")  # an old manifest must not vouch for a half-written export
        self.files: list[dict] = []

    def bytes(self, key: str, data: bytes, **meta) -> None:
        self.lake.write_bytes(key, data)
        self.files.append({"path": key, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **meta})

    def json(self, key: str, obj, **meta) -> None:
        self.bytes(key, json.dumps(obj, indent=1, ensure_ascii=False).encode(), **meta)


def lake_sources(lake: Lake, store) -> Source:
    """video_id -> local path of its source video (from the lake's registry, fetched through the video store),
    checked against the sha256 recorded when it was labeled. Failures raise with a readable reason."""
    from fm_assets.partitions import lookup_video
    from fm_resources.video import VideoError, sha256_file

    cache: dict[str, Path | Exception] = {}

    def resolve(video_id: str) -> Path:
        if video_id not in cache:
            try:
                reg = lookup_video(video_id, lake)
                try:
                    path = store.fetch(reg["uri"])
                except Exception as exc:  # S3: gone, no access, ...
                    raise VideoError(f"source video cannot be fetched: {reg['uri']} ({exc})") from exc
                if not path.is_file():
                    raise VideoError(f"source video not found: {reg['uri']} (moved or deleted since labeling)")
                if reg.get("sha256") and sha256_file(path) != reg["sha256"]:
                    raise VideoError(f"source video changed since labeling (sha256 differs): {reg['uri']}")
                cache[video_id] = path
            except Exception as exc:
                cache[video_id] = exc
        hit = cache[video_id]
        if isinstance(hit, Exception):
            raise hit
        return hit

    return resolve


def split_map(splits: pl.DataFrame | None) -> dict[str, str]:
    """video_id -> split from the `splits` table; an absent table is an ExportError (never invent splits)."""
    if splits is None or "split" not in splits.columns:
        raise ExportError("no splits in the lake yet: train / val / test come from the `splits` asset; "
                          "run `fm run PATH` first (it materializes the splits after the videos)")
    return {r["video_id"]: r["split"] for r in splits.select("video_id", "split").iter_rows(named=True)}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in ("VideoError", "ExportError") else f"{type(exc).__name__}: {text}"


def _clean(text: str | None) -> str:
    out = str(text or "")
    for tok in VIDEO_TOKENS:
        out = out.replace(tok, tok.strip("<>"))
    return out.strip()


def _kept_clips(raw_clips: pl.DataFrame) -> dict[str, dict]:
    return {c["clip_id"]: c for c in raw_clips.filter(pl.col("kept")).sort("video_id", "start_frame").iter_rows(named=True)}


def _plan(clip_ids: list[str], clips: dict[str, dict], splits: dict[str, str], n_questions: dict[str, int],
          skipped: list[dict]) -> dict[str, list[dict]]:
    """Clips to export grouped by video (in a known split); the others go to `skipped` with the reason."""
    by_video: dict[str, list[dict]] = {}
    for cid in clip_ids:
        clip = clips.get(cid)
        if clip is None:
            skipped.append({"clip_id": cid, "video_id": None, "reason": "clip not in raw_clips (or not kept)",
                            "questions": n_questions.get(cid, 0)})
            continue
        split = splits.get(clip["video_id"])
        if split not in SPLIT_NAMES:
            why = "video not in the splits table (run `fm run` to update the splits)" if split is None \
                else f"unknown split {split!r}"
            skipped.append({"clip_id": cid, "video_id": clip["video_id"], "reason": why,
                            "questions": n_questions.get(cid, 0)})
            continue
        by_video.setdefault(clip["video_id"], []).append({**clip, "split": split})
    return {v: sorted(cs, key=lambda c: c["start_frame"]) for v, cs in sorted(by_video.items())}


def _cut_videos(plan: dict[str, list[dict]], source: Source, n_questions: dict[str, int], skipped: list[dict]):
    """Yield (clip, ClipCut) for every planned clip whose source can be cut (one decode pass per video)."""
    from fm_resources.video import iter_cut_clips

    for vid, clips in plan.items():
        done: set[int] = set()
        try:
            for k, cut in iter_cut_clips(source(vid), [(c["start_s"], c["end_s"]) for c in clips]):
                done.add(k)
                c = clips[k]
                if cut.n_frames == 0:
                    skipped.append({"clip_id": c["clip_id"], "video_id": vid, "questions": n_questions.get(c["clip_id"], 0),
                                    "reason": f"no frame of the source in [{c['start_s']:.3f}, {c['end_s']:.3f}) s"})
                    continue
                yield c, cut
        except Exception as exc:  # the source is gone or broken: its remaining clips are skipped, not the export
            for k, c in enumerate(clips):
                if k not in done:
                    skipped.append({"clip_id": c["clip_id"], "video_id": vid, "reason": _reason(exc),
                                    "questions": n_questions.get(c["clip_id"], 0)})


def _questions(qa_pairs: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Kept questions (never the rejected LLM ones) in table order, and how many were rejected."""
    kept = qa_pairs.filter(pl.col("kept").fill_null(False))
    return kept, len(qa_pairs) - len(kept)


def _per_clip_counts(qa: pl.DataFrame) -> dict[str, int]:
    return dict(qa.group_by("clip_id").len().iter_rows()) if len(qa) else {}


def _track_boxes(tracks: pl.DataFrame, clip_id: str, track_id: int) -> pl.DataFrame:
    return tracks.filter((pl.col("clip_id") == clip_id) & (pl.col("track_id") == track_id)).sort("t_s")


def _sampled_boxes(boxes: pl.DataFrame, t0: float, t1: float, clip: dict, every_s: float = 0.5) -> list[dict]:
    """The track's box at the first sample at or after every `every_s` of [t0, t1], normalised to [0, 1],
    with times from the clip start."""
    w, h = float(clip["width"]), float(clip["height"])
    out, next_t = [], t0
    for r in boxes.filter((pl.col("t_s") >= t0 - 1e-6) & (pl.col("t_s") <= t1 + 1e-6)).iter_rows(named=True):
        if r["t_s"] + 1e-6 < next_t:
            continue
        box = [r["x1"] / w, r["y1"] / h, r["x2"] / w, r["y2"] / h]
        out.append({"t": round(r["t_s"] - clip["start_s"], 2), "bbox": [round(min(1.0, max(0.0, v)), 3) for v in box]})
        next_t += every_s * max(1, int((r["t_s"] - next_t) // every_s) + 1)
    return out


# --------------------------------------------------------------------------------------------------
# llamafactory


def mcq_prompt(q: dict) -> str:
    options = "\n".join(f"{L}. {_clean(q['option_' + L.lower()])}" for L in "ABCD")
    return f"<video>{_clean(q['question'])}\n{options}\n{MCQ_SUFFIX}"


def grounded_prompt(q: dict) -> str:
    return f"<video>{_clean(q['question'])}\n{GROUNDED_SUFFIX}"


def grounded_answer(q: dict, clip: dict, boxes: pl.DataFrame) -> str:
    t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
    return json.dumps({"object": _clean(q["answer_text"]), "start_s": round(t0 - clip["start_s"], 2),
                       "end_s": round(t1 - clip["start_s"], 2), "boxes": _sampled_boxes(boxes, t0, t1, clip)},
                      ensure_ascii=False)


def _dataset_entry(file_name: str) -> dict:
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"}, "tags": dict(LLAMAFACTORY_TAGS)}


def export_llamafactory(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, tracks: pl.DataFrame,
                        splits: pl.DataFrame | None, source: Source, out: Path, prefix: str = "fm") -> dict:
    """LLaMA-Factory sharegpt video datasets per split + dataset_info.json + the clips (see the module doc)."""
    split_of = split_map(splits)
    w = _Out(out)
    qa, n_rejected = _questions(qa_pairs)
    n_q = _per_clip_counts(qa)
    clips = _kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = _plan(sorted(n_q), clips, split_of, n_q, skipped)
    written: dict[str, dict] = {}
    for clip, cut in _cut_videos(plan, source, n_q, skipped):
        key = f"videos/{clip['clip_id']}.mp4"
        w.bytes(key, cut.data, kind="video", clip_id=clip["clip_id"], frames=cut.n_frames)
        written[clip["clip_id"]] = {**clip, "video": key}

    records: dict[str, list[dict]] = {f"{prefix}_{kind}_{s}": [] for kind in ("motion", "grounded") for s in SPLIT_NAMES}
    for q in qa.filter(pl.col("clip_id").is_in(list(written))).sort("video_id", "clip_id", maintain_order=True).iter_rows(named=True):
        clip = written[q["clip_id"]]
        if q["grounded"]:
            boxes = _track_boxes(tracks, q["clip_id"], q["target_track_id"])
            rec = {"messages": [{"role": "user", "content": grounded_prompt(q)},
                                {"role": "assistant", "content": grounded_answer(q, clip, boxes)}],
                   "videos": [clip["video"]], "qa_id": q["qa_id"], "q_type": q["q_type"]}
            records[f"{prefix}_grounded_{clip['split']}"].append(rec)
        elif q["answer"] in ("A", "B", "C", "D"):
            rec = {"messages": [{"role": "user", "content": mcq_prompt(q)},
                                {"role": "assistant", "content": q["answer"]}],
                   "videos": [clip["video"]], "qa_id": q["qa_id"], "category": q["category"]}
            records[f"{prefix}_motion_{clip['split']}"].append(rec)

    info = {}
    for name, recs in records.items():
        if recs:
            w.json(f"{name}.json", recs, kind="dataset", records=len(recs))
            info[name] = _dataset_entry(f"{name}.json")
    w.json("dataset_info.json", info, kind="dataset_info")
    counts = {"records": {n: len(r) for n, r in records.items()}, "videos": len(written),
              "mcq": sum(len(r) for n, r in records.items() if "_motion_" in n),
              "grounded": sum(len(r) for n, r in records.items() if "_grounded_" in n),
              "rejected_not_exported": n_rejected,
              "questions_skipped": sum(s["questions"] for s in skipped)}
    return write_manifest(out, "llamafactory", w.files, counts=counts, datasets=sorted(info), skipped=skipped,
                          dataset_dir=".", grounded_as=f"separate datasets {prefix}_grounded_<split>: the assistant "
                          "answers the object, its time span and boxes as JSON text")


# --------------------------------------------------------------------------------------------------
# fm-json (FoundationMotion's reference layout)


def _frame_boxes(path: list[dict], times: list[float], decimals: int = 4, max_gap_s: float = 0.5) -> list:
    """Normalised [x1, y1, x2, y2] of a smoothed path at each time: the path point within 1 ms, else linear
    between the two neighbouring points when they are at most `max_gap_s` apart, else None."""
    pts = sorted(path, key=lambda p: p["t"])
    pt = np.array([p["t"] for p in pts], float)
    vals = np.array([[p["ncx"], p["ncy"], p["nw"], p["nh"]] for p in pts], float).reshape(len(pts), 4)
    out: list = []
    for t in times:
        if not len(pt) or t < pt[0] - 1e-3 or t > pt[-1] + 1e-3:
            out.append(None)
            continue
        k = int(np.searchsorted(pt, t))
        if k < len(pt) and abs(pt[k] - t) <= 1e-3:
            v = vals[k]
        elif k > 0 and abs(pt[k - 1] - t) <= 1e-3:
            v = vals[k - 1]
        elif 0 < k < len(pt) and pt[k] - pt[k - 1] <= max_gap_s:
            a = (t - pt[k - 1]) / (pt[k] - pt[k - 1])
            v = (1 - a) * vals[k - 1] + a * vals[k]
        else:
            out.append(None)
            continue
        cx, cy, bw, bh = v
        box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
        out.append([round(min(1.0, max(0.0, float(x))), decimals) for x in box])
    return out


def reference_trajectory(traj: pl.DataFrame, frame_times: list[float], decimals: int = 4) -> tuple[dict, dict]:
    """The reference's trajectory JSON of one clip with one bbox entry per frame time, and track_id -> object key.
    Numbering and classes as `motion_facts.trajectory_json` (kept tracks in track_id order)."""
    kept = traj.filter(pl.col("kept")) if "kept" in traj.columns else traj
    recs = kept.sort("track_id").to_dicts()
    classes = sorted({r["label"] for r in recs})
    objects, keys = {}, {}
    for i, r in enumerate(recs):
        key = f"{r['label']}_{1000 + i}"
        keys[int(r["track_id"])] = key
        objects[key] = {"class_name": r["label"], "class_id": classes.index(r["label"]), "track_id": int(r["track_id"]),
                        "bbox": _frame_boxes(r["path"] or [], frame_times, decimals)}
    return {"detected_objects": objects}, keys


def _frame_window(times: list[float], t0: float, t1: float) -> tuple[int | None, int | None]:
    inside = [k for k, t in enumerate(times) if t0 - 1e-6 <= t <= t1 + 1e-6]
    return (inside[0], inside[-1]) if inside else (None, None)


def export_fm_json(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
                   captions: pl.DataFrame, splits: pl.DataFrame | None, source: Source, out: Path) -> dict:
    """FoundationMotion's per-clip files (trajectory JSON, caption, QA) and the clip mp4, one folder per split."""
    split_of = split_map(splits)
    w = _Out(out)
    qa, n_rejected = _questions(qa_pairs)
    n_q = _per_clip_counts(qa)
    clips = _kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = _plan(list(clips), clips, split_of, n_q, skipped)
    caption_of = {r["clip_id"]: r for r in captions.iter_rows(named=True)} if len(captions) else {}
    index: dict[str, list[dict]] = {s: [] for s in SPLIT_NAMES}
    counts = {"clips": 0, "frames": 0, "captions": 0, "mcq": 0, "grounded": 0, "objects": 0}
    for clip, cut in _cut_videos(plan, source, n_q, skipped):
        cid, split = clip["clip_id"], clip["split"]
        base = f"{split}/clips/{cid}"
        w.bytes(f"{base}.mp4", cut.data, kind="video", clip_id=cid, frames=cut.n_frames)
        doc, keys = reference_trajectory(trajectories.filter(pl.col("clip_id") == cid), cut.times)
        w.json(f"{base}.json", doc, kind="trajectory", clip_id=cid, objects=len(keys))
        files = {"video": f"{base}.mp4", "trajectory": f"{base}.json"}
        cap = caption_of.get(cid)
        if cap is not None and cap.get("status") == "ok" and cap.get("caption"):
            files["caption"] = f"{split}/captions/{cid}.json"
            w.json(files["caption"], {"caption": cap["caption"], "aspects": json.loads(cap["aspects"]) if cap.get("aspects") else None,
                                      "writer": cap["writer"], "prompt_version": cap["prompt_version"]},
                   kind="caption", clip_id=cid)
            counts["captions"] += 1
        mcq, grounded = [], []
        rel = [t - clip["start_s"] for t in cut.times]
        for q in qa.filter(pl.col("clip_id") == cid).iter_rows(named=True):
            if q["grounded"]:
                t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
                f0, f1 = _frame_window(cut.times, t0, t1)
                grounded.append({"question": q["question"], "answer": q["answer_text"],
                                 "object": keys.get(q["target_track_id"]), "track_id": q["target_track_id"],
                                 "q_type": q["q_type"], "action_start_s": round(t0 - clip["start_s"], 3),
                                 "action_end_s": round(t1 - clip["start_s"], 3), "action_start_frame": f0,
                                 "action_end_frame": f1, "qa_id": q["qa_id"]})
            elif q["answer"] in ("A", "B", "C", "D"):
                mcq.append({"question": q["question"], "A": q["option_a"], "B": q["option_b"], "C": q["option_c"],
                            "D": q["option_d"], "answer": q["answer"], "correct_answer": q["answer"],
                            "category": q["category"], "qa_id": q["qa_id"], "source": q["source"],
                            "verified": q["verified"]})
        if mcq or grounded:
            files["qa"] = f"{split}/qa/{cid}.json"
            w.json(files["qa"], {"questions": mcq, "grounded": grounded, "metadata": {
                "randomized_answers": True, "correct_answer_field": "correct_answer",
                "times": "seconds from the clip start; frames index the clip mp4 (0-based)"}},
                kind="qa", clip_id=cid, questions=len(mcq), grounded=len(grounded))
        counts["clips"] += 1
        counts["frames"] += cut.n_frames
        counts["mcq"] += len(mcq)
        counts["grounded"] += len(grounded)
        counts["objects"] += len(keys)
        index[split].append({"clip_id": cid, "video_id": clip["video_id"], "split": split,
                             "start_s": clip["start_s"], "end_s": clip["end_s"], "start_frame": clip["start_frame"],
                             "n_frames": cut.n_frames, "fps": clip["fps"], "width": cut.width, "height": cut.height,
                             "frame_times_s": [round(t, 4) for t in rel], "files": files})
    for split, entries in index.items():
        if entries:
            w.json(f"{split}/clips.json", entries, kind="index", clips=len(entries))
    counts["rejected_not_exported"] = n_rejected
    counts["questions_skipped"] = sum(s["questions"] for s in skipped)
    return write_manifest(out, "fm-json", w.files, counts=counts, skipped=skipped,
                          splits={s: len(e) for s, e in index.items()})


# --------------------------------------------------------------------------------------------------
# groundmore


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
    w = _Out(out)
    qa, n_rejected = _questions(qa_pairs)
    g = qa.filter(pl.col("grounded").fill_null(False))
    n_q = _per_clip_counts(g)
    clips = _kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = _plan(sorted(n_q), clips, split_of, n_q, skipped)
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
                    skipped.append({"clip_id": c["clip_id"], "video_id": vid, "reason": _reason(exc),
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


def _groundmore_clip(w: _Out, clip: dict, picked: list[tuple], questions_df: pl.DataFrame, ctracks: pl.DataFrame,
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
        f0, f1 = _frame_window(times, t0, t1)
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
    from fm_resources.video import decode, jpeg

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
