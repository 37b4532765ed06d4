"""LLaMA-Factory: ShareGPT video datasets of the multiple-choice and the grounded questions (see common.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from fm_assets.export.common import (
    Out,
    Source,
    clean_text,
    cut_videos,
    kept_clips,
    kept_questions,
    per_clip_counts,
    plan_clips,
    split_map,
    track_boxes,
    write_manifest,
)
from fm_assets.labels.splits import SPLIT_NAMES

MCQ_SUFFIX = "Answer with the option's letter."


GROUNDED_SUFFIX = ("Answer with the object, the time span of the motion asked about (seconds from the start of the "
                   "video) and the object's boxes in that span (normalised [x1, y1, x2, y2], every 0.5 s) as JSON.")


LLAMAFACTORY_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


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


def mcq_prompt(q: dict) -> str:
    options = "\n".join(f"{L}. {clean_text(q['option_' + L.lower()])}" for L in "ABCD")
    return f"<video>{clean_text(q['question'])}\n{options}\n{MCQ_SUFFIX}"


def grounded_prompt(q: dict) -> str:
    return f"<video>{clean_text(q['question'])}\n{GROUNDED_SUFFIX}"


def grounded_answer(q: dict, clip: dict, boxes: pl.DataFrame) -> str:
    t0, t1 = float(q["action_start_s"]), float(q["action_end_s"])
    return json.dumps({"object": clean_text(q["answer_text"]), "start_s": round(t0 - clip["start_s"], 2),
                       "end_s": round(t1 - clip["start_s"], 2), "boxes": _sampled_boxes(boxes, t0, t1, clip)},
                      ensure_ascii=False)


def _dataset_entry(file_name: str) -> dict:
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"}, "tags": dict(LLAMAFACTORY_TAGS)}


def export_llamafactory(qa_pairs: pl.DataFrame, raw_clips: pl.DataFrame, tracks: pl.DataFrame,
                        splits: pl.DataFrame | None, source: Source, out: Path, prefix: str = "fm") -> dict:
    """LLaMA-Factory sharegpt video datasets per split + dataset_info.json + the clips (see the module doc)."""
    split_of = split_map(splits)
    w = Out(out)
    qa, n_rejected = kept_questions(qa_pairs)
    n_q = per_clip_counts(qa)
    clips = kept_clips(raw_clips)
    skipped: list[dict] = []
    plan = plan_clips(sorted(n_q), clips, split_of, n_q, skipped)
    written: dict[str, dict] = {}
    for clip, cut in cut_videos(plan, source, n_q, skipped):
        key = f"videos/{clip['clip_id']}.mp4"
        w.bytes(key, cut.data, kind="video", clip_id=clip["clip_id"], frames=cut.n_frames)
        written[clip["clip_id"]] = {**clip, "video": key}

    records: dict[str, list[dict]] = {f"{prefix}_{kind}_{s}": [] for kind in ("motion", "grounded") for s in SPLIT_NAMES}
    for q in qa.filter(pl.col("clip_id").is_in(list(written))).sort("video_id", "clip_id", maintain_order=True).iter_rows(named=True):
        clip = written[q["clip_id"]]
        if q["grounded"]:
            boxes = track_boxes(tracks, q["clip_id"], q["target_track_id"])
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
