"""FoundationMotion's reference layout: clips with trajectory JSON, captions and QA per split (see common.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from fm_assets.export.common import (
    Out,
    Source,
    cut_videos,
    frame_window,
    kept_clips,
    kept_questions,
    per_clip_counts,
    plan_clips,
    split_map,
    write_manifest,
)
from fm_assets.labels.splits import SPLIT_NAMES

# The reference's result key: its scripts write {f"{model}_res": ...} and its eval reads "human" or "gpt4o_mini_res"
RESULT_KEY = "gpt4o_mini_res"
CAPTIONS_DIR = "videos_captions_gpt4o_mini"  # the reference's caption folder, videos_captions_{model}, beside videos/


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


def export_fm_json(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
                   captions: pl.DataFrame, splits: pl.DataFrame | None, source: Source, out: Path) -> dict:
    """FoundationMotion's per-clip files (trajectory JSON, caption, QA) and the clip mp4, one folder per split."""
    split_of = split_map(splits)
    w = Out(out)
    qa, n_rejected = kept_questions(qa_pairs)
    n_q = per_clip_counts(qa)
    clips = kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = plan_clips(list(clips), clips, split_of, n_q, skipped)
    caption_of = {r["clip_id"]: r for r in captions.iter_rows(named=True)} if len(captions) else {}
    index: dict[str, list[dict]] = {s: [] for s in SPLIT_NAMES}
    counts = {"clips": 0, "frames": 0, "captions": 0, "mcq": 0, "grounded": 0, "objects": 0}
    for clip, cut in cut_videos(plan, source, n_q, skipped):
        cid, split = clip["clip_id"], clip["split"]
        base = f"{split}/videos/{cid}"  # the reference's {task}/videos/<name>.mp4 with <name>.json beside it
        w.bytes(f"{base}.mp4", cut.data, kind="video", clip_id=cid, frames=cut.n_frames)
        doc, keys = reference_trajectory(trajectories.filter(pl.col("clip_id") == cid), cut.times)
        w.json(f"{base}.json", doc, kind="trajectory", clip_id=cid, objects=len(keys))
        files = {"video": f"{base}.mp4", "trajectory": f"{base}.json"}
        cap = caption_of.get(cid)
        caption_meta = None
        if cap is not None and cap.get("status") == "ok" and cap.get("caption"):
            files["caption"] = f"{split}/{CAPTIONS_DIR}/{cid}.json"
            w.json(files["caption"], {RESULT_KEY: cap["caption"]}, kind="caption", clip_id=cid)
            caption_meta = {"writer": cap["writer"], "prompt_version": cap["prompt_version"],
                            "aspects": json.loads(cap["aspects"]) if cap.get("aspects") else None}
            counts["captions"] += 1
        mcq, grounded = [], []
        rel = [t - clip["start_s"] for t in cut.times]
        for q in qa.filter(pl.col("clip_id") == cid).iter_rows(named=True):
            if q["grounded"]:
                t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
                f0, f1 = frame_window(cut.times, t0, t1)
                grounded.append({"question": q["question"], "answer": q["answer_text"],
                                 "object": keys.get(q["target_track_id"]), "track_id": q["target_track_id"],
                                 "q_type": q["q_type"], "action_start_s": round(t0 - clip["start_s"], 3),
                                 "action_end_s": round(t1 - clip["start_s"], 3), "action_start_frame": f0,
                                 "action_end_frame": f1, "qa_id": q["qa_id"]})
            elif q["answer"] in ("A", "B", "C", "D"):
                mcq.append({"question": q["question"], "A": q["option_a"], "B": q["option_b"], "C": q["option_c"],
                            "D": q["option_d"], "correct_answer": q["answer"], "answer": q["answer"],
                            "category": q["category"], "qa_id": q["qa_id"], "source": q["source"],
                            "verified": q["verified"]})
        # every clip of videos/ has its QA file (an empty list when it has no question): the reference's eval
        # opens <task>/qa_shuffled/<name>.json for every <task>/videos/<name>.mp4
        files["qa"] = f"{split}/qa_shuffled/{cid}.json"
        w.json(files["qa"], {RESULT_KEY: {"questions": mcq}, "grounded": grounded, "metadata": {
            "randomized_answers": True, "correct_answer_field": "correct_answer",
            "description": "Answers are randomized. Check correct_answer field for each question.",
            "writers": sorted({q["source"] for q in mcq}),
            "grounded_times": "seconds from the clip start; frames index the clip mp4 (0-based)"}},
            kind="qa", clip_id=cid, questions=len(mcq), grounded=len(grounded))
        counts["clips"] += 1
        counts["frames"] += cut.n_frames
        counts["mcq"] += len(mcq)
        counts["grounded"] += len(grounded)
        counts["objects"] += len(keys)
        index[split].append({"clip_id": cid, "video_id": clip["video_id"], "split": split,
                             "start_s": clip["start_s"], "end_s": clip["end_s"], "start_frame": clip["start_frame"],
                             "n_frames": cut.n_frames, "fps": clip["fps"], "width": cut.width, "height": cut.height,
                             "frame_times_s": [round(t, 4) for t in rel], "caption": caption_meta, "files": files})
    for split, entries in index.items():
        if entries:
            w.json(f"{split}/clips.json", entries, kind="index", clips=len(entries))
    counts["rejected_not_exported"] = n_rejected
    counts["questions_skipped"] = sum(s["questions"] for s in skipped)
    return write_manifest(out, "fm-json", w.files, counts=counts, skipped=skipped,
                          splits={s: len(e) for s, e in index.items()})
