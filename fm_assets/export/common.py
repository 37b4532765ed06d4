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
    FoundationMotion's reference layout (reference-pipeline.md steps 5-7; checked against the reference repository's
    eval/vila_motionbench.py and data_pipeline/2_generate_caption.py / 3_generate_QA.py), one task folder per
    split, so its eval runs with base_dir=OUT and task=<split>, and its caption / QA scripts run on
    OUT/<split>/videos (mp4 and trajectory JSON side by side)::

        OUT/<split>/videos/<clip_id>.mp4   the clip (as for llamafactory)
        OUT/<split>/videos/<clip_id>.json  {"detected_objects": {"<label>_<1000+i>": {"class_name", "class_id",
                                           "track_id", "bbox": [[x1, y1, x2, y2] | null per frame of the mp4]}}}
                                           kept tracks in track_id order, class_id indexes the sorted labels,
                                           boxes normalised to [0, 1] with 4 decimals, from the smoothed path
                                           (linear between its samples, null where the track is absent or lost for
                                           more than 0.5 s); no person / hand entries (no keypoint model here)
        OUT/<split>/qa_shuffled/<clip_id>.json
                                           {"gpt4o_mini_res": {"questions": [{"question", "A", "B", "C", "D",
                                           "correct_answer", "answer" (the same letter), "category", "qa_id",
                                           "source", "verified"}]}, "grounded": [{"question", "answer", "object"
                                           (key in detected_objects), "track_id", "q_type", "action_start_s",
                                           "action_end_s" (seconds from the clip start), "action_start_frame",
                                           "action_end_frame" (inclusive mp4 frame indices), "qa_id"}],
                                           "metadata": {...}}: one per clip of videos/, an empty list for a clip
                                           without questions (the eval opens one for every mp4)
        OUT/<split>/videos_captions_gpt4o_mini/<clip_id>.json
                                           {"gpt4o_mini_res": "<caption text>"}, as the reference's caption script
                                           writes it (clips whose caption failed have none)
        OUT/<split>/clips.json             index: one entry per clip (ids, source times and frames, the caption's
                                           writer, prompt version and aspects, files)

    The key "gpt4o_mini_res" is the reference's `{model}_res` for its default model, the only one (besides "human")
    its eval reads; the real writer of each question is its `source`, of each caption the index's `caption.writer`.

groundmore (needs the `splits` table and the source videos)
    GroundMoRe's layout, as its evaluator (evaluate_groundmore.py of dengandong/GroundMoRe) reads it: run that
    from OUT_DIR, where it finds video_root "./groundmore_videos/" and meta_file "groundmore_test.json" (every
    split's file is written, empty or not)::

        OUT/groundmore_<split>.json        {"videos": {VID: {"questions": {qa_id: {"question", "answer",
                                           "obj_id", "q_type", "action_start", "action_end", ...}}, ...}}}
        OUT/groundmore_videos/VID/images/frame_000000.jpg   the clip's frames at `fps` (default 6, GroundMoRe's)
        OUT/groundmore_videos/VID/masks/frame_000000.png    palette PNG (mode "P") per frame: pixel = obj_id

    GroundMoRe names time in whole seconds, so the export covers the clip's whole seconds [s0, e0) =
    [ceil(start_s), floor(end_s)) and VID is `<clip_id>_MMSS_MMSS` of s0 and e0: exported frame k is the frame on
    screen at s0 + k / fps (the last decoded frame at or before that time), (e0 - s0) * fps frames in all.
    `answer` is the object's referring expression, `obj_id` its number in the clip's masks (its tracks numbered
    1.. in track id order; `track_id` is the lake's id), `q_type` Causal / Sequential /
    Counterfactual / Descriptive. `action_start` / `action_end` are "MM:SS" strings: the motion window with each
    end rounded to the nearest whole second (at least one second, inside [s0, e0)). The evaluator turns them into
    frames (action_start - s0) * fps .. (action_end - s0) * fps - 1, and that is exactly the window the export
    paints (`action_start_frame` / `action_end_frame` say the same); the unrounded window is in
    `action_start_s` / `action_end_s` (seconds from s0). `--fps` must be a whole number, and GroundMoRe's
    evaluator itself assumes 6.

    One mask file per frame holds ALL objects of the clip (every tracked object, pixel value = its track id,
    smaller boxes painted over larger ones). The ground truth of a question is rebuilt from it and the
    question's window, as GroundMoRe's evaluator does: frame k's mask is (png_k == obj_id) inside the window and
    EMPTY outside (`question_masks` does this). Masks come from the detector's instance masks
    (`detections.mask_rle`, decoded with pycocotools, the detection matched to the track box by IoU) where there
    are some, else the track's box filled; `mask_kind` ("mask", "box" or "mixed") says which, per question and in
    the manifest. Between the tracker's sampled frames the box is interpolated linearly (any gap, as for MOT) and
    the mask of the nearest sampled frame is moved by the change of the box centre: the same shapes as
    `fm eval grounded`'s ground truth from the lake.

A clip whose source video cannot be read any more (moved, deleted, changed since labeling) is not exported:
it is listed under `skipped` in the manifest with the reason (and how many questions it held); the rest of the
export is written. Videos without a split (new since `splits` was materialized) are skipped the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from fm_assets.labels.splits import SPLIT_NAMES
from fm_resources.lake import Lake

Source = Callable[[str], Path]  # video_id -> local path of its source video (raises when it cannot be had)


class ExportError(Exception):
    """The lake lacks what an export needs (the message says what to run)."""


def write_manifest(out: Path, fmt: str, files: list[dict], **extra) -> dict:
    manifest = {"format": fmt, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "n_files": len(files), "bytes": sum(int(f.get("bytes") or 0) for f in files), "files": files,
                **extra}
    Lake(root=str(out)).write_json("manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------------
# Plumbing shared by the dataset exports


class Out:
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
    from fm_resources.registry import lookup_video
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


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in ("VideoError", "ExportError") else f"{type(exc).__name__}: {text}"


def clean_text(text: str | None) -> str:
    out = str(text or "")
    for tok in VIDEO_TOKENS:
        out = out.replace(tok, tok.strip("<>"))
    return out.strip()


def kept_clips(raw_clips: pl.DataFrame) -> dict[str, dict]:
    return {c["clip_id"]: c for c in raw_clips.filter(pl.col("kept")).sort("video_id", "start_frame").iter_rows(named=True)}


def plan_clips(clip_ids: list[str], clips: dict[str, dict], splits: dict[str, str], n_questions: dict[str, int],
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


def cut_videos(plan: dict[str, list[dict]], source: Source, n_questions: dict[str, int], skipped: list[dict]):
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
                    skipped.append({"clip_id": c["clip_id"], "video_id": vid, "reason": reason(exc),
                                    "questions": n_questions.get(c["clip_id"], 0)})


def kept_questions(qa_pairs: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Kept questions (never the rejected LLM ones) in table order, and how many were rejected."""
    kept = qa_pairs.filter(pl.col("kept").fill_null(False))
    return kept, len(qa_pairs) - len(kept)


def per_clip_counts(qa: pl.DataFrame) -> dict[str, int]:
    return dict(qa.group_by("clip_id").len().iter_rows()) if len(qa) else {}


def track_boxes(tracks: pl.DataFrame, clip_id: str, track_id: int) -> pl.DataFrame:
    return tracks.filter((pl.col("clip_id") == clip_id) & (pl.col("track_id") == track_id)).sort("t_s")


# --------------------------------------------------------------------------------------------------
# llamafactory


# --------------------------------------------------------------------------------------------------
# fm-json (FoundationMotion's reference layout)


# --------------------------------------------------------------------------------------------------
# groundmore


def frame_window(times: list[float], t0: float, t1: float) -> tuple[int | None, int | None]:
    inside = [k for k, t in enumerate(times) if t0 - 1e-6 <= t <= t1 + 1e-6]
    return (inside[0], inside[-1]) if inside else (None, None)


VIDEO_TOKENS = ("<video>", "<image>", "<audio>")  # LLaMA-Factory's placeholders; never inside question text
