"""Stage 3b: trajectories -> `captions` (LLM or template) -> `qa_pairs` (rule-based with verified answers,
LLM-written and checked against the facts, GroundMoRe-style grounded)."""

import time

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, asset

from fm_assets.defs.config import config_class
from fm_assets.defs.partitions import for_each_video, kept_clips, of_video, per_clip, videos_partitions
from fm_assets.labels import qa
from fm_assets.labels.captions import (
    CaptionOut,
    LLMQuestions,
    caption_messages,
    clip_facts,
    qa_messages,
    template_caption,
)
from fm_assets.labels.motion_facts import pair_relations, trajectory_json
from fm_assets.labels.qa import QAParams
from fm_assets.labels.schemas import CAPTIONS, QA_PAIRS, frame
from fm_assets.labels.workers import cores, map_clips
from fm_resources.lake import Lake
from fm_resources.llm import LLMFailure, LLMResource
from fm_resources.registry import lookup_video
from fm_resources.video import VideoStore, keyframes

QAConfig = config_class(QAParams, "QAConfig")


def _frames_for(llm: LLMResource, video_store: VideoStore, lake: Lake, video_id: str, clip: dict,
                every_s: float) -> list[bytes]:
    """Keyframes of a clip for a vision model (none for text-only models)."""
    if not llm.vision:
        return []
    path = video_store.fetch(lookup_video(video_id, lake)["uri"])
    return keyframes(path, None, clip["start_s"], clip["end_s"], every_s, llm.frame_max_side)


def _usage(rows: list[dict]) -> dict:
    df = pl.DataFrame(rows, schema={k: CAPTIONS[k] for k in ("tokens_in", "tokens_out", "cost_usd", "cached")})
    return {"tokens_in": int(df["tokens_in"].sum() or 0), "tokens_out": int(df["tokens_out"].sum() or 0),
            "cost_usd": MetadataValue.float(float(df["cost_usd"].sum() or 0.0)),
            "llm_calls_cached": int(df["cached"].sum() or 0)}


@asset(partitions_def=videos_partitions, group_name="language", pool="llm",
       description="A fine-grained motion caption per kept clip (seven aspects), by an LLM or the template writer.")
def captions(context: AssetExecutionContext, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
             llm: LLMResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    def one(video_id: str):
        video_traj = of_video(trajectories, video_id)

        def write(clip: dict) -> dict:
            traj = per_clip(video_traj, clip["clip_id"])
            facts = clip_facts(traj, pair_relations(traj), clip)
            base = {"video_id": video_id, "clip_id": clip["clip_id"], "n_objects": len(facts["objects"]),
                    "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "cached": False, "attempts": 0,
                    "status": "ok", "error": None, "n_frames_sent": 0}
            if llm.is_offline or not facts["objects"]:
                out = template_caption(facts)
                return {**base, "caption": out.text(), "aspects": out.model_dump_json(), "writer": "template",
                        "prompt_version": "template@1"}
            images = _frames_for(llm, video_store, lake, video_id, clip, llm.frame_every_s)
            messages, version = caption_messages(facts, trajectory_json(traj), min(len(images), llm.max_frames))
            try:
                res = llm.complete(lake, messages, CaptionOut, version, images)
            except LLMFailure as exc:
                return {**base, "caption": None, "aspects": None, "writer": llm.model, "prompt_version": version,
                        "attempts": exc.attempts, "status": "failed", "error": f"{exc.reason}: {exc.detail}"[:500]}
            return {**base, "caption": res.value.text(), "aspects": res.value.model_dump_json(), "writer": llm.model,
                    "prompt_version": version, "tokens_in": res.tokens_in, "tokens_out": res.tokens_out,
                    "cost_usd": res.cost_usd, "cached": res.cached, "attempts": res.attempts,
                    "n_frames_sent": min(len(images), llm.max_frames)}

        started = time.perf_counter()
        clips = kept_clips(of_video(raw_clips, video_id))
        rows = [r if isinstance(r, dict) else _crashed(video_id, clip, r)
                for clip, r in zip(clips, llm.map(write, clips))]
        df = frame(rows, CAPTIONS)
        metadata = {"writer": llm.model, "clips": len(df), "failed": int((df["status"] != "ok").sum()),
                    **_usage(rows), "seconds": MetadataValue.float(time.perf_counter() - started)}
        if len(df) and df["caption"].drop_nulls().len():
            metadata["example"] = MetadataValue.md(df["caption"].drop_nulls()[0])
        return df, metadata

    return for_each_video(context, one, CAPTIONS)


def _crashed(video_id: str, clip: dict, exc: BaseException) -> dict:
    """A caption row recording an unexpected error for one clip (the partition still materializes)."""
    return {"video_id": video_id, "clip_id": clip["clip_id"], "caption": None, "writer": None, "status": "failed",
            "error": f"{type(exc).__name__}: {exc}"[:500], "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0,
            "cached": False, "attempts": 0}


_NO_USAGE = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "cached": False}
# trajectories from which a video's questions without an LLM are made in worker processes: about 4 s of work on one
# core (2-CPU VM), where starting them costs about one
PARALLEL_TRACKS = 500


@asset(partitions_def=videos_partitions, group_name="language", pool="llm",
       description="Multiple-choice motion questions (five FoundationMotion categories) and grounded questions "
                   "(GroundMoRe types) per clip; LLM questions that contradict the facts are kept=false.")
def qa_pairs(context: AssetExecutionContext, config: QAConfig, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
             captions: pl.DataFrame, llm: LLMResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    params = config.to_params()

    def one(video_id: str):
        video_traj = of_video(trajectories, video_id)
        caption_of = {r["clip_id"]: r for r in of_video(captions, video_id).iter_rows(named=True)}

        def ask(clip: dict) -> tuple[list[dict], dict]:
            traj = per_clip(video_traj, clip["clip_id"])
            pairs = pair_relations(traj)
            rows = qa.clip_questions(traj, pairs, clip, params)
            usage = dict(_NO_USAGE)
            cap = caption_of.get(clip["clip_id"])
            if not cap or cap["status"] != "ok" or not len(traj):
                return qa.finalize(rows, video_id, params), usage
            facts = clip_facts(traj, pairs, clip)
            images = _frames_for(llm, video_store, lake, video_id, clip, 1.0)
            messages, version = qa_messages(cap["caption"], facts, params.llm_questions, min(len(images), llm.max_frames))
            try:
                res = llm.complete(lake, messages, LLMQuestions, version, images)
            except LLMFailure as exc:
                context.log.warning(f"{clip['clip_id']}: LLM questions failed ({exc.reason}); rule-based only")
                return qa.finalize(rows, video_id, params), usage
            usage = {"tokens_in": res.tokens_in, "tokens_out": res.tokens_out, "cost_usd": res.cost_usd,
                     "cached": res.cached}
            llm_rows = qa.llm_rows(res.value.model_dump()["questions"], traj, pairs, clip, llm.model, version)
            return qa.finalize(rows + llm_rows, video_id, params), usage

        clips = kept_clips(of_video(raw_clips, video_id))
        if llm.is_offline or params.llm_questions == 0:  # rule-based questions only: a long video's in workers
            jobs = [(per_clip(video_traj, c["clip_id"]), c, video_id, params) for c in clips]
            results = [r if isinstance(r, BaseException) else (r, _NO_USAGE) for r in map_clips(
                qa.clip_rows, jobs, cores() if len(video_traj) >= PARALLEL_TRACKS else 1,
                errors=True)]
        else:
            results = llm.map(ask, clips)
        rows, usages = [], []
        for clip, result in zip(clips, results):
            if isinstance(result, BaseException):
                context.log.error(f"{clip['clip_id']}: question generation failed: {result!r}")
                continue
            rows += result[0]
            usages.append(result[1])
        df = frame(rows, QA_PAIRS)
        kept = df.filter(pl.col("kept"))
        return df, {
            "questions": len(kept), "grounded": int(kept["grounded"].sum() or 0),
            "rejected_llm": len(df) - len(kept),
            "categories": str(dict(kept.group_by("category").len().sort("category").iter_rows())),
            "q_types": str(dict(kept.filter(pl.col("grounded")).group_by("q_type").len().sort("q_type").iter_rows())),
            "answers": str(dict(kept.filter(~pl.col("grounded")).group_by("answer").len().sort("answer").iter_rows())),
            **_usage(usages),
        }

    return for_each_video(context, one, QA_PAIRS)
