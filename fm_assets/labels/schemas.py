"""Column contracts of the lake's tables (see ../shared/docs/architecture.md). Every table a stage writes is
built through `frame()`, so an empty result still has the full typed schema and DuckDB views never break."""

from __future__ import annotations

import polars as pl

VIDEOS = {
    "video_id": pl.String, "uri": pl.String, "sha256": pl.String, "size_bytes": pl.Int64,
    "duration_s": pl.Float64, "fps": pl.Float64, "width": pl.Int32, "height": pl.Int32, "n_frames": pl.Int32,
    "codec": pl.String, "rotation": pl.Int16, "vfr": pl.Boolean, "n_shots": pl.Int32, "n_clips_kept": pl.Int32,
    "status": pl.String, "error": pl.String, "analysed_s": pl.Float64,
    "source_sha256": pl.String,  # of the file as read when labelled (the videos_source_identity check)
}

RAW_CLIPS = {
    "video_id": pl.String, "clip_id": pl.String, "clip_idx": pl.Int32, "shot_idx": pl.Int32,
    "start_s": pl.Float64, "end_s": pl.Float64, "start_frame": pl.Int32, "end_frame": pl.Int32,
    "n_frames": pl.Int32, "fps": pl.Float64, "width": pl.Int32, "height": pl.Int32,
    "camera_motion": pl.Float64, "n_motion_pairs": pl.Int32, "kept": pl.Boolean, "drop_reason": pl.String,
    "thumbnail": pl.String,
}

DETECTIONS = {
    "video_id": pl.String, "clip_id": pl.String, "frame_idx": pl.Int32, "t_s": pl.Float64, "det_idx": pl.Int32,
    "x1": pl.Float32, "y1": pl.Float32, "x2": pl.Float32, "y2": pl.Float32, "score": pl.Float32, "label": pl.String,
    "person_score": pl.Float32, "mask_rle": pl.String, "sample_step": pl.Int32, "color": pl.String,
    "hist": pl.List(pl.UInt8),
}

TRACKS = {
    "video_id": pl.String, "clip_id": pl.String, "track_id": pl.Int32, "frame_idx": pl.Int32, "t_s": pl.Float64,
    "x1": pl.Float32, "y1": pl.Float32, "x2": pl.Float32, "y2": pl.Float32, "score": pl.Float32, "label": pl.String,
    "color": pl.String,  # the track's majority colour name, on every row of the track
    "box_color": pl.String,  # the colour name of this box's own detection (None: no detection behind the box)
}


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    """A DataFrame with exactly the contract's columns, in order, typed (extra keys are an error)."""
    extra = {k for r in rows for k in r} - set(schema)
    if extra:
        raise KeyError(f"columns not in the table contract: {sorted(extra)}")
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in schema}, schema=schema)  # columns: no dict copies

CAPTIONS = {
    "video_id": pl.String, "clip_id": pl.String, "caption": pl.String, "aspects": pl.String,
    "writer": pl.String, "prompt_version": pl.String, "n_objects": pl.Int32, "n_frames_sent": pl.Int32,
    "tokens_in": pl.Int64, "tokens_out": pl.Int64, "cost_usd": pl.Float64, "cached": pl.Boolean,
    "attempts": pl.Int32, "status": pl.String, "error": pl.String,
}

QA_PAIRS = {
    "video_id": pl.String, "clip_id": pl.String, "qa_id": pl.String, "category": pl.String,
    "question": pl.String, "option_a": pl.String, "option_b": pl.String, "option_c": pl.String,
    "option_d": pl.String, "answer": pl.String, "answer_text": pl.String, "source": pl.String,
    "verified": pl.Boolean, "grounded": pl.Boolean, "q_type": pl.String, "target_track_id": pl.Int32,
    "action_start_s": pl.Float64, "action_end_s": pl.Float64, "fact": pl.String, "writer": pl.String,
    "prompt_version": pl.String, "kept": pl.Boolean, "reject_reason": pl.String,
}

SPLITS = {
    "video_id": pl.String, "split": pl.String, "bucket": pl.Float64, "group_key": pl.String,
    "status": pl.String, "n_clips": pl.Int32, "n_questions": pl.Int32, "n_grounded": pl.Int32,
}
